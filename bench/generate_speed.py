"""Single-stream generation speed of the shipped LSTM: the fast path against a naive nn.LSTM loop.

    python bench/generate_speed.py [--checkpoint checkpoints/charlm-lstm] [--chars 3000] [--threads 1]

Both loops sample the same number of characters with the same settings (temperature 1, no filtering)
in the same process. The naive loop is what tutorials write: embedding, ``nn.LSTM`` on a (1, 1, E)
input with the carried state, the linear head, softmax, multinomial. The fast path is what the app
runs: ``FastCharLM`` with int8 weights through ``seqmodels.decoding.generate``. The script also checks
the fast path's quality: its loss on the validation split (the last 10% of Tiny Shakespeare, first
``--val-chars`` characters), stepped one character at a time, against the model's own forward.
Last line: JSON with chars_per_s, naive_chars_per_s, ratio, fp32_chars_per_s and the loss figures.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqmodels import FastCharLM, SamplingSettings, generate, load_model  # noqa: E402
from seqmodels.data import read_text  # noqa: E402
from seqmodels.data.text import split_ids, stream_loss  # noqa: E402


@torch.inference_mode()
def naive_loop(model, first: int, n: int, seed: int) -> float:
    """Characters per second of the textbook loop: one nn.LSTM call per character."""
    g = torch.Generator().manual_seed(seed)
    state = model.init_state(1)
    token = torch.tensor([[first]])
    t0 = time.perf_counter()
    for _ in range(n):
        out, state = model.rnn(model.embedding(token), state)  # (1, 1, H)
        probs = torch.softmax(model.head(out[:, -1]), dim=-1)
        token = torch.multinomial(probs, 1, generator=g)
        token.item()  # the character is needed to show it
    return n / (time.perf_counter() - t0)


def fast_loop(stepper, first: int, n: int, seed: int) -> float:
    settings = SamplingSettings(max_new_tokens=n, temperature=1.0, seed=seed)
    t0 = time.perf_counter()
    count = sum(1 for _ in generate(stepper, [first], settings))
    return count / (time.perf_counter() - t0)


@torch.inference_mode()
def stepped_loss(stepper, ids: torch.Tensor) -> float:
    """Mean nats/char predicting ids[1:] one step at a time, as generation does."""
    logits, state = stepper.start(ids[:1].tolist())
    total = 0.0
    for t in range(1, len(ids)):
        total -= F.log_softmax(logits.float(), -1)[0, ids[t]].item()
        if t + 1 < len(ids):
            logits, state = stepper.step(ids[t:t + 1], state)
    return total / (len(ids) - 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "charlm-lstm"))
    p.add_argument("--chars", type=int, default=3000)
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs of each loop")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1 per request)")
    p.add_argument("--text", default=str(ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"))
    p.add_argument("--val-chars", type=int, default=20000)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer, _ = load_model(args.checkpoint)
    first = tokenizer.encode("\n").ids[0]
    fast, fp32 = FastCharLM(model, quantize=True), FastCharLM(model, quantize=False)
    fast_loop(fast, first, 200, 0), naive_loop(model, first, 50, 0)  # warm-up
    naive = max(naive_loop(model, first, max(300, args.chars // 10), r) for r in range(args.repeats))
    speed = max(fast_loop(fast, first, args.chars, r) for r in range(args.repeats))
    speed32 = max(fast_loop(fp32, first, args.chars, r) for r in range(args.repeats))
    result = {"checkpoint": args.checkpoint, "threads": args.threads, "chars_per_s": round(speed),
              "naive_chars_per_s": round(naive), "ratio": round(speed / naive, 1), "fp32_chars_per_s": round(speed32)}
    print(f"fast (int8): {speed:,.0f} chars/s   fast (fp32): {speed32:,.0f} chars/s   naive nn.LSTM loop: {naive:,.0f} chars/s")
    if Path(args.text).is_file():
        ids = split_ids(torch.tensor(tokenizer.encode(read_text(args.text)).ids), 0.9)[1][: args.val_chars + 1]
        reference = stream_loss(model, ids, streams=1)
        int8 = stepped_loss(fast, ids)
        result.update(val_chars=len(ids) - 1, val_loss_model=round(reference, 4), val_loss_fast_int8=round(int8, 4),
                      val_loss_delta=round(int8 - reference, 4))
        print(f"validation loss on {len(ids) - 1:,} chars: model {reference:.4f}, fast int8 path {int8:.4f} "
              f"(delta {int8 - reference:+.4f}; bpc {int8 / math.log(2):.4f})")
    else:
        print(f"{args.text} not found: skipping the loss check")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
