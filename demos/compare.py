"""'Which model?': every shipped character model side by side, from measurements, never typed-in figures.

- ``training_curves``: validation loss against step and against wall-clock minutes, read from each
  checkpoint's ``metrics.jsonl`` (what the training loop logged);
- ``comparison_rows``: the table ``bench/compare_char_models.py`` measured and wrote to
  ``demos/assets/char_models.json`` (parameters, training speed, losses, generation speed, state size).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import line_plot_layout, model_colour

ASSET = Path(__file__).resolve().parent / "assets" / "char_models.json"
# short: the header row is as tall as its longest wrapped name, and on a phone five-line names made it a third of the
# screen; the panel's text says what "at 100", "at 2,000" and "minutes to best" mean. The losses first, as the text
# reads them: on a phone the first three columns are what shows before a swipe ("validation" broke mid-word there)
COLUMNS = ["model", "val. loss", "Hamlet loss", "parameters", "training chars/s", "minutes to best",
           "generation chars/s at 100", "… at 2,000", "state floats at 2,000"]


def training_curves(models: dict) -> go.Figure:
    """Validation loss of the shipped character models against step (above) and against training time (below).

    Two panels stacked, not side by side: side by side each was 150 px wide on a phone. Faint lines: the loss on
    training batches."""
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.14)
    for name, tm in models.items():
        path = Path(tm.folder) / "metrics.jsonl" if tm.folder else None
        if path is None or not path.exists():
            continue
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        val = [r for r in records if r.get("split") == "val"]
        train_rows = [r for r in records if r.get("split") == "train"]
        line = {"color": model_colour(name)}
        hover = f"<b>{name}</b><br>%{{x}} %{{meta}}<br>loss %{{y:.3f}}<extra></extra>"
        fig.add_scatter(x=[r["step"] for r in val], y=[r["val_loss"] for r in val], name=name, legendgroup=name,
                        line=line, meta="step", hovertemplate=hover, row=1, col=1)
        # faint and out of the legend: one legend entry per model keeps the curves visible
        fig.add_scatter(x=[r["step"] for r in train_rows], y=[r["loss"] for r in train_rows], name=name,
                        legendgroup=name, showlegend=False, opacity=0.3, line={**line, "width": 0.8},
                        meta="step (training batch)", hovertemplate=hover, row=1, col=1)
        fig.add_scatter(x=[round(r["elapsed_s"] / 60, 2) for r in val], y=[r["val_loss"] for r in val], name=name,
                        legendgroup=name, showlegend=False, line=line, meta="minutes", hovertemplate=hover,
                        row=2, col=1)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="minutes of training (2-core CPU)", row=2, col=1)
    # from just below the lowest training loss to where the curves have left their first steep fall: the final
    # validation losses (1.42-1.55) differ by hundredths, which a range up to 2.6 squeezed into a few pixels
    fig.update_yaxes(title_text="nats per character", range=[1.1, 2.0])
    return fig.update_layout(line_plot_layout(620))


def _record(path: Path) -> dict | None:
    """What ``bench/compare_char_models.py`` wrote, or None where it has not run."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def measured_val_losses(path: Path | None = None) -> dict[str, float]:
    """Each model's validation loss as the table measured it (the shipped fp16 weights, the whole split in one
    pass), so the model picker and the table show the same figure; empty if the record is missing."""
    record = _record(path or ASSET)
    return {m["label"]: m["val_loss"] for m in record["models"]} if record else {}


def measured_on(path: Path = ASSET) -> str:
    """The table's label: the machine the bench ran on, short ("Intel Xeon (AVX-512 with bf16), 2 cores, no GPU"),
    since the project's experiments ran on several (the Inside tab's lag experiment names an AMD EPYC)."""
    record = _record(path) or {}
    hardware = re.sub(r"\((R|TM)\)| Processor| CPU", "", record.get("hardware", "").split(";")[0]).strip()
    return f"Measured on {hardware}" if hardware else "Not measured yet"


def comparison_rows(path: Path = ASSET) -> tuple[list[list], str]:
    """(table rows, a note on how they were measured) from the bench's record; no rows if it is missing."""
    record = _record(path)
    if record is None:
        return [], f"No measurements yet: run `python bench/compare_char_models.py` to write {path.name}."
    rows = []
    for m in record["models"]:
        hamlet = m.get("hamlet_loss")
        rows.append([m["label"], f"{m['val_loss']:.4f}", "—" if hamlet is None else f"{hamlet:.4f}", f"{m['params']:,}",
                     f"{m['train_tokens_per_s']:,}", f"{m.get('minutes_trained', 0):.1f}", f"{m['chars_per_s_at_100']:,}",
                     f"{m['chars_per_s_at_2000']:,}", f"{m['state_floats_at_2000']:,}"])
    return rows, record.get("note", "")
