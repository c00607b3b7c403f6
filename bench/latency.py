"""Shared by the latency benches: load the checkpoint under test, time one call per input after a warm-up, and
summarise in milliseconds."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence


def measure(call: Callable[[Any], Any], inputs: Sequence, repeats: int = 1, warmup: int = 3) -> dict:
    """p50, p95 and mean latency of ``call(x)`` over every input, ``repeats`` times."""
    for x in inputs[:warmup]:  # first calls allocate and pick kernels; a user never waits for those twice
        call(x)
    times = []
    for _ in range(repeats):
        for x in inputs:
            t0 = time.perf_counter()
            call(x)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
            "mean_ms": round(statistics.fmean(times), 1), "n": len(times)}


def load_or_exit(folder):
    """(model, tokenizer) of a checkpoint, or an exit with the reason (a bench has nothing to time without one)."""
    from seqmodels import CheckpointError, load_model

    try:
        model, tokenizer, _ = load_model(folder)
    except CheckpointError as e:
        raise SystemExit(f"error: {e}")
    return model, tokenizer
