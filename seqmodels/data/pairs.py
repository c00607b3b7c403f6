"""Sentence pairs for translation: a tab-separated file (``english<TAB>french[<TAB>anything]``, the manythings /
Tatoeba format) or a Hugging Face translation dataset.

Pairs are split by English sentence (see ``split_of``), so that no English sentence has translations on
both sides of a split, and batched by length under a token budget.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import CheckpointSpec
from ..metrics import translation_scores
from ..tokenizers import BOS_ID, EOS_ID, PAD_ID
from ..translator import Translator
from . import DataError, load_hf_dataset, pad_batch, read_text


Pair = tuple[str, str]  # (source, target) once the direction is applied; (first, second column) before


@dataclass
class PairsFile:
    pairs: list[Pair]
    skipped: int  # malformed lines: fewer than two columns, or an empty side


def read_pairs(path: str | Path) -> PairsFile:
    """Tab-separated pairs, one per line; a third column (attribution) is ignored, bad lines are counted."""
    pairs, skipped = [], 0
    for line in read_text(path).split("\n"):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 2 or not cols[0].strip() or not cols[1].strip():
            skipped += 1
            continue
        pairs.append((cols[0].strip(), cols[1].strip()))
    if not pairs:
        raise DataError(f"{path} has no usable pairs: each line needs `source<TAB>target` ({skipped} malformed lines)")
    return PairsFile(pairs, skipped)


def load_hf_pairs(name: str, first: str = "en", second: str = "fr", split: str = "train",
                  config: str | None = None) -> PairsFile:
    """A Hugging Face translation dataset: rows of {"translation": {"en": ..., "fr": ...}}."""
    ds = load_hf_dataset(name, split, config)
    if "translation" not in ds.column_names:
        raise DataError(f"dataset {name!r} has no 'translation' column; its columns are: {', '.join(ds.column_names)}")
    pairs, skipped = [], 0
    for row in ds["translation"]:
        a = row.get(first) if isinstance(row, dict) else None
        b = row.get(second) if isinstance(row, dict) else None
        if not isinstance(a, str) or not isinstance(b, str) or not a.strip() or not b.strip():
            skipped += 1
            continue
        pairs.append((a.strip(), b.strip()))
    if not pairs:
        raise DataError(f"dataset {name!r} has no rows with both {first!r} and {second!r} ({skipped} skipped)")
    return PairsFile(pairs, skipped)


def split_of(sentence: str, val_fraction: float = 0.05, test_fraction: float = 0.05) -> str:
    """"train", "val" or "test" for a sentence, from a hash of its lower-cased, space-collapsed form.

    Every translation of one sentence lands in the same split (Tatoeba often has several), so a test
    sentence was never seen in training with another translation. A hash rather than a shuffle keeps a
    sentence's split when the file grows or is reordered.
    """
    key = " ".join(sentence.lower().split()).encode("utf-8")
    u = int.from_bytes(hashlib.md5(key).digest()[:8], "big") / 2**64
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def split_pairs(pairs: list[Pair], val_fraction: float = 0.05, test_fraction: float = 0.05) -> dict[str, list[Pair]]:
    """Split by the first column (the English side in eng-fra.txt), whatever the direction trained."""
    out: dict[str, list[Pair]] = {"train": [], "val": [], "test": []}
    for p in pairs:
        out[split_of(p[0], val_fraction, test_fraction)].append(p)
    return out


def group_references(pairs: list[Pair]) -> tuple[list[str], list[list[str]]]:
    """Distinct sources in order of first appearance, each with all its targets (multi-reference BLEU)."""
    refs: dict[str, list[str]] = {}
    for src, tgt in pairs:
        refs.setdefault(src, []).append(tgt)
    return list(refs), list(refs.values())


class PairsTask:
    """Batches of similar-length sentence pairs; validation is teacher-forced loss per target token and, given
    ``bleu_sources`` and their references, their greedy translations' BLEU.

    Examples are token ids: (source, target) without <s> or </s>; the task adds them. Batches hold up to
    ``max_tokens`` tokens (longest side x sentences), so short sentences come in large batches and long
    ones in small, and little of a batch is padding.
    """

    def __init__(self, train: list[tuple[list[int], list[int]]], val: list[tuple[list[int], list[int]]],
                 checkpoint: CheckpointSpec, max_tokens: int = 4096, max_len: int = 128,
                 bos: int = BOS_ID, eos: int = EOS_ID, seed: int = 0,
                 bleu_sources: list[str] | None = None, bleu_refs: list[list[str]] | None = None):
        if not train:
            raise DataError("no training pairs")
        if not val:
            raise DataError("the validation split is empty: the pairs file needs a few hundred distinct sources")
        self.bos, self.eos, self.max_len = bos, eos, max_len
        self.checkpoint, self.bleu_sources, self.bleu_refs = checkpoint, bleu_sources or [], bleu_refs or []
        self.train_batches = self._batches(train, max_tokens, random.Random(seed))
        self.val_batches = self._batches(val, max_tokens, None)
        self.val_tokens = sum(len(t) + 1 for _, t in val)

    def _batches(self, examples, max_tokens: int, rng: random.Random | None) -> list[dict[str, torch.Tensor]]:
        examples = [(s[:self.max_len], t[:self.max_len - 1]) for s, t in examples if s and t]
        # sort by length (random tie order for training) and cut into token-budgeted runs
        noise = (lambda: rng.random()) if rng else (lambda: 0.0)
        examples.sort(key=lambda e: (len(e[0]), len(e[1]), noise()))
        batches, run, longest = [], [], 0
        for ex in examples:
            longest_next = max(longest, len(ex[0]), len(ex[1]) + 1)
            if run and longest_next * (len(run) + 1) > max_tokens:
                batches.append(self._collate(run))
                run, longest_next = [], max(len(ex[0]), len(ex[1]) + 1)
            run.append(ex)
            longest = longest_next
        if run:
            batches.append(self._collate(run))
        return batches

    def _collate(self, run) -> dict[str, torch.Tensor]:
        src, src_len = pad_batch([s for s, _ in run])
        tgt_in, _ = pad_batch([[self.bos] + t for _, t in run])
        tgt_out, _ = pad_batch([t + [self.eos] for _, t in run])
        return {"src": src, "src_len": src_len, "tgt_in": tgt_in, "tgt_out": tgt_out}

    def get_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.train_batches[int(torch.randint(len(self.train_batches), (1,), generator=generator))]

    @staticmethod
    def count_tokens(batch: dict[str, torch.Tensor]) -> int:
        return int((batch["tgt_out"] != PAD_ID).sum())

    def save(self, model, folder: Path, metrics: dict) -> None:
        self.checkpoint.write(folder, model, metrics)

    def evaluate(self, model) -> dict[str, float]:
        device = next(model.parameters()).device
        total = 0.0
        for batch in self.val_batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(batch["src"], batch["src_len"], batch["tgt_in"]).logits
            # plain cross-entropy, not the label-smoothed training loss, so it reads as a log-likelihood
            total += F.cross_entropy(logits.float().flatten(0, 1), batch["tgt_out"].flatten(), ignore_index=PAD_ID,
                                     reduction="sum").item()
        loss = total / self.val_tokens
        metrics = {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}
        if self.bleu_sources:  # a fixed sample of validation sentences, translated greedily: BLEU as it trains
            hyps = Translator(model, self.checkpoint.tokenizer).translate_many(self.bleu_sources, beam_size=1,
                                                                                batch_size=100)
            metrics.update(val_bleu=translation_scores(hyps, self.bleu_refs)["bleu"],
                           val_bleu_n=len(self.bleu_sources))
        return metrics
