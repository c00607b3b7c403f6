"""What the "Inside the RNN" views share: input checks, the example text, and the unit heat map and coloured text.

Imported by ``demos/inside.py``, ``demos/inside_cell.py`` and ``demos/inside_memory.py``; nothing to run here.
"""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go
import torch

from .checks import check_number
from .style import TOOLBAR_PX, colour_scale, figure
from .textgen import TextModel

MAX_CHARS = 500  # every view renders in under a second at this length on 2 CPU cores (bench/inside_views.py)
ASSETS = Path(__file__).resolve().parent / "assets"
# 472 characters from the start of Tiny Shakespeare's validation split (text no model trained on): long enough
# for the vanishing gradient to show 100 steps back, as in the README's table
EXAMPLE_TEXT = (ASSETS / "inside_example.txt").read_text(encoding="utf-8")
SHOWN_UNITS = 24  # rows of a heat map: enough to see a pattern, few enough to follow one row with the eye


def checked_ids(text: str, model_name: str, models: dict[str, TextModel],
                minimum: int = 2) -> tuple[TextModel, list[int], str, list[str]]:
    """(TextModel, ids, the text the model reads, notes) or a gr.Error that says what is wrong."""
    if model_name not in models:
        raise gr.Error(f"unknown model {model_name!r}; available: {', '.join(models) or 'none'}")
    text = "" if text is None else str(text)
    if not text.strip():
        raise gr.Error("type some text first: the views show what the model does while it reads it")
    if len(text) > MAX_CHARS:
        raise gr.Error(f"the text is {len(text):,} characters long; the limit here is {MAX_CHARS}")
    tm = models[model_name]
    enc = tm.tokenizer.encode(text)
    notes = []
    if enc.unknown:
        notes.append(f"dropped {len(enc.unknown)} character(s) the model never saw: {''.join(enc.unknown[:20])!r}")
    if len(enc.ids) < minimum:
        raise gr.Error("the text needs at least two characters the model knows")
    return tm, enc.ids, tm.tokenizer.decode(enc.ids), notes


def checked_layer(layer, tm: TextModel) -> int:
    """The 1-based layer number, or a gr.Error; empty means layer 1."""
    layers = tm.model.config.num_layers
    layer = 1 if layer is None or layer == "" else check_number("layer", layer, -1e9, 1e9)
    if not 1 <= layer <= layers:
        raise gr.Error(f"layer must be between 1 and {layers}")
    return int(layer)


def checked_index(name: str, value, low: int, high: int) -> int:
    """A character index in [low, high] (say which character of the text the model read), or a gr.Error."""
    if high < low:
        raise gr.Error(f"the text is too short for a {name}")
    return int(check_number(name, value, low, high))


def parse_units(listed: str, hidden_size: int) -> list[int]:
    """'12, 40 7' -> [12, 40, 7], or a gr.Error naming what is not a unit of this layer."""
    units = []
    for word in str(listed or "").replace(",", " ").split():
        if not word.isdigit() or int(word) >= hidden_size:
            raise gr.Error(f"{word!r} is not a unit: units are numbered 0 to {hidden_size - 1}")
        units.append(int(word))
    return list(dict.fromkeys(units))  # each once, in the order given


def shown_char(ch: str) -> str:
    return {"\n": "↵", " ": "␣"}.get(ch, ch)


def unit_heatmap(values: torch.Tensor, units: list[int], text: str, title: str, *, highlight: int | None = None,
                 span: tuple[int, int] | None = None, colorscale: str = "RdBu_r", zmin: float = -1,
                 zmax: float = 1) -> go.Figure:
    """values (T, H) for ``units`` only: time across, one row per unit in the given order, the first at the top.

    Hovering a cell shows the unit, the character read at that step and the value; the row of unit ``highlight`` is
    outlined, and so are the columns of characters [start, end) of ``span``.
    """
    z = values[:, units].T.float().numpy()  # (K, T)
    chars = [shown_char(ch) for ch in text]
    labels = [f"unit {u}" for u in units]
    ticks = list(labels)  # the rows' names on the axis, the highlighted one marked; hover names them plainly
    shapes = []
    if highlight in units:
        row = units.index(highlight)
        shapes.append({"type": "rect", "x0": -0.5, "x1": len(text) - 0.5, "y0": row - 0.5, "y1": row + 0.5,
                       "line": {"color": "black", "width": 2}})
        ticks[row] = f"<b>▶ unit {highlight}</b>"
    if span is not None:
        start, end = span
        shapes.append({"type": "rect", "x0": start - 0.5, "x1": end - 0.5, "xref": "x", "y0": 0, "y1": 1,
                       "yref": "y domain", "line": {"color": "black", "width": 2}, "fillcolor": "rgba(0,0,0,0)"})
    heat = {"type": "heatmap", "z": z, "y": labels, "x": list(range(len(text))),
            "colorscale": colour_scale(colorscale), "zmin": zmin, "zmax": zmax,
            "customdata": [chars] * len(units), "colorbar": {"thickness": 10, "len": 0.9},
            "hovertemplate": "%{y}<br>character %{x}: <b>%{customdata}</b><br>value %{z:.3f}<extra></extra>"}
    height = 204 + 15 * len(units)
    layout = {"yaxis": {"autorange": "reversed", "tickvals": list(range(len(units))), "ticktext": ticks,
                        "type": "category"},
              "xaxis": {"title": {"text": "character read at each step (hover or tap for it)"}},
              # the title under Plotly's toolbar, as line_plot_layout places a legend (8 px more: a title's line is
              # taller than its letters)
              "title": {"text": title, "font": {"size": 13}, "yref": "container", "y": 1 - (TOOLBAR_PX + 8) / height,
                        "yanchor": "top"},
              "height": height, "margin": {"l": 10, "r": 10, "t": 94, "b": 40}}
    if shapes:
        layout["shapes"] = shapes
    return figure([heat], layout)


def shaded_text(text: str, values: list[float], titles: list[str], rgb: tuple[int, int, int] = (214, 39, 40),
                negative_rgb: tuple[int, int, int] = (31, 119, 180), marked: set[int] = frozenset(),
                css_class: str = "generated") -> str:
    """``text`` with each character's background set by ``values`` in [-1, 1] and its hover text by ``titles``;
    characters in ``marked`` are underlined (the character picked, a selected span)."""
    spans = []
    for i, (ch, a, title) in enumerate(zip(text, values, titles)):
        a = max(-1.0, min(1.0, a))
        r, g, b = rgb if a >= 0 else negative_rgb
        style = f"background:rgba({r}, {g}, {b}, {abs(a):.2f})"
        if i in marked:
            style += ";outline:2px solid #000;font-weight:bold"
        shown = "↵\n" if ch == "\n" else html.escape(ch)
        spans.append(f'<span style="{style}" title="{html.escape(title)}">{shown}</span>')
    return f'<pre class="{css_class}">' + "".join(spans) + "</pre>"


def unit_html(text: str, activation: torch.Tensor) -> str:
    """Text with each character's background set by one unit's activation: blue -1 ... red +1."""
    values = activation.tolist()
    return shaded_text(text, values, [f"{a:+.2f}" for a in values])
