"""'Which model?': measure every shipped character model on this machine and write the app's comparison table.

    python bench/compare_char_models.py [--threads 2] [--out demos/assets/char_models.json]

For each checkpoint in ``checkpoints/charlm-*`` (``seqmodels.charmodels.CHECKPOINT_OF``):
parameters; training characters/s (``bench/train_speed.py``'s step, fresh weights of the same shape);
validation loss (the last 10% of Tiny Shakespeare read as one stream, as ``train.charlm evaluate --split
val`` does); the loss on *Hamlet* from ``../shared/holdout`` (held out: evaluated, never used to choose);
single-stream generation characters/s of the app's fast path (1 thread), after 100 and after 2,000
characters of context, and the floats a stream's state holds then. For the speeds the models take turns,
best of ``--rounds``, so that all of them meet the same moments of a shared machine. Nothing else should run meanwhile.
Last line: JSON, the same record the app reads.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from generate_speed import fast_loop, state_floats  # noqa: E402
from train_speed import tokens_per_s  # noqa: E402

from seqmodels.cards import hardware_summary  # noqa: E402
from seqmodels.charmodels import build_char_model, cell_of, default_batch  # noqa: E402
from seqmodels.checkpoint import CheckpointError, load_model  # noqa: E402
from seqmodels.data import read_text  # noqa: E402
from seqmodels.data.text import split_ids, stream_loss  # noqa: E402
from seqmodels.fastgen import fast_stepper  # noqa: E402
from demos.textgen import CHECKPOINTS  # noqa: E402

DATA = ROOT.parent / "shared"


def measure(label: str, folder: Path, threads: int, val_text: str, hamlet: str | None) -> tuple[dict, Callable]:
    """The model's row without its speeds, and a function that measures those (``speeds``)."""
    model, tokenizer, config = load_model(folder)
    cell = cell_of(model)
    torch.set_num_threads(threads)
    fresh = build_char_model(cell, config["config"])
    batch_size, seq_len = default_batch(cell)
    seq_len = getattr(fresh.config, "context", seq_len)
    val_ids = split_ids(torch.tensor(tokenizer.encode(val_text).ids))[1]
    val_loss = stream_loss(model, val_ids, streams=1, chunk=256)
    row = {"label": label, "cell": cell, "folder": folder.name, "params": model.num_parameters(),
           "val_loss": round(val_loss, 4),
           "minutes_trained": round(config.get("metrics", {}).get("elapsed_s", 0) / 60, 1)}  # to the best checkpoint
    if hamlet is not None:
        row["hamlet_loss"] = round(stream_loss(model, torch.tensor(tokenizer.encode(hamlet).ids), streams=1, chunk=256), 4)
    stepper = fast_stepper(model, quantize=True)
    first = tokenizer.encode("\n").ids[0]
    fast_loop(stepper, first, 100, 0)  # warm-up (TorchScript specialises on its first calls)
    for length in (100, 2000):
        row[f"state_floats_at_{length}"] = state_floats(model, val_ids[:length].tolist())

    def speeds(seed: int) -> dict:
        torch.set_num_threads(threads)
        figures = {"train_tokens_per_s": tokens_per_s(fresh, batch_size, seq_len, steps=6)}
        torch.set_num_threads(1)  # as the app generates: one thread per request
        figures["chars_per_s"] = fast_loop(stepper, first, 1000, seed)
        for length in (100, 2000):
            figures[f"chars_per_s_at_{length}"] = fast_loop(stepper, val_ids[:length].tolist(), 300, seed)
        return figures

    return row, speeds


def add_speeds(rows: list[dict], speeds: list[Callable], rounds: int) -> None:
    """Each model's best of ``rounds``, the models taking turns within each round: a machine that slows down for a
    minute (a shared host's neighbours) then slows every model alike."""
    for seed in range(rounds):
        for row, measure_speeds in zip(rows, speeds):
            for key, value in measure_speeds(seed).items():
                row[key] = max(row.get(key, 0), round(value))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch threads for training and evaluation")
    p.add_argument("--out", default=str(ROOT / "demos" / "assets" / "char_models.json"))
    p.add_argument("--text", default=str(DATA / "data" / "tinyshakespeare.txt"))
    p.add_argument("--hamlet", default=str(DATA / "holdout" / "hamlet.txt"))
    p.add_argument("--rounds", type=int, default=3, help="speeds: each model's best of this many turns of all of them")
    args = p.parse_args()
    if not Path(args.text).is_file():
        sys.exit(f"error: {args.text} not found (Tiny Shakespeare; see ../shared/data/README)")
    text = read_text(args.text)
    hamlet = read_text(args.hamlet) if Path(args.hamlet).is_file() else None
    torch.set_num_threads(args.threads)
    hardware = hardware_summary().replace(f", {args.threads} torch threads", "")  # the thread counts are stated below
    rows, speeds, t0 = [], [], time.time()
    for label, name in CHECKPOINTS.items():
        try:
            row, measure_speeds = measure(label, ROOT / "checkpoints" / name, args.threads, text, hamlet)
        except CheckpointError as e:
            print(f"skipping {label}: {e}", file=sys.stderr)
            continue
        rows.append(row)
        speeds.append(measure_speeds)
    add_speeds(rows, speeds, args.rounds)
    for r in rows:
        print(f"{r['label']:14s} {r['params']:>10,} params  train {r['train_tokens_per_s']:>6,} chars/s  val {r['val_loss']:.4f}  "
              f"hamlet {r.get('hamlet_loss', float('nan')):.4f}  generate {r['chars_per_s']:,} chars/s "
              f"({r['chars_per_s_at_2000']:,} after 2,000)  state {r['state_floats_at_2000']:,} floats", flush=True)
    record = {
        "models": rows, "hardware": hardware, "python": platform.python_version(),
        "seconds": round(time.time() - t0),
        "note": (f"Measured by `python bench/compare_char_models.py` on {hardware}: training speed with "
                 f"{args.threads} threads on fresh weights of each shape, generation with 1 thread (int8, as the app "
                 f"runs); speeds are each model's best of {args.rounds} turns of all {len(rows)}; losses in one pass "
                 "over the text. Hamlet is held out: never used to train or choose."),
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
