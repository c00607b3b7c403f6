"""The "Inside the RNN" tab's "A cell's arithmetic" view: one step of the cell with the real numbers of the shipped
model, for a few units (``seqmodels.cell_arithmetic``). Part of ``demos/inside.py``'s tab; nothing to run here.
"""
from __future__ import annotations

import html

import gradio as gr

from seqmodels.cell_arithmetic import cell_arithmetic
from seqmodels.charmodels import cell_of
from seqmodels.inside import layer_states, text_features, top_correlated_units

from .inside_common import checked_ids, checked_index, checked_layer, parse_units, shaded_text, shown_char
from .textgen import TextModel

UNIT_COLUMNS = 4  # units side by side: enough to compare, narrow enough for a phone with a scroll
NAMED_FEATURES = ["position in line", "inside a word", "space", "end of line", "uppercase", "vowel"]
LOOK_CELL = {
    "lstm": "Look for: a forget gate f_t near 1 keeps c_(t−1) almost whole; an input gate i_t near 0 writes nothing new.",
    "gru": "Look for: an update gate z_t near 1 keeps h_(t−1); near 0 it takes the candidate n_t.",
    "rnn": "Look for: no gate: h_t is tanh of the two sums, so whatever h_(t−1) held is mixed into a new state.",
    "mingru": ("Look for: z_t reads x_t only, never h_(t−1). In layer 1, x_t is this character and the 3 before it, "
               "so the same four characters give the same gate whatever came earlier (compare characters 16 and 60)."),
    "rglru": "Look for: a_t near 1 keeps the old state for long; where r_t rises, a_t falls and the memory shortens.",
}
EXPLAIN_CELL = """
### A cell's arithmetic, one character at a time
What the cell computes when it reads one character, with the shipped model's real numbers, for a few of its units:
x_t (the character) and h_(t−1) (the previous state; the LSTM also keeps c_(t−1), its memory) go in, each gate adds
up its two parts, squashes the sum with a sigmoid σ (0 to 1) or tanh (−1 to 1), and the cell mixes old and new into
h_t. In the modern recurrences (minGRU, RG-LRU) each gate reads x_t alone, so it has one part, and h_t is a plain mix
of old and new, with no tanh. Step to the next character and watch the numbers change. These are the numbers text
generation computes: the same function runs both.
"""


def previous_index(index: float) -> int:
    return max(0, int(index or 0) - 1)


def next_index(text: str, index: float) -> int:
    return min(max(len(text or "") - 1, 0), int(index or 0) + 1)


def _default_units(tm: TextModel, ids: list[int], shown: str, layer: int) -> tuple[list[int], dict[int, str]]:
    """The units of ``layer`` that best track simple features of the text, with what each tracks."""
    hidden = layer_states(tm.model, ids)[layer - 1]
    features = text_features(shown)
    tracks: dict[int, str] = {}
    for name in NAMED_FEATURES:
        top = top_correlated_units(hidden, features[name], k=1)
        if top and top[0][0] not in tracks:
            tracks[top[0][0]] = f"tracks {name} (r = {top[0][1]:+.2f})"
        if len(tracks) == UNIT_COLUMNS:
            break
    return list(tracks), tracks


def _cell_style(value: float, kind: str) -> str:
    if kind == "gate":  # 0..1: green as the gate opens
        return f"background:rgba(44, 160, 44, {max(0.0, min(1.0, value)) * 0.6:.2f})"
    r, g, b = (214, 39, 40) if value >= 0 else (31, 119, 180)
    return f"background:rgba({r}, {g}, {b}, {min(1.0, abs(value)) * 0.6:.2f})"


def _table(step, units: list[int], headers: dict[int, str]) -> str:
    head = "".join(f"<th>unit&nbsp;{u}<br><small>{html.escape(headers.get(u, ''))}</small></th>" for u in units)
    rows = []
    for q in step.quantities:
        # a line above the first term of each gate, so the table reads gate by gate
        stage = ' class="stage"' if q.symbol.startswith(("W_i", "W_r", "W_z")) else ""
        cells = "".join(f'<td style="{_cell_style(float(q.values[u]), q.kind)}">{float(q.values[u]):+.3f}</td>'
                        for u in units)
        # the meaning under the symbol, not in a column of its own: a phone then has room for the units
        rows.append(f'<tr{stage}><td class="sym">{html.escape(q.symbol)}<br>'
                    f'<span class="what">{html.escape(q.meaning)}</span></td>{cells}</tr>')
    return (f'<div class="swipe-hint">the table scrolls down for the whole step ↓, and sideways where its {len(units)} '
            f'units run past the screen →</div>'
            f'<div class="inside-table"><table><tr><th class="sym">quantity</th>{head}</tr>'
            + "".join(rows) + "</table></div>")


def cell_arithmetic_view(text: str, model_name: str, layer: float = 1, index: float = 0, units: str = "", *,
                         models: dict[str, TextModel]):
    """One step of the cell at character ``index``: inputs, each gate's parts and value, the update and h_t."""
    tm, ids, shown, notes = checked_ids(text, model_name, models, minimum=1)
    cell = cell_of(tm.model)
    if cell == "transformer":
        raise gr.Error("a Transformer has no recurrent cell to step through: pick a recurrent model")
    layer = checked_layer(layer, tm)
    t = checked_index("character index", index, 0, len(ids) - 1)
    picked = parse_units(units, tm.model.config.hidden_size)
    if picked:
        headers = {}
    else:
        picked, headers = _default_units(tm, ids, shown, layer) if len(ids) > 1 else ([0], {})
    step = cell_arithmetic(tm.model, ids, t, layer - 1)
    # the text read so far, enough to see the line it is in; none after it (a newcomer took the characters shown
    # after the outlined one for ones the cell had read)
    lo = max(0, t - 60)
    context = shaded_text(shown[lo:t + 1], [0.0] * (t + 1 - lo), [f"character {lo + i}" for i in range(t + 1 - lo)],
                          marked={t - lo}, css_class="generated small")
    caption = (f"{model_name}, layer {layer}, reading character {t}: **{html.escape(shown_char(shown[t]))}**. "
               f"{LOOK_CELL.get(cell, '')}")
    if notes:
        caption += " Note: " + "; ".join(notes) + " (the index counts the characters the model reads)."
    return context, _table(step, picked[:2 * UNIT_COLUMNS], headers), caption

