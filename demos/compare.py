"""'Which model?': every shipped character model side by side, from measurements, never typed-in figures.

- ``training_curves``: validation loss against step and against wall-clock minutes, read from each
  checkpoint's ``metrics.jsonl`` (what the training loop logged);
- ``comparison_rows``: the table ``bench/compare_char_models.py`` measured and wrote to
  ``demos/assets/char_models.json`` (parameters, training speed, losses, generation speed, state size).
"""
from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from .style import model_colour

ASSET = Path(__file__).resolve().parent / "assets" / "char_models.json"
COLUMNS = ["model", "parameters", "training chars/s", "minutes to its best checkpoint", "validation loss", "Hamlet loss",
           "generation chars/s after 100 chars", "… after 2,000 chars", "state per stream after 2,000 chars (floats)"]


def training_curves(models: dict) -> Figure:
    """Validation loss of the shipped character models against step and against training time."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_step, ax_time = fig.subplots(1, 2, sharey=True)
    for name, tm in models.items():
        path = Path(tm.folder) / "metrics.jsonl" if tm.folder else None
        if path is None or not path.exists():
            continue
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        val = [r for r in records if r.get("split") == "val"]
        train_rows = [r for r in records if r.get("split") == "train"]
        line, = ax_step.plot([r["step"] for r in val], [r["val_loss"] for r in val], label=name, color=model_colour(name))
        # faint and out of the legend: one legend entry per model keeps the curves visible
        ax_step.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], color=line.get_color(),
                     alpha=0.3, lw=0.8, label="_nolegend_")
        ax_time.plot([r["elapsed_s"] / 60 for r in val], [r["val_loss"] for r in val], color=line.get_color(), label=name)
    ax_step.set_xlabel("step")
    ax_step.set_ylabel("loss (nats per character)")
    ax_time.set_xlabel("minutes of training (2-core CPU)")
    ax_step.set_ylim(1.0, 2.6)
    for ax in (ax_step, ax_time):
        ax.grid(True, alpha=0.3)
    ax_time.legend(fontsize=8)
    ax_step.set_title("Validation loss against step (faint: training batches)")
    ax_time.set_title("Validation loss against wall time")
    return fig


def comparison_rows(path: Path = ASSET) -> tuple[list[list], str]:
    """(table rows, a note on how they were measured) from the bench's record; no rows if it is missing."""
    if not path.is_file():
        return [], f"No measurements yet: run `python bench/compare_char_models.py` to write {path.name}."
    record = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for m in record["models"]:
        hamlet = m.get("hamlet_loss")
        rows.append([m["label"], f"{m['params']:,}", f"{m['train_tokens_per_s']:,}", f"{m.get('minutes_trained', 0):.1f}",
                     f"{m['val_loss']:.4f}", "—" if hamlet is None else f"{hamlet:.4f}", f"{m['chars_per_s_at_100']:,}",
                     f"{m['chars_per_s_at_2000']:,}", f"{m['state_floats_at_2000']:,}"])
    return rows, record.get("note", "")
