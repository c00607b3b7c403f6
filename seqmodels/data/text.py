"""Text for the character language models: a UTF-8 file or a Hugging Face dataset column.

The split is nanoGPT's: the first 90% trains, the last 10% validates, so figures compare with its Tiny
Shakespeare results. ``stream_loss`` reads a whole text statefully, as the RNN would.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import CheckpointSpec
from . import DataError, load_hf_dataset


def load_hf_text(name: str, column: str, split: str = "train", config: str | None = None) -> str:
    """Join one text column of a Hugging Face dataset (hub name or local folder/file) with newlines."""
    ds = load_hf_dataset(name, split, config)
    if column not in ds.column_names:
        raise DataError(f"dataset {name!r} has no column {column!r}; its columns are: {', '.join(ds.column_names)}")
    text = "\n".join(str(t) for t in ds[column] if t is not None)
    if not text.strip():
        raise DataError(f"column {column!r} of dataset {name!r} is empty")
    return text


def split_ids(ids: torch.Tensor, train_fraction: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(train_fraction * len(ids))
    return ids[:n], ids[n:]


class CharLMTask:
    """Random windows of the training text; validation reads the whole validation text statefully."""

    def __init__(self, train_ids: torch.Tensor, val_ids: torch.Tensor, batch_size: int, seq_len: int,
                 checkpoint: CheckpointSpec, eval_streams: int = 16):
        if len(train_ids) < seq_len + 2:
            raise DataError(
                f"the training text is too short: {len(train_ids):,} character{'' if len(train_ids) == 1 else 's'} for "
                f"sequences of {seq_len}; use more text or shorter sequences"
            )
        if len(val_ids) < 2:
            raise DataError("the validation split is empty: the text needs at least a few hundred characters")
        self.train_ids, self.val_ids = train_ids, val_ids
        self.batch_size, self.seq_len, self.eval_streams = batch_size, seq_len, eval_streams
        self.checkpoint = checkpoint

    def get_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        T = self.seq_len
        starts = torch.randint(len(self.train_ids) - T - 1, (self.batch_size,), generator=generator)
        offsets = starts[:, None] + torch.arange(T + 1)  # (B, T+1)
        window = self.train_ids[offsets]
        return {"idx": window[:, :-1], "targets": window[:, 1:]}

    def save(self, model, folder: Path, metrics: dict) -> None:
        self.checkpoint.write(folder, model, metrics)

    def evaluate(self, model) -> dict[str, float]:
        loss = stream_loss(model, self.val_ids, streams=self.eval_streams, chunk=self.seq_len)
        return {"val_loss": loss, "val_bpc": loss / math.log(2)}


@torch.no_grad()
def stream_loss(model, ids: torch.Tensor, streams: int = 16, chunk: int = 256) -> float:
    """Mean nats per predicted character over all of ``ids``, carrying the recurrent state throughout.

    The text is cut into ``streams`` contiguous pieces read side by side (one batch row each), chunk by
    chunk, so every character but the first of each piece is predicted with all the context before it
    in its piece. The mean is over every predicted character, exactly once.
    """
    device = next(model.parameters()).device
    ids = ids.to(device)
    n = len(ids) - 1  # characters that have a next character to predict
    streams = max(1, min(streams, n))
    length = math.ceil(n / streams)
    pad = streams * length - n
    x = F.pad(ids[:-1], (0, pad)).view(streams, length)
    y = F.pad(ids[1:], (0, pad), value=-100).view(streams, length)  # -100: ignored by cross_entropy
    state, total = None, 0.0
    for t in range(0, length, chunk):
        out = model(x[:, t:t + chunk], state=state)
        state = out.state
        total += F.cross_entropy(out.logits.float().flatten(0, 1), y[:, t:t + chunk].flatten(),
                                 ignore_index=-100, reduction="sum").item()
    return total / n
