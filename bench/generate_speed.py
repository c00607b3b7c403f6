"""Single-stream generation speed of any character model: the fast path the app runs against a naive loop.

    python bench/generate_speed.py [--checkpoint checkpoints/charlm-lstm] [--chars 3000] [--threads 1]

Both loops sample the same number of characters with the same settings (temperature 1, no filtering)
in the same process. The fast path is what the app runs (``seqmodels.fastgen.fast_stepper`` with int8
weights, through ``seqmodels.decoding.generate``): ``FastCharLM`` for the classic cells, ``FastLinearRNN``
for the linear recurrences, ``FastTransformer`` for the Transformer. The naive loop is what tutorials write:
for the classic cells, embedding, ``nn.RNN/LSTM/GRU`` on a (1, 1, E) input with the carried state, the head,
softmax, multinomial; for the others, the model's own float step (its forward on one character; for the
Transformer, with its key/value cache).

It also measures what a longer context costs: generation speed after a prompt of 100 and of 2,000
characters (``--contexts``), and the state a stream carries then (floats). An RNN's step and state are the
same size whatever it has read; a Transformer's key/value cache grows with the text, up to its window.
And it checks the fast path's quality: its loss on the validation split (the last 10% of Tiny Shakespeare,
first ``--val-chars`` characters), stepped one character at a time, against the model's own forward.
Last line: JSON with chars_per_s, naive_chars_per_s, ratio, fp32_chars_per_s, context figures and losses.
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

from seqmodels import CharLM, SamplingSettings, generate, load_model  # noqa: E402
from seqmodels.data import read_text  # noqa: E402
from seqmodels.data.text import split_ids, stream_loss  # noqa: E402
from seqmodels.fastgen import fast_stepper  # noqa: E402


@torch.inference_mode()
def naive_loop(model, first: int, n: int, seed: int) -> float:
    """Characters per second of the textbook loop: one nn.LSTM call per character (other models: their own step)."""
    if not isinstance(model, CharLM):
        return fast_loop(model, first, n, seed)
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


def fast_loop(stepper, first: int | list[int], n: int, seed: int) -> float:
    """Characters per second generating ``n`` after the prompt ``first`` (the prompt's reading not counted)."""
    prompt = [first] if isinstance(first, int) else first
    settings = SamplingSettings(max_new_tokens=n, temperature=1.0, seed=seed)
    stream = generate(stepper, prompt, settings)
    next(stream)  # reads the prompt and gives the first character
    t0 = time.perf_counter()
    count = sum(1 for _ in stream)
    return count / (time.perf_counter() - t0)


def state_floats(model, prompt: list[int]) -> int:
    """Numbers a stream must carry after reading ``prompt``: the model's own state, in floats (a fast
    stepper may hold more, as ``FastTransformer`` holds its whole window from the start)."""
    with torch.inference_mode():
        _, state = model.start(prompt)
    return sum(t.numel() for t in state)


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
    p.add_argument("--contexts", default="100,2000", help="prompt lengths to measure generation after")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer, _ = load_model(args.checkpoint)
    first = tokenizer.encode("\n").ids[0]
    fast, fp32 = fast_stepper(model, quantize=True), fast_stepper(model, quantize=False)
    fast_loop(fast, first, 200, 0), naive_loop(model, first, 50, 0)  # warm-up
    naive = max(naive_loop(model, first, max(300, args.chars // 10), r) for r in range(args.repeats))
    speed = max(fast_loop(fast, first, args.chars, r) for r in range(args.repeats))
    speed32 = max(fast_loop(fp32, first, args.chars, r) for r in range(args.repeats))
    result = {"checkpoint": args.checkpoint, "threads": args.threads, "chars_per_s": round(speed),
              "naive_chars_per_s": round(naive), "ratio": round(speed / naive, 1), "fp32_chars_per_s": round(speed32),
              "fast_step": getattr(fast, "kernel", type(fast).__name__)}
    print(f"fast (int8, {result['fast_step']}): {speed:,.0f} chars/s   fast (fp32): {speed32:,.0f} chars/s   naive loop: {naive:,.0f} chars/s")
    if Path(args.text).is_file():
        val = split_ids(torch.tensor(tokenizer.encode(read_text(args.text)).ids), 0.9)[1]
        contexts = {}
        for length in map(int, args.contexts.split(",")):
            prompt = val[:length].tolist()
            chars_s = max(fast_loop(fast, prompt, 300, r) for r in range(args.repeats))
            contexts[str(length)] = {"chars_per_s": round(chars_s), "state_floats": state_floats(model, prompt)}
            print(f"after {length:,} characters of context: {chars_s:,.0f} chars/s; state {contexts[str(length)]['state_floats']:,} floats")
        result["contexts"] = contexts
        ids = val[: args.val_chars + 1]
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
