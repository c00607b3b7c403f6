"""Load test: N concurrent clients call every endpoint of the running app for a bounded time.

    python bench/load_test.py                      # starts `python app.py` on a free port, 20 clients, 60 s
    python bench/load_test.py --url http://127.0.0.1:7860/ --clients 20 --seconds 120

Each client (a thread with its own gradio_client) cycles through the endpoints with small, realistic
requests. The last line is JSON: per endpoint `requests`, `errors`, `p50_ms`, `p95_ms`, plus the totals.
Requests answered with the app's own "busy" message count under `busy`, not `errors`: that is the
queue refusing work on purpose (`app.py` sets its size), not a failure.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.app_process import AppStartError, running_app  # noqa: E402
from demos.caption import CHECKPOINTS  # noqa: E402
from seqmodels.workers import WORKERS_READY  # noqa: E402
EXAMPLE_IMAGE = ROOT / "demos" / "assets" / "examples" / "cat.jpg"
CAPTIONER = next(iter(CHECKPOINTS))  # the tab's default model, as a visitor meets it
TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?\n"


def calls(handle_file) -> dict[str, tuple]:
    """Endpoint -> (args, kwargs) of one request."""
    return {
        "/generate": (("ROMEO:", "LSTM", 0.8, 0, 1.0, 200, 1, True), {}),
        "/translate": (("Where is the nearest train station?", 5, "Ours: SentencePiece, biGRU, attention"), {}),
        "/caption": ((handle_file(str(EXAMPLE_IMAGE)), 3, CAPTIONER), {}),
        "/hidden_states": ((TEXT, "LSTM", 1, -1, "position in line"), {}),
        "/gates": ((TEXT, "GRU", 1), {}),
        "/gradient_flow": ((TEXT,), {}),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running app (default: start one)")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args()
    from gradio_client import Client, handle_file

    # a started app is measured once its worker processes are up, as a visitor meets a server that has run a while
    with contextlib.nullcontext(args.url) if args.url else running_app(ready_line=WORKERS_READY) as url:
        endpoints = calls(handle_file)
        # ssl_verify=False: the clients share the server's two cores, and each call of a verifying client loads the
        # certificate bundle (about 90 ms of CPU), for a plain-http loopback address that uses none of it
        probe = Client(url, verbose=False, ssl_verify=False)
        usable, skipped = {}, {}
        for name, (a, kw) in endpoints.items():  # an endpoint whose model is missing is left out, and said
            try:
                probe.predict(*a, api_name=name, **kw)
                usable[name] = (a, kw)
            except Exception as e:
                skipped[name] = f"{type(e).__name__}: {str(e)[:120]}"
                print(f"skipping {name}: {skipped[name]}", file=sys.stderr)
        latencies: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        busy: dict[str, int] = defaultdict(int)
        samples: dict[str, str] = {}
        lock = threading.Lock()
        stop_at = time.time() + args.seconds

        def client(i: int) -> None:
            c = Client(url, verbose=False, ssl_verify=False)
            names = list(usable)
            k = i
            while time.time() < stop_at:
                name = names[k % len(names)]
                k += 1
                a, kw = usable[name]
                t0 = time.perf_counter()
                try:
                    c.predict(*a, api_name=name, **kw)
                    with lock:
                        latencies[name].append((time.perf_counter() - t0) * 1000)
                except Exception as e:
                    with lock:
                        if "busy" in str(e).lower():
                            busy[name] += 1
                        else:
                            errors[name] += 1
                            samples.setdefault(name, f"{type(e).__name__}: {str(e)[:200]}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t_start = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t_start
    result = {}
    for name in usable:
        times = sorted(latencies[name])
        result[name] = {
            "requests": len(times) + errors[name] + busy[name], "errors": errors[name], "busy": busy[name],
            "p50_ms": round(statistics.median(times), 1) if times else None,
            "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1) if times else None,
        }
    for name, sample in samples.items():
        print(f"{name}: first error: {sample}", file=sys.stderr)
    total = {"requests": sum(r["requests"] for r in result.values()), "errors": sum(r["errors"] for r in result.values()),
             "busy": sum(r["busy"] for r in result.values()), "clients": args.clients, "seconds": round(wall, 1),
             "skipped": skipped}
    print(json.dumps({"endpoints": result, **total}))


if __name__ == "__main__":
    try:
        main()
    except AppStartError as e:
        raise SystemExit(f"error: {e}")
