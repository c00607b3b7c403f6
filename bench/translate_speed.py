"""Latency of translating one 10-word English sentence with beam search, as the Translation tab does.

    python bench/translate_speed.py [--checkpoint checkpoints/translate-en-fr] [--beam 5] [--threads 1]

Sentences: distinct 10-word English sentences of the test split of ../shared/data/eng-fra.txt (the split
the training script holds out) when it is there, else a built-in list. Each is translated alone (batch 1, as in the app) after a warm-up; the last line is
JSON with p50_ms and p95_ms.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqmodels import Translator  # noqa: E402
from seqmodels.data.pairs import read_pairs, split_pairs  # noqa: E402

from latency import load_or_exit, measure  # noqa: E402

BUILT_IN = [
    "I think we should leave before it starts to rain.",
    "My brother works in a small bakery near the station.",
    "Could you tell me where I can buy a ticket?",
    "We have not seen our grandparents since last summer.",
    "She wrote a long letter to her best friend yesterday.",
    "The children were playing in the garden all afternoon.",
    "He forgot his umbrella at the office again today.",
    "I would like to visit Paris with you next year.",
]


def sentences(n_words: int, limit: int) -> tuple[list[str], str]:
    path = ROOT.parent / "shared" / "data" / "eng-fra.txt"
    if path.is_file():
        test = split_pairs(read_pairs(path).pairs)["test"]
        found = list(dict.fromkeys(en for en, _ in test if len(en.split()) == n_words))
        if found:
            return found[:limit], f"the test split of {path.name} ({min(len(found), limit)} sentences of {n_words} words)"
    return BUILT_IN, f"built-in ({len(BUILT_IN)} sentences of 10 words)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "translate-en-fr"))
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1 per request)")
    p.add_argument("--sentences", type=int, default=100)
    p.add_argument("--float", action="store_true", help="time the float model (default: int8, as the app)")
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_or_exit(args.checkpoint)
    translator = Translator(model, tokenizer, quantize=not args.float)
    texts, source = sentences(10, args.sentences)
    stats = measure(lambda t: translator.translate([t], beam_size=args.beam), texts, repeats=args.repeats, warmup=5)
    print(f"{stats['n']} translations of {source}, beam {args.beam}, {args.threads} thread(s)", file=sys.stderr)
    for t in texts[:3]:
        print(f"{t} -> {translator.translate([t], beam_size=args.beam)[0].text}", file=sys.stderr)
    print(json.dumps({**stats, "beam": args.beam, "threads": args.threads, "int8": not args.float, "sentences": source}))


if __name__ == "__main__":
    main()
