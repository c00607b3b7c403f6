"""What every training script shares: the error exit, the training-loop flags, the TrainConfig they make, and
the run that ends with the best checkpoint's card."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from seqmodels.checkpoint import atomic_write_text, read_config
from seqmodels.training import TrainConfig, TrainingError, train


def fail(message: str) -> None:
    """Exit with a one-line message and status 2, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def set_threads(args) -> None:
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)


def add_loop_args(t: argparse.ArgumentParser, steps: int, lr: float, warmup: int, eval_interval: int,
                  steps_help: str = "optimizer steps") -> None:
    """The flags of the shared training loop, with each script's defaults."""
    t.add_argument("--steps", type=int, default=steps, help=steps_help)
    t.add_argument("--time-budget", type=float, default=0,
                   help="minutes of training, evaluation included; the schedule ends with it (0: no budget)")
    t.add_argument("--lr", type=float, default=lr)
    t.add_argument("--min-lr", type=float, default=1e-4)
    t.add_argument("--warmup", type=int, default=warmup)
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--grad-clip", type=float, default=1.0)
    t.add_argument("--eval-interval", type=int, default=eval_interval)
    t.add_argument("--seed", type=int, default=1337)
    t.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16"],
                   help="bf16 autocast; auto uses it where the hardware computes bf16 natively")
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    t.add_argument("--half", action="store_true", help="store the checkpoint's weights in fp16 (half the size)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last saved step")
    t.add_argument("--overwrite", action="store_true", help="start again in an --out that holds a run")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")


def train_config(args, out) -> TrainConfig:
    return TrainConfig(out_dir=str(out), max_steps=args.steps, learning_rate=args.lr, min_lr=args.min_lr,
                       warmup_steps=args.warmup, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
                       eval_interval=args.eval_interval, seed=args.seed, dtype=args.dtype, resume=args.resume,
                       progress=not args.no_progress, time_budget_s=args.time_budget * 60)


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Parse ``argv`` with ``train`` as the default sub-command (`python -m train.X --data ...` trains)."""
    import logging

    argv = list(sys.argv[1:] if argv is None else argv)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if not argv or argv[0] not in (*commands, "-h", "--help"):
        argv = ["train", *argv]
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return parser.parse_args(argv)


def train_and_card(model, task, cfg: TrainConfig, card: Callable[[dict, dict], str]) -> dict | None:
    """Run the shared loop (a TrainingError becomes a one-line exit). On rank 0, once a checkpoint exists, its
    card is rewritten as ``card(best checkpoint's metrics, run summary)`` with the whole run's time and
    throughput, and the summary is returned; other ranks, or a run that saved nothing, get None."""
    try:
        summary = train(model, task, cfg)
    except TrainingError as e:
        fail(str(e))
    if int(os.environ.get("RANK", 0)) != 0 or summary["best_step"] < 0:
        return None
    out = Path(cfg.out_dir)
    atomic_write_text(out / "README.md", card(read_config(out)["metrics"], summary))
    return summary
