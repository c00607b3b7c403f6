"""Muon's Newton-Schulz step for a real model's matrices: one batched call per shape against one call per matrix.

    python bench/muon_speed.py [--model mingru] [--threads 2] [--repeats 20]

Takes the hidden matrices Muon trains in the shipped checkpoint's architecture (``muon_parameters``), groups them
by shape as ``MuonAdamW`` does, and times ``orthogonalize`` on each group stacked against a loop over its matrices,
the median of ``--repeats`` after two warm-up calls. Nothing else should run meanwhile. Last line: JSON,
{model, threads, shapes: {shape: count}, batched_ms, per_matrix_ms, speedup}.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.train_speed import model_for  # noqa: E402
from seqmodels.muon import muon_parameters, orthogonalize  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mingru")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = model_for(args.model)
    hidden = muon_parameters(model)
    groups: dict[tuple, list[torch.Tensor]] = {}
    g = torch.Generator().manual_seed(0)
    for p in model.parameters():
        if id(p) in hidden:  # random gradients of the weights' shapes: the step's cost does not depend on values
            groups.setdefault(tuple(p.shape), []).append(torch.randn(p.shape, generator=g))
    batched = median_ms(lambda: [orthogonalize(torch.stack(ms)) for ms in groups.values()], args.repeats)
    per_matrix = median_ms(lambda: [orthogonalize(m) for ms in groups.values() for m in ms], args.repeats)
    shapes = {"x".join(map(str, s)): len(ms) for s, ms in groups.items()}
    print(f"{args.model}: {shapes}; batched {batched:.2f} ms, one matrix at a time {per_matrix:.2f} ms "
          f"({per_matrix / batched:.2f}x), {args.threads} threads")
    print(json.dumps({"model": args.model, "threads": args.threads, "shapes": shapes, "batched_ms": round(batched, 2),
                      "per_matrix_ms": round(per_matrix, 2), "speedup": round(per_matrix / batched, 2)}))


if __name__ == "__main__":
    main()
