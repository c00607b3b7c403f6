"""Tokenizers that travel inside checkpoints.

A tokenizer is saved as ``tokenizer.json`` in a checkpoint folder (plus ``tokenizer.model`` for
SentencePiece) and rebuilt from it with ``tokenizer_from_dict``; code never looks a vocabulary up by
dataset name.

- ``CharTokenizer``: one id per character (the character language models).
- ``SentencePieceTokenizer``: subwords with byte fallback, so no input is ever unknown (translation).
- ``WordTokenizer``: whole words with ``<unk>``, as the PyTorch seq2seq tutorial uses (its preset).

The sentence tokenizers share ids 0-3: ``<pad>``, ``<unk>``, ``<s>``, ``</s>``.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .files import atomic_write, atomic_write_text


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

        atomic_write_text(Path(folder) / "tokenizer.json", json.dumps(self.to_dict(), ensure_ascii=False, indent=1))



# --------------------------------------------------------------------------- sentence tokenizers

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)


def normalize(text: str) -> str:
    """NFKC and collapsed whitespace: what both sentence tokenizers see, in training and at use. SentencePiece's own
    word mark "▁" (U+2581, in none of the data sets) becomes "_": SentencePiece read it as a space, and a typed one
    vanished or split a word."""
    return " ".join(unicodedata.normalize("NFKC", text).replace("\u2581", "_").split())


class SentencePieceTokenizer:
    """A SentencePiece model (unigram by default) with byte fallback.

    Characters the training text never had become UTF-8 byte pieces instead of ``<unk>``, so any input
    (emoji, other scripts) has an encoding; ``unknown`` reports such characters so the UI can say that the
    model never saw them. The model bytes are kept in memory and written as ``tokenizer.model``; only
    files this project wrote are ever parsed (SentencePiece's C++ parser is not meant for untrusted input).
    """

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        if [self.sp.id_to_piece(i) for i in range(4)] != SPECIALS:
            raise ValueError("a SentencePiece model for this project needs ids 0-3 = <pad> <unk> <s> </s>")
        # the characters the model has pieces for; anything else goes through byte fallback
        self._known = {ch for i in range(self.sp.get_piece_size()) if not self.sp.is_byte(i)
                       for ch in self.sp.id_to_piece(i)}

    @classmethod
    def train(cls, sentences: Iterable[str], vocab_size: int = 8000, model_type: str = "unigram") -> "SentencePieceTokenizer":
        import io

        import sentencepiece as spm

        buffer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=(normalize(s) for s in sentences), model_writer=buffer,
            vocab_size=vocab_size, model_type=model_type, byte_fallback=True,
            character_coverage=0.9999,  # the rarest characters go to bytes rather than wasting pieces
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            normalization_rule_name="identity",  # normalize() already did NFKC, the same at use
            input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=2,
            hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary instead of an error
            minloglevel=2,
        )
        return cls(buffer.getvalue())

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> Encoding:
        text = normalize(text)
        unknown = list(dict.fromkeys(ch for ch in text if ch not in self._known and not ch.isspace()))
        return Encoding(self.sp.encode(text), unknown)

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) >= len(SPECIALS)])

    def pieces(self, ids) -> list[str]:
        """One readable label per id (for attention maps): byte pieces show as <0xE2>."""
        return [self.sp.id_to_piece(int(i)) for i in ids]

    def to_dict(self) -> dict:
        return {"type": self.kind, "model_file": "tokenizer.model"}

    def save(self, folder: str | Path) -> None:

        folder = Path(folder)
        atomic_write(folder / "tokenizer.model", lambda tmp: Path(tmp).write_bytes(self.model_proto))
        atomic_write_text(folder / "tokenizer.json", json.dumps(self.to_dict(), indent=1))


# a word is a run of letters/digits (with inner apostrophes or hyphens: "aujourd'hui", "peut-être")
# or one other non-space character; the flag says whether a space came before it, so decoding is exact
_WORD = re.compile(r"(\s*)(\w+(?:[-'’]\w+)*|[^\w\s])")
_PUNCT = re.compile(r"[^\w\s']|_")


def caption_words(text: str) -> list[str]:
    """Lower-cased words without punctuation: how captions are trained on and scored (as COCO's PTB step does)."""
    return _PUNCT.sub(" ", text.lower().replace("'s", " 's")).split()


class WordTokenizer:
    """Whole words with a frequency cut-off; rarer words become ``<unk>`` (the tutorial's vocabulary).

    A token carries a leading "▁" when a space came before it, so ``decode(encode(s))`` gives ``s`` back
    for every in-vocabulary sentence (case and accents kept, unlike the tutorial's ASCII folding).
    """

    kind = "word"

    def __init__(self, words: list[str]):
        if words[:4] != SPECIALS or len(set(words)) != len(words):
            raise ValueError("a word vocabulary needs distinct words and starts with <pad> <unk> <s> </s>")
        self.words = list(words)
        self.stoi = {w: i for i, w in enumerate(self.words)}

    @staticmethod
    def split(text: str) -> list[str]:
        return [("▁" if space or i == 0 else "") + word
                for i, (space, word) in enumerate(_WORD.findall(normalize(text)))]

    @classmethod
    def train(cls, sentences: Iterable[str], min_count: int = 2, max_size: int = 50_000) -> "WordTokenizer":
        counts = Counter(tok for s in sentences for tok in cls.split(s))
        common = [w for w, c in counts.most_common(max_size) if c >= min_count and w not in SPECIALS]
        return cls(SPECIALS + common)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> Encoding:
        ids, unknown = [], {}
        for tok in self.split(text):
            i = self.stoi.get(tok, UNK_ID)
            if i == UNK_ID:
                unknown[tok.lstrip("▁")] = None
            ids.append(i)
        return Encoding(ids, list(unknown))

    def decode(self, ids) -> str:
        # an unknown word lost its spacing flag; assume a space before it
        words = ("▁<unk>" if int(i) == UNK_ID else self.words[int(i)] for i in ids if int(i) not in (PAD_ID, BOS_ID, EOS_ID))
        return "".join(words).replace("▁", " ").strip()

    def pieces(self, ids) -> list[str]:
        return [self.words[int(i)] for i in ids]

    def to_dict(self) -> dict:
        return {"type": self.kind, "words": self.words}

    def save(self, folder: str | Path) -> None:

        atomic_write_text(Path(folder) / "tokenizer.json", json.dumps(self.to_dict(), ensure_ascii=False, indent=0))


class TokenizerPair:
    """Separate source and target vocabularies (the tutorial preset: English words in, French words out)."""

    kind = "pair"

    def __init__(self, source, target):
        self.source, self.target = source, target

    def to_dict(self) -> dict:
        return {"type": self.kind, "source": self.source.to_dict(), "target": self.target.to_dict()}

    def save(self, folder: str | Path) -> None:

        if "sentencepiece" in (self.source.kind, self.target.kind):
            raise ValueError("a tokenizer pair holds word or character tokenizers; share one SentencePiece model instead")
        atomic_write_text(Path(folder) / "tokenizer.json", json.dumps(self.to_dict(), ensure_ascii=False, indent=0))


def source_and_target(tokenizer) -> tuple:
    """(source tokenizer, target tokenizer) of a translation checkpoint: a pair, or one shared tokenizer."""
    if isinstance(tokenizer, TokenizerPair):
        return tokenizer.source, tokenizer.target
    return tokenizer, tokenizer


TOKENIZERS = {t.kind: t for t in (CharTokenizer, SentencePieceTokenizer, WordTokenizer, TokenizerPair)}


def tokenizer_from_dict(d: dict, folder: str | Path | None = None):
    """Rebuild a tokenizer from its ``tokenizer.json`` object (``folder`` holds any side files)."""
    if not isinstance(d, dict):
        raise ValueError(f"a tokenizer file holds a JSON object, not {type(d).__name__}")
    kind = d.get("type")
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer type {kind!r} (known: {', '.join(TOKENIZERS)})")
    if kind == "sentencepiece":
        if folder is None:
            raise ValueError("a SentencePiece tokenizer is loaded from its checkpoint folder")
        name = d.get("model_file")
        if name != "tokenizer.model":  # never follow a path from a file to elsewhere on disk
            raise ValueError("a SentencePiece tokenizer's model_file must be tokenizer.model")
        return SentencePieceTokenizer((Path(folder) / name).read_bytes())
    if kind == "pair":
        return TokenizerPair(tokenizer_from_dict(d.get("source"), folder), tokenizer_from_dict(d.get("target"), folder))
    key = "chars" if kind == "char" else "words"
    items = d.get(key)
    if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
        raise ValueError(f"a {kind} tokenizer needs a list of strings under {key!r}")
    return TOKENIZERS[kind](items)
