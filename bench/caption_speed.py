"""Latency of captioning one uploaded image, as the Image captioning tab does: decode, resize, encode, beam search.

    python bench/caption_speed.py [--checkpoint checkpoints/caption-flickr8k] [--beam 3] [--threads 1]

Images: the tab's example photos (demos/assets/examples, about 400 px) and the same photos enlarged to
1600 px JPEGs (a phone-sized upload), read from bytes in memory so that file-system caching does not
flatter the figure. The last line is JSON with p50_ms and p95_ms per image.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqmodels.image_captioner import ImageCaptioner  # noqa: E402

from latency import load_or_exit, measure  # noqa: E402


def uploads() -> list[tuple[str, bytes]]:
    out = []
    for path in sorted((ROOT / "demos" / "assets" / "examples").glob("*.jpg")):
        out.append((path.name, path.read_bytes()))
        big = Image.open(path).convert("RGB")
        big = big.resize((1600, round(1600 * big.height / big.width)), Image.BICUBIC)
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=90)
        out.append((f"{path.stem}@1600px", buf.getvalue()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "caption-flickr8k"))
    p.add_argument("--beam", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1 per request)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                   help="an int8 decoder, as the app uses (--no-int8: the float model)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_or_exit(args.checkpoint)
    size = model.config.image_size
    images = uploads()
    captioner = ImageCaptioner(model, tokenizer, quantize=args.int8)

    def caption(data: bytes) -> str:
        return captioner.caption_photos([data], beam_size=args.beam)[0].text

    stats = measure(caption, [data for _, data in images], repeats=args.repeats)
    for name, data in images[::2]:
        print(f"{name}: {caption(data)}", file=sys.stderr)
    print(json.dumps({**stats, "beam": args.beam, "int8": args.int8, "threads": args.threads, "image_size": size}))


if __name__ == "__main__":
    main()
