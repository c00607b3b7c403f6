"""Worst-case request time: every tab handler called with the largest input its limits let through.

    python bench/worst_case.py [--threads 2]

The app has no per-request timeout; instead each input is capped (README, "Limits") so that no request can
run long. This measures how long the largest allowed request takes, per endpoint, with the shipped models:
2,000 generated characters, 1,000 characters of short sentences translated at beam 10, a 40-megapixel photo
captioned at beam 10, and the Inside the RNN views over 500 characters. The last line is JSON: endpoint -> milliseconds.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(call) -> float:
    t0 = time.perf_counter()
    call()
    return round((time.perf_counter() - t0) * 1000, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the app uses the machine's cores)")
    args = p.parse_args()
    import numpy as np
    import torch
    from PIL import Image

    from demos import caption, inside, textgen, translate
    from seqmodels.decoding import MAX_BEAM
    from seqmodels.images import MAX_PIXELS
    from seqmodels.passages import cut_passage
    from seqmodels.translator import MAX_SOURCE_CHARS

    torch.set_num_threads(args.threads)
    loaded = {}
    for module in (textgen, translate, caption):
        models, problems = module.load_models(ROOT / "checkpoints")
        if problems:
            raise SystemExit(f"error: {problems}")
        loaded[module] = models
    chars = loaded[textgen]

    text = (inside.EXAMPLE_TEXT * 20)[:inside.MAX_CHARS]
    # the longest paste, in the shape that costs most: many short sentences, each its own row of the batch
    subjects, states = ["I am", "You are", "We are", "They are", "He is", "She is"], ["cold", "tired", "happy", "late"]
    english = " ".join(f"{s} {a}." for s in subjects for a in states) * 10
    english = cut_passage(english, MAX_SOURCE_CHARS)
    side = int(MAX_PIXELS ** 0.5)  # the largest picture the image loader accepts
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8))
    buf = io.BytesIO()
    small.resize((side, side), Image.BILINEAR).save(buf, format="JPEG", quality=85)
    photo = buf.getvalue()
    print(f"caption input: {side} x {side} JPEG, {len(photo) / 1e6:.1f} MB", file=sys.stderr)

    def generate():
        for _ in textgen.generate_text("ROMEO:", "LSTM", 1.0, 0, 1.0, textgen.MAX_LENGTH, 1, True, models=chars):
            pass

    result = {
        "/generate (2,000 chars)": timed(generate),
        f"/translate ({len(english):,} chars, beam 10)": timed(lambda: translate.translate(english, MAX_BEAM, models=loaded[translate])),
        f"/caption ({side}x{side} JPEG, beam 10)": timed(lambda: caption.caption_image(photo, MAX_BEAM, models=loaded[caption])),
        "/hidden_states (500 chars)": timed(lambda: inside.hidden_states(text, "LSTM", models=chars)),
        "/gates (500 chars)": timed(lambda: inside.gates(text, "LSTM", models=chars)),
        "/gradient_flow (500 chars)": timed(lambda: inside.gradient_flow_plot(text, models=chars)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
