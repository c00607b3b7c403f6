"""Time from `python app.py` to the first page served, and to the first generated text.

    python bench/app_startup.py [--port 7861]

Starts the app as a user would (a fresh process, the shipped checkpoints), polls the page until it
answers, then asks the generate endpoint for 200 characters. Last line: JSON with ready_s and
first_generate_s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=7861)
    p.add_argument("--timeout", type=float, default=120)
    args = p.parse_args()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(args.port), "GRADIO_ANALYTICS_ENABLED": "False"}
    url = f"http://127.0.0.1:{args.port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"app.py exited with code {proc.returncode} before serving")
            if time.perf_counter() - t0 > args.timeout:
                raise SystemExit(f"app.py did not answer within {args.timeout:.0f} s")
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        ready = time.perf_counter() - t0
        from gradio_client import Client

        t1 = time.perf_counter()
        _, text, stats = Client(url, verbose=False).predict("ROMEO:", "LSTM", 0.8, 0, 1.0, 200, 1, True,
                                                            api_name="/generate")
        first = time.perf_counter() - t1
        print(f"ready in {ready:.1f} s; first 200 characters in {first:.2f} s ({stats.splitlines()[0]})")
        print(json.dumps({"ready_s": round(ready, 2), "first_generate_s": round(first, 2)}))
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
