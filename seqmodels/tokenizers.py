"""Tokenizers that travel inside checkpoints.

A tokenizer is saved as ``tokenizer.json`` in a checkpoint folder and rebuilt from it with
``load_tokenizer``; code never looks a vocabulary up by dataset name.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Encoding:
    """Token ids plus the characters that had no id (reported, never a KeyError)."""

    ids: list[int]
    unknown: list[str] = field(default_factory=list)  # distinct unseen characters, in order of appearance


class CharTokenizer:
    """One id per character seen in the training text.

    Characters outside the vocabulary are either dropped or replaced by ``replacement`` (a character
    that is in the vocabulary); either way ``encode`` reports them so the caller can tell the user.
    """

    kind = "char"

    def __init__(self, chars: list[str]):
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("a character vocabulary needs distinct single characters")
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self.stoi

    def encode(self, text: str, replacement: str | None = None) -> Encoding:
        """Map text to ids; unseen characters are dropped, or mapped to ``replacement`` when given."""
        repl_id = self.stoi.get(replacement) if replacement is not None else None
        if replacement is not None and repl_id is None:
            raise ValueError(f"replacement {replacement!r} is not in the vocabulary")
        ids: list[int] = []
        unknown: dict[str, None] = {}  # an ordered set
        for ch in text:
            i = self.stoi.get(ch)
            if i is None:
                unknown[ch] = None
                if repl_id is not None:
                    ids.append(repl_id)
            else:
                ids.append(i)
        return Encoding(ids, list(unknown))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_dict(self) -> dict:
        return {"type": self.kind, "chars": self.chars}

    def save(self, folder: str | Path) -> None:
        from .checkpoint import atomic_write_text  # local import: checkpoint imports this module

        atomic_write_text(Path(folder) / "tokenizer.json", json.dumps(self.to_dict(), ensure_ascii=False, indent=1))


TOKENIZERS = {CharTokenizer.kind: CharTokenizer}


def tokenizer_from_dict(d: dict):
    if not isinstance(d, dict):
        raise ValueError(f"a tokenizer file holds a JSON object, not {type(d).__name__}")
    kind = d.get("type")
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer type {kind!r} (known: {', '.join(TOKENIZERS)})")
    chars = d.get("chars")
    if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
        raise ValueError("a character tokenizer needs a list of characters under 'chars'")
    return TOKENIZERS[kind](chars)
