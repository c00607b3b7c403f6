"""What the "Inside the RNN" views share: input checks, the example text, the unit heat map and coloured text, and
the pickers (the Layer slider, the characters and the span, fitted to the text the models read).

Imported by ``demos/inside.py``, ``demos/inside_cell.py`` and ``demos/inside_memory.py``; nothing to run here.
"""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go
import torch

from seqmodels.charlm import unseen_note

from .checks import FittedSlider, check_number
from .style import TOOLBAR_PX, colour_scale, figure
from .textgen import TextModel
from .wiring import clamped_note

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
        notes.append(unseen_note(text, enc.unknown))
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


def layer_count(model_name: str, models: dict[str, TextModel]) -> int:
    return models[model_name].model.config.num_layers if model_name in models else 1


def layer_range(model_name: str, layer: float = 1, *, models: dict[str, TextModel]) -> FittedSlider:
    """The Layer slider for ``model_name``: 1 to its number of layers, the current value kept where it fits (a
    layer sent before the browser had the new range is brought into it: ``FittedSlider``)."""
    count = layer_count(model_name, models)
    if count == 1:  # Gradio refuses a slider whose maximum is its minimum: one layer gets a slider that cannot move
        return FittedSlider(minimum=1, maximum=2, value=1, step=1, label="Layer (this model has one)", info="",
                            interactive=False)
    # info "": a note on a layer typed for the last model ("7 is above the maximum 2") goes with it
    return FittedSlider(minimum=1, maximum=count, value=min(max(int(layer or 1), 1), count), step=1, label="Layer",
                        info="", interactive=True)


def read_by_models(text: str, models: dict[str, TextModel]) -> str:
    """The text as the models read it: without the characters they never saw (all of them share one vocabulary).
    The views count characters in it, and so do the pickers."""
    text = text or ""
    if not models:
        return text
    tokenizer = next(iter(models.values())).tokenizer
    return tokenizer.decode(tokenizer.encode(text).ids)


def character_noted(text: str, typed, low: int, *, models: dict[str, TextModel]) -> dict:
    """The character picker's hint after a number was typed into it: what was used instead when the number was past
    the text's characters (the page moves it to the last one without a word), else no hint."""
    note = clamped_note(typed, low, max(len(read_by_models(text, models)) - 1, low))
    return gr.update(info=f"⚠️ {note}" if note else "")


def fit_to_text(text: str, index: float, target: float, span_start: float, span_end: float,
                length_before: int | None = None, *, models: dict[str, TextModel]) -> tuple:
    """The character pickers fitted to the text the models read: the arithmetic's character and the prediction
    whose sources are shown (sliders that reached past the text's end offered characters with nothing to show),
    and the pattern's span, moved inside the text when it lies past its end, onto its first word when the span is
    empty. A slider needs a maximum above its minimum (0 and 1), so a text of one to three characters keeps a
    little room the handlers then explain.

    A picker that stood at the end of the text before (``length_before`` characters) stays at its end: one typing a
    text of their own starts from one character, and the pickers would otherwise stay on its first two. The last
    value returned is the new length, for the next call."""
    length = len(read_by_models(text, models))
    last = length - 1
    index_max, target_max = max(last, 1), max(last, 2)
    if length_before is not None and length > length_before:
        if int(index or 0) >= max(length_before - 1, 0):
            index = index_max
        if int(target or 0) >= max(length_before - 1, 1):
            target = target_max
    end = min(int(span_end or 0), last + 1)
    start = min(int(span_start or 0), max(end - 1, 0))
    if end <= start and length:  # emptied with the text (a newcomer cleared it to paste theirs): the first word
        start, end = 0, next((i for i, ch in enumerate(text[:length]) if i and ch.isspace()), min(length, 8))
    # the values stay on characters the views accept (index 0 to last, target 1 to last) where the maxima cannot
    return (gr.Slider(maximum=index_max, value=min(int(index or 0), max(last, 0))),
            gr.Slider(maximum=target_max, value=min(max(int(target or 1), 1), max(last, 1))),
            gr.skip() if start == span_start else start, gr.skip() if end == span_end else end, length)


def from_utf16(text: str, offset: int) -> int:
    """A browser's position in ``text``, counted in UTF-16 units (an emoji is two), as a position in the string."""
    units = 0
    for i, ch in enumerate(text):
        if units >= offset:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


def selection(text: str, evt: gr.SelectData, *, models: dict[str, TextModel]):
    """The characters selected in the text box: (index of the first, span start, span end), counted in the text
    the models read. A click that selects nothing picks the character for the arithmetic view and leaves the span
    as it was."""
    text = text or ""
    start, end = evt.index if isinstance(evt.index, (list, tuple)) else (evt.index, evt.index)
    start, end = (len(read_by_models(text[:from_utf16(text, i)], models)) for i in (start, end))
    if end <= start:
        return start, gr.skip(), gr.skip()
    return start, start, end


def line_position_hint(best: tuple[int, float] | None, shown: list[int] = ()) -> str:
    """The caption's example of a unit to look for: the layer's line-position unit, said the way it really runs, and
    how to see it when it is not among the ``shown`` rows (a newcomer looked for it in vain)."""
    if best is None or abs(best[1]) < 0.5:  # a weak match would send the reader looking for a pattern that is not there
        r = f" (the best has r = {best[1]:+.2f})" if best else ""
        return (f"such as one that tracks the position in the line. No unit of this layer does so closely{r}: try "
                "another layer or model; the table lists each feature's best unit.")
    unit, r = best
    runs = "grows along each line and resets" if r > 0 else "falls along each line and jumps back"
    where = "" if unit in shown else " (not among these rows: pick “position in line” to see it)"
    return f"such as unit {unit}, which tracks the position in the line (r = {r:+.2f}): it {runs} at ↵{where}."


def unfollowable_feature_note(feature: str, followed: dict, tokenizer) -> list[str]:
    """A note when ``feature`` never changes over the text, so that no unit can follow it and the view shows the units
    that vary most instead (a newcomer picked "inside quotes" and met unit 0 without a word); else none. The shipped
    models never saw a double quote: Tiny Shakespeare has none."""
    if feature in followed:
        return []
    why = (": the model never saw a double quote (its training text has none), so it reads none"
           if feature == "inside quotes" and '"' not in tokenizer else "")
    return [f"“{feature}” does not change over this text{why}; no unit can follow it, so the heat map shows the "
            "units that vary most"]
