"""Time from `python app.py` to the first page served, and to the first generated text; then whether the first
request is as fast as the ones after it.

    python bench/app_startup.py [--timeout 120] [--later 3] [--model LSTM] [--length 200]

Starts the app as a user would (a fresh process, the shipped checkpoints), polls the page until it
answers, then asks the generate endpoint for 200 characters (``--length``), and ``--later`` times more. The app's
worker processes are still loading the models then (they share the cores with it, and it generates itself until
they are up), so it then waits for them and asks ``--later`` times again. Last line: JSON with ready_s,
first_generate_s, the chars/s the app reported for the first request and the later ones, workers_ready_s and the
chars/s once they were up.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.app_process import AppStartError, running_app  # noqa: E402
from seqmodels.workers import WORKERS_READY  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--later", type=int, default=3, help="requests after the first, to compare it with")
    p.add_argument("--model", default="LSTM")
    p.add_argument("--length", type=int, default=200, help="characters per request (the page asks for 500)")
    args = p.parse_args()
    t0 = time.perf_counter()
    try:
        with running_app(start_timeout=args.timeout, poll_s=0.1) as url:
            ready = time.perf_counter() - t0
            from gradio_client import Client

            client = Client(url, verbose=False)

            def chars_per_s(seed: int) -> tuple[int, str]:
                """chars/s as the app measured it (generation alone, without the client's round trip), its line"""
                _, _, stats = client.predict("ROMEO:", args.model, 0.8, 0, 1.0, args.length, seed, True,
                                             api_name="/generate")
                return int(re.search(r"([0-9,]+) chars/s", stats).group(1).replace(",", "")), stats.splitlines()[0]

            t1 = time.perf_counter()
            first_speed, line = chars_per_s(1)
            first = time.perf_counter() - t1
            print(f"ready in {ready:.1f} s; first {args.length} characters in {first:.2f} s ({line})")
            speeds = [first_speed, *[chars_per_s(i + 2)[0] for i in range(args.later)]]
            while WORKERS_READY not in url.log():
                if time.perf_counter() - t0 > args.timeout:
                    raise SystemExit(f"error: the app did not log {WORKERS_READY!r} within {args.timeout:.0f} s")
                time.sleep(0.1)
            workers_ready = time.perf_counter() - t0
            warm = [chars_per_s(100 + i)[0] for i in range(args.later)]
    except AppStartError as e:
        raise SystemExit(f"error: {e}")
    print(f"chars/s: first request {speeds[0]:,}, later {', '.join(f'{s:,}' for s in speeds[1:])}; "
          f"workers up after {workers_ready:.1f} s, then {', '.join(f'{s:,}' for s in warm)}")
    print(json.dumps({"ready_s": round(ready, 2), "first_generate_s": round(first, 2), "first_chars_per_s": speeds[0],
                      "later_chars_per_s": speeds[1:], "workers_ready_s": round(workers_ready, 2),
                      "workers_chars_per_s": warm}))


if __name__ == "__main__":
    main()
