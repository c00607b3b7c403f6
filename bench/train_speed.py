"""Training throughput of every character model, in one run: characters per second on this machine.

    python bench/train_speed.py [--threads 2] [--steps 8] [--models lstm,mingru,...] [--optimizers adamw,muon] [--rounds 3]

Each model is built from its shipped checkpoint's config (``checkpoints/charlm-*``; a model without one
gets the defaults ``train.charlm`` would use) and trained for ``--steps`` timed steps after two warm-up
steps, with what the training loop does per step: bf16 autocast where `--dtype auto` would choose it,
forward, backward, gradient clipping, AdamW (or each of ``--optimizers``), on random batches of the training script's shape
(64 x 128 characters, the Transformer 32 x 256). Nothing else should run meanwhile: two cores shared
with a training run halve every figure. ``--rounds N`` takes turns N times and keeps each model's best, so every
model meets the same moments of a shared host.

It also measures this CPU's ceiling: the fastest rate of three matrix products in the training dtype (the
shapes of the LSTM's and the minGRU's products for a whole batch, each timed alone), and reads each model's speed as
arithmetic, 6 FLOPs per weight per character (2 forward, 4 backward; the embedding's look-up and the
Transformer's attention scores are not counted). A model whose weights are all in matrix products cannot
train faster than that ceiling allows for its size, so the figures say how far any model of a given size
could still gain here. Last line: JSON, {threads, matmul_gflops, models: model -> {params, tokens_per_s,
ms_per_step, gflops, of_ceiling}}; with more than one optimizer a model's key is "model/optimizer".
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqmodels.charmodels import CHAR_CELLS, CHECKPOINT_OF, build_char_model, default_batch  # noqa: E402
from seqmodels.checkpoint import CheckpointError, read_config  # noqa: E402
from seqmodels.devices import prefers_bf16  # noqa: E402
from seqmodels.training import OPTIMIZERS, TrainConfig, _autocast, _optimizer  # noqa: E402


def model_for(cell: str):
    """The shipped checkpoint's architecture (fresh weights), or the training script's defaults."""
    try:
        config = read_config(ROOT / "checkpoints" / CHECKPOINT_OF[cell])["config"]
    except CheckpointError:
        config = {"vocab_size": 65}
    return build_char_model(cell, config)


def tokens_per_s(model: nn.Module, batch_size: int, seq_len: int, steps: int, optimizer: str = "adamw") -> float:
    cfg, device = TrainConfig(optimizer=optimizer), torch.device("cpu")
    optimizer, autocast = _optimizer(model, cfg, device), _autocast(cfg, device)
    g = torch.Generator().manual_seed(0)
    model.train()
    vocab = model.config.vocab_size

    def one_step():
        idx = torch.randint(vocab, (batch_size, seq_len + 1), generator=g)
        with autocast:
            loss = model(idx[:, :-1], targets=idx[:, 1:]).loss
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        one_step()
    t0 = time.perf_counter()
    for _ in range(steps):
        one_step()
    return steps * batch_size * seq_len / (time.perf_counter() - t0)


PRODUCT_SHAPES = ((8192, 512, 2048), (8192, 208, 624), (8192, 208, 208))  # (M, K, N): the LSTM's gates, minGRU's


def matmul_gflops(dtype: torch.dtype, repeats: int = 20) -> float:
    """The fastest of the shapes' products in ``dtype``, each timed ``repeats`` times, in GFLOP/s."""
    g = torch.Generator().manual_seed(0)
    best_rate = 0.0
    for m, k, n in PRODUCT_SHAPES:
        a, b = torch.randn(m, k, generator=g).to(dtype), torch.randn(k, n, generator=g).to(dtype)
        best = float("inf")
        for _ in range(repeats + 3):  # the first few warm the caches and the library's kernel choice
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        best_rate = max(best_rate, 2 * m * k * n / best / 1e9)
    return best_rate


def counted_weights(model: nn.Module) -> int:
    """Weights that take part in a matrix product for every character: all but the embedding table's."""
    return sum(q.numel() for name, q in model.named_parameters() if not name.startswith("embedding"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed steps per model")
    p.add_argument("--models", default=",".join(CHECKPOINT_OF), help=f"comma-separated, of: {', '.join(CHAR_CELLS)}")
    p.add_argument("--optimizers", default="adamw", help=f"comma-separated, of: {', '.join(OPTIMIZERS)}")
    p.add_argument("--rounds", type=int, default=1, help="turns of every model; each keeps its best")
    args = p.parse_args()
    cells, optimizers = args.models.split(","), args.optimizers.split(",")
    for cell in cells:
        if cell not in CHAR_CELLS:
            sys.exit(f"unknown model {cell!r}; known: {', '.join(CHAR_CELLS)}")
    for name in optimizers:
        if name not in OPTIMIZERS:
            sys.exit(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    if args.rounds < 1 or args.steps < 1:
        sys.exit("--rounds and --steps must be at least 1")
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if prefers_bf16(torch.device("cpu")) else torch.float32  # what the steps' autocast uses
    ceiling = matmul_gflops(dtype)
    print(f"ceiling: {str(dtype).removeprefix('torch.')} matrix products alone, {ceiling:,.0f} GFLOP/s", flush=True)
    results, best = {}, {}
    for _ in range(args.rounds):
        for cell in cells:
            for name in optimizers:
                key = cell if len(optimizers) == 1 else f"{cell}/{name}"
                torch.manual_seed(0)
                model = model_for(cell)
                batch_size, seq_len = default_batch(cell)
                tps = tokens_per_s(model, batch_size, seq_len, args.steps, name)
                best[key] = tps = max(tps, best.get(key, 0.0))
                params = sum(q.numel() for q in model.parameters())
                gflops = 6 * counted_weights(model) * tps / 1e9
                results[key] = {"params": params, "tokens_per_s": round(tps),
                                "ms_per_step": round(1000 * batch_size * seq_len / tps),
                                "gflops": round(gflops), "of_ceiling": round(gflops / ceiling, 3)}
                print(f"{key:12s} {params:>10,} parameters  {tps:>9,.0f} characters/s  ({batch_size} x {seq_len} "
                      f"per step)  {gflops:,.0f} GFLOP/s, {gflops / ceiling:.0%} of the ceiling", flush=True)
    print(json.dumps({"threads": args.threads, "matmul_gflops": round(ceiling), "models": results}))


if __name__ == "__main__":
    main()
