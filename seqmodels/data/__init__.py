"""Training and evaluation data, one module per task; this file holds what they share.

    seqmodels.data.text       text for the character language models (a file or a Hugging Face dataset)
    seqmodels.data.pairs      sentence pairs for translation, split by source sentence
    seqmodels.data.captions   images with captions for captioning, and their cached encoder grids

Every loader checks its input (empty, not UTF-8, too short, wrong columns) and raises a ``DataError``
whose message a person can act on.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..tokenizers import PAD_ID


# a local file for --hf-dataset: its suffix -> the `datasets` loader that reads it
LOCAL_FORMATS = {".txt": "text", ".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


class DataError(Exception):
    """Training or evaluation data that cannot be used; the message says what is wrong with it."""


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file (Windows line endings become \\n); raise DataError when unusable."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the text file itself (several files: join them into one first)")
    if not path.is_file():
        raise DataError(f"text file not found: {path}")
    raw = path.read_bytes()
    if not raw:
        raise DataError(f"{path} is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        # Windows' "Unicode" is UTF-16: its byte-order mark says so, and iconv needs to be told
        source = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "latin1"
        raise DataError(
            f"{path} is not UTF-8 text (byte {e.start}, line {line}){' but UTF-16' if source == 'utf-16' else ''}; "
            f"convert it first, e.g. `iconv -f {source} -t utf-8 {path.name} > {path.stem}.utf8.txt`"
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def load_hf_dataset(name: str, split: str, config: str | None):
    """A dataset split from the hub, a ``save_to_disk`` folder, or a local .txt/.csv/.json/.jsonl/.parquet."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is in requirements.txt
        raise DataError("the `datasets` package is needed to read Hugging Face datasets: pip install datasets") from None
    local = Path(name)
    try:
        if local.is_dir() and (local / "dataset_info.json").exists():
            ds = datasets.load_from_disk(str(local))  # a folder written by Dataset.save_to_disk
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[split]
        elif local.suffix in LOCAL_FORMATS and not local.exists():  # a file's name, never a Hub dataset's
            raise DataError(f"data file not found: {local}")
        elif local.is_file():
            kind = LOCAL_FORMATS.get(local.suffix)
            if kind is None:
                raise DataError(f"cannot tell the format of {local}; use .txt, .csv, .json, .jsonl or .parquet")
            ds = datasets.load_dataset(kind, data_files=str(local), split="train")
        else:
            ds = datasets.load_dataset(name, config, split=split)
    except DataError:
        raise
    except Exception as e:  # hub, network and format errors all arrive here; say which dataset failed
        raise DataError(f"could not load dataset {name!r} (split {split!r}): {type(e).__name__}: {e}") from None
    return ds


def pad_batch(seqs: list[list[int]], pad: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (B, T) padded with ``pad``, and their lengths (B,)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), max(1, int(lengths.max()))), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out, lengths
