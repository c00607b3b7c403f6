"""The Train tab as a visitor meets it: one live run with the tab's defaults, driven through the running app.

    python bench/live_train.py                     # starts `python app.py` on a free port
    python bench/live_train.py --url http://127.0.0.1:7860/ --corpus "Tiny Shakespeare"

A gradio_client calls ``/train`` with the tab's default settings and counts the updates the page receives;
meanwhile a second client keeps calling ``/generate`` (200 characters), and before the run the same call is
timed on the idle app. Figures: ``val_loss`` (the run's best, on the first 20,000 characters of the
validation split), ``train_seconds``, ``updates_per_s`` (updates over the run's wall time, start-up of the
training process included), ``generate_p50_ms_idle`` and ``generate_p50_ms_during``. Last line: JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.app_process import AppStartError, running_app  # noqa: E402
from seqmodels.workers import WORKERS_READY  # noqa: E402
from seqmodels.live import LiveSettings  # noqa: E402

GENERATE = ("ROMEO:", "LSTM", 0.8, 0, 1.0, 200, 1, True)


def generate_ms(client) -> float:
    t0 = time.perf_counter()
    client.predict(*GENERATE, api_name="/generate")
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running app (default: start one)")
    p.add_argument("--corpus", default="Tiny Shakespeare")
    p.add_argument("--seconds", type=float, default=LiveSettings.seconds, help="the run's time limit")
    args = p.parse_args()
    from gradio_client import Client

    d = LiveSettings()
    # measured once the app's worker processes are up: while they load, they share the cores with the idle requests
    with contextlib.nullcontext(args.url) if args.url else running_app(ready_line=WORKERS_READY) as url:
        trainer, other = Client(url, verbose=False), Client(url, verbose=False)
        generate_ms(other)  # warm-up
        idle = [generate_ms(other) for _ in range(7)]
        during: list[float] = []
        done = threading.Event()

        def keep_generating() -> None:
            while not done.is_set():
                during.append(generate_ms(other))

        t0 = time.time()
        job = trainer.submit(args.corpus, "", None, d.cell, d.layers, d.hidden_size, d.seq_len, d.learning_rate,
                             args.seconds, api_name="/train")
        threading.Thread(target=keep_generating, daemon=True).start()
        updates, status = 0, ""
        for output in job:
            updates += 1
            status = output[1]
        wall = time.time() - t0
        done.set()
        time.sleep(0.5)
    best = re.search(r"best ([0-9.]+)", status)
    ran = re.search(r"after ([0-9,]+) steps, ([0-9.]+) s", status)
    if not best or not ran:
        raise SystemExit(f"error: the run did not finish as expected; its last status: {status!r}")
    result = {
        "corpus": args.corpus, "settings": {"cell": d.cell, "layers": d.layers, "hidden_size": d.hidden_size,
                                            "seq_len": d.seq_len, "learning_rate": d.learning_rate, "seconds": args.seconds},
        "val_loss": float(best.group(1)), "steps": int(ran.group(1).replace(",", "")), "train_seconds": float(ran.group(2)),
        "updates": updates, "wall_s": round(wall, 1), "updates_per_s": round(updates / wall, 2),
        "generate_p50_ms_idle": round(statistics.median(idle), 1),
        "generate_p50_ms_during": round(statistics.median(during), 1) if during else None, "generate_calls_during": len(during),
    }
    print(f"validation loss {result['val_loss']} after {result['train_seconds']} s of training; {updates} updates in "
          f"{wall:.1f} s; /generate p50 {result['generate_p50_ms_idle']} ms idle, {result['generate_p50_ms_during']} ms during")
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except AppStartError as e:
        raise SystemExit(f"error: {e}")
