"""Which parallel form of h_t = a_t h_(t-1) + b_t trains fastest on this CPU: forward plus backward, per call.

    python bench/scan_speed.py [--threads 2] [--batch 64] [--length 128] [--hidden 320]

Three implementations from ``seqmodels.scan``, on one layer's shapes in a training step (time-major):
the custom-gradient loop the models use (``linear_scan``), Heinsen's log-space form (cumsum +
logcumsumexp, ``log_space_scan``, which needs positive values: minGRU's g() trick), and the plain loop left
to autograd (``loop_scan``). Then what the minGRU runs, from its gate pre-activations (T, B, 2H) to h: the
gates as torch operations then ``linear_scan``, against the C kernel that does both in one pass each way
(``seqmodels.native.fused``; left out where it cannot be built). Last line: JSON, implementation ->
milliseconds per forward + backward.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqmodels.linear_rnn import linear_cell_gates  # noqa: E402
from seqmodels.native import fused  # noqa: E402
from seqmodels.scan import linear_scan, log_space_scan, loop_scan  # noqa: E402


def mingru_in_torch(pre: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    a, b, _ = linear_cell_gates("mingru", pre, None, None)
    return linear_scan(a, b, h0)


def timed(fn, inputs, repeats: int) -> float:
    """Best milliseconds of ``repeats`` calls of fn(*inputs) followed by backward of the sum."""
    best = float("inf")
    for _ in range(repeats + 1):  # the first call warms up
        leaves = [x.detach().requires_grad_() for x in inputs]
        t0 = time.perf_counter()
        fn(*leaves).sum().backward()
        best = min(best, time.perf_counter() - t0)
    return 1000 * best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--hidden", type=int, default=320)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    T, B, H = args.length, args.batch, args.hidden
    a = torch.rand(T, B, H) * 0.5 + 0.4
    b = torch.rand(T, B, H) + 0.1  # positive, so the log-space form computes the same recurrence
    h0 = torch.rand(B, H) + 0.1
    results = {
        "custom_backward_loop": timed(linear_scan, (a, b, h0), args.repeats),
        "heinsen_log_space": timed(lambda la, lb, lh: log_space_scan(la, lb, lh).exp(), (a.log(), b.log(), h0.log()),
                                   args.repeats),
        "autograd_loop": timed(loop_scan, (a, b, h0), args.repeats),
    }
    pre = torch.randn(T, B, 2 * H)
    results["mingru_gates_then_custom_loop"] = timed(mingru_in_torch, (pre, h0), args.repeats)
    if fused.library() is not None:
        results["mingru_fused_c"] = timed(fused.mingru_scan, (pre, h0), args.repeats)
    for name, ms in results.items():
        print(f"{name:29s} {ms:8.1f} ms per forward + backward  ({T} x {B} x {H})")
    print(json.dumps({"shape": [T, B, H], "threads": args.threads, "ms": {k: round(v, 2) for k, v in results.items()}}))


if __name__ == "__main__":
    main()
