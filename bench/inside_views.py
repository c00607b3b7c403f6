"""Render time of every "Inside the RNN" view on the shipped models, at the 500-character limit.

    python bench/inside_views.py [--figure docs/gradient_flow.png]

Loads the models as the app does, then times each handler (best of ``--repeats``) on 500 characters from the
start of Tiny Shakespeare's validation split (the tab's example text and what follows it, shipped in demos/assets).
The pattern view searches a 3,000-character validation excerpt whose states the app computes once per model, on a
background thread at start-up: the bench does the same first and reports that cold cost on its own ("startup"), then
times the pattern view's first call per model (what the first user waits for) and its later calls. ``--figure`` also
saves the gradient-flow plot (the README's picture). Last line: JSON with seconds per view (``max_seconds``: the
slowest), the start-up cost and the gradient ratios.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from demos import inside, inside_cell, inside_memory, textgen  # noqa: E402


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def save_png(fig, path: str) -> None:
    """The gradient-flow figure as a static PNG for the README: the app's Plotly figure is drawn in the browser, so
    its traces are drawn again here with matplotlib (no headless browser needed to export it)."""
    from matplotlib.figure import Figure
    out = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = out.add_subplot()
    for trace in fig.data:
        ax.plot(trace.x, trace.y, label=trace.name, color=trace.line.color, linewidth=1.4)
    ax.set_yscale("log")
    ax.invert_xaxis()  # the prediction on the right, older steps to the left, as in the app
    ax.set_xlabel("steps back from the prediction")
    ax.set_ylabel("gradient norm (log scale)")
    ax.legend(frameon=False)
    out.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--figure", default=None, help="save the gradient-flow plot here (PNG)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models, problems = textgen.load_models(ROOT / "checkpoints")
    for problem in problems:
        print(f"skipped {problem}")
    if not models:
        raise SystemExit("no character model found under checkpoints/")
    # the limit: the tab's example text and the validation split's next characters, 500 in all
    text = (inside.EXAMPLE_TEXT + inside_memory.VALIDATION_TEXT)[: inside.MAX_CHARS]
    middle = len(text) // 2
    startup = {}
    for name, tm in models.items():  # what the tab's warm_validation_states thread does at start-up
        if name != "Transformer":
            startup[f"validation states {name}"], _ = best_time(lambda: inside_memory.validation_states(tm, 1), 1)
    times = {}
    for name in models:
        times[f"hidden_states {name}"], _ = best_time(lambda: inside.hidden_states(text, name, 2, None, "position in line",
                                                                                     models=models), args.repeats)
        times[f"gates {name}"], _ = best_time(lambda: inside.gates(text, name, 2, models=models), args.repeats)
        if name == "Transformer":  # no recurrent cell to step through or state to follow
            continue
        times[f"cell_arithmetic {name}"], _ = best_time(
            lambda: inside_cell.cell_arithmetic_view(text, name, 2, len(text) - 1, models=models), args.repeats)
        span = (text.find("BAPTISTA"), text.find("BAPTISTA") + 8)
        times[f"find_pattern {name}, first call"], _ = best_time(
            lambda: inside_memory.find_pattern(text, name, 2, *span, models=models), 1)
        times[f"find_pattern {name}"], _ = best_time(
            lambda: inside_memory.find_pattern(text, name, 2, *span, models=models), args.repeats)
    times["input_influence (every model)"], _ = best_time(
        lambda: inside_memory.input_influence_view(text, len(text) - 1, models=models), args.repeats)
    times["input_influence (every model), middle"], _ = best_time(
        lambda: inside_memory.input_influence_view(text, middle, models=models), args.repeats)
    times["gradient_flow (5 recurrent models)"], (fig, rows, _) = best_time(lambda: inside.gradient_flow_plot(text, models=models),
                                                                  args.repeats)
    times["training_curves"], _ = best_time(lambda: inside.training_curves(models), args.repeats)
    for view, seconds in startup.items():
        print(f"{'start-up, ' + view:44s} {seconds * 1000:7.0f} ms")
    for view, seconds in times.items():
        print(f"{view:44s} {seconds * 1000:7.0f} ms")
    for row in rows:
        print("gradient: " + " | ".join(map(str, row)))
    if args.figure:
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        save_png(fig, args.figure)
        print(f"saved {args.figure}")
    print(json.dumps({"chars": len(text), "seconds": {k: round(v, 3) for k, v in times.items()},
                      "max_seconds": round(max(times.values()), 3),
                      "startup_seconds": {k: round(v, 3) for k, v in startup.items()},
                      "gradient": {r[0]: {"last_step_norm": r[5], "ratio_10": r[1], "ratio_50": r[2], "ratio_100": r[3]}
                                   for r in rows}}))


if __name__ == "__main__":
    main()
