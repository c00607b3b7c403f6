"""Latency of translating one 10-word English sentence with beam search, as the Translation tab does.

    python bench/translate_speed.py [--checkpoint checkpoints/translate-en-fr] [--beam 5] [--threads 1]

Sentences: 10-word English sentences from the held-out Tatoeba file when it is there (../shared/holdout),
else a built-in list. Each is translated alone (batch 1, as in the app) after a warm-up; the last line is
JSON with p50_ms and p95_ms.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqmodels import CheckpointError, Translator, load_model  # noqa: E402

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
    path = ROOT.parent / "shared" / "holdout" / "translate_tatoeba_test.tsv"
    if path.is_file():
        found = [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()
                 if len(line.split("\t")[0].split()) == n_words]
        if found:
            return found[:limit], f"{path.name} ({min(len(found), limit)} sentences of {n_words} words)"
    return BUILT_IN, f"built-in ({len(BUILT_IN)} sentences of 10 words)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "translate-en-fr"))
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1 per request)")
    p.add_argument("--sentences", type=int, default=100)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    try:
        model, tokenizer, _ = load_model(args.checkpoint)
    except CheckpointError as e:
        raise SystemExit(f"error: {e}")
    translator = Translator(model, tokenizer)
    texts, source = sentences(10, args.sentences)
    for t in texts[:5]:  # warm-up
        translator.translate([t], beam_size=args.beam)
    times = []
    for _ in range(args.repeats):
        for t in texts:
            t0 = time.perf_counter()
            translator.translate([t], beam_size=args.beam)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"{len(times)} translations of {source}, beam {args.beam}, {args.threads} thread(s)", file=sys.stderr)
    print(json.dumps({"p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
                      "mean_ms": round(statistics.fmean(times), 1), "n": len(times), "beam": args.beam,
                      "threads": args.threads, "sentences": source}))


if __name__ == "__main__":
    main()
