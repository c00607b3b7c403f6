"""Time from `python app.py` to the first page served, and to the first generated text.

    python bench/app_startup.py [--timeout 120]

Starts the app as a user would (a fresh process, the shipped checkpoints), polls the page until it
answers, then asks the generate endpoint for 200 characters. Last line: JSON with ready_s and
first_generate_s.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.app_process import AppStartError, running_app  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timeout", type=float, default=120)
    args = p.parse_args()
    t0 = time.perf_counter()
    try:
        with running_app(start_timeout=args.timeout, poll_s=0.1) as url:
            ready = time.perf_counter() - t0
            from gradio_client import Client

            t1 = time.perf_counter()
            _, _, stats = Client(url, verbose=False).predict("ROMEO:", "LSTM", 0.8, 0, 1.0, 200, 1, True,
                                                                api_name="/generate")
            first = time.perf_counter() - t1
    except AppStartError as e:
        raise SystemExit(f"error: {e}")
    print(f"ready in {ready:.1f} s; first 200 characters in {first:.2f} s ({stats.splitlines()[0]})")
    print(json.dumps({"ready_s": round(ready, 2), "first_generate_s": round(first, 2)}))


if __name__ == "__main__":
    main()
