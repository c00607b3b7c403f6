"""The "Inside the RNN" tab's views of memory across the text: what each character remembers (Distill's
connectivity, ``seqmodels.inside.input_influence``) and the units that follow a pattern and where else they fire
(LSTMVis, ``span_units`` and ``units_together``). Part of ``demos/inside.py``'s tab; nothing to run here.
"""
from __future__ import annotations

import html
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from weakref import WeakKeyDictionary

import gradio as gr
import torch

from seqmodels.charmodels import cell_of
from seqmodels.inside import input_influence, layer_states, span_units, units_together

from .inside_common import ASSETS, checked_ids, checked_index, checked_layer, shaded_text, unit_heatmap
from .inside_gradient import GRADIENT_ORDER
from .style import model_colour
from .textgen import TextModel

DECADES = 4  # the shading spans this many powers of ten below the strongest character: the RNN's fade shows
SHOWN_BEFORE = 300  # characters shown before the prediction; older ones are cut with "…"
PATTERN_UNITS = 4  # units followed: few enough that all of them firing at once is a real match
MATCHES = 6
INFLUENCE_ORDER = [*GRADIENT_ORDER, "Transformer"]
# the next 2,995 characters of the validation split after the example text (text no model trained on)
VALIDATION_TEXT = (ASSETS / "shakespeare_val.txt").read_text(encoding="utf-8")
# model -> every layer's states (T, H) over the excerpt, computed once; weak keys, so that a model that is gone
# (a test's tiny one) takes its states with it instead of leaving them to a new model that reuses its id
_validation_states: WeakKeyDictionary = WeakKeyDictionary()
# one lock per model: a request made while the start-up thread is still reading the excerpt waits for that work
# instead of doing it a second time on the same two cores
_validation_locks: WeakKeyDictionary = WeakKeyDictionary()
_locks_lock = threading.Lock()

EXPLAIN_INFLUENCE = """
### What each character remembers
Pick a character: every character before it is shaded by how much the prediction of that character depends on it,
the norm of the gradient of that prediction's loss with respect to the earlier character's input (Distill's
"Memorization in RNNs"). The shading is on a log scale over four powers of ten, one colour per model; hover a
character for its number. The same text, one model under another: the three classic cells, the two modern
recurrences and the Transformer, which reads every character in its window directly instead of through a state.
Its window is 256 characters, yet it can reach further: each of its layers looks 256 back at what the layer below
already gathered, so stacked layers pass older characters on indirectly.
"""
EXPLAIN_PATTERN = """
### Find the pattern
Select a few characters in the text box above (a name, a word, the end of a line) or type the span: the view finds
the units of the chosen model and layer that stand out most over that span, compared with the rest of your text
(far more on than usual, +, or far more off, −: off is as much a signal), then searches the next 3,000 characters
of the validation split for the places where all of them do so together (LSTMVis).
"""


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def input_influence_view(text: str, index: float = 300, *, models: dict[str, TextModel]):
    """Each character before ``index`` shaded by how much the prediction there depends on it, for every model."""
    available = [name for name in INFLUENCE_ORDER if name in models]
    if not available:
        raise gr.Error("no character model is loaded")
    checked = [checked_ids(text, name, models) for name in available]
    _, ids, shown, notes = checked[0]
    t = checked_index("character number", index, 1, len(ids) - 1)
    # one model per thread: autograd runs in C++ without the GIL, as in the gradient-flow view
    with ThreadPoolExecutor(len(checked)) as pool:
        results = list(pool.map(lambda c: input_influence(c[0].model, c[1], t), checked))
    lo = max(0, t - SHOWN_BEFORE)
    blocks, reach = [], []
    for name, (norms, loss) in zip(available, results):
        top = float(norms.max()) or 1.0
        shade = [max(0.0, 1 + math.log10(max(float(n), 1e-30) / top) / DECADES) for n in norms[lo:]]
        titles = [f"{name}: ‖∂loss/∂x‖ = {float(n):.2e}" for n in norms[lo:]]
        shade.append(0.0)
        titles.append(f"{name} predicts this character with loss {loss:.2f}")
        body = shaded_text(shown[lo:t + 1], shade, titles, rgb=_rgb(model_colour(name) or "#d62728"),
                           marked={t - lo}, css_class="generated small")
        # the oldest character still within 1/1000 of the strongest one: how far back this prediction reads
        back = t - int((norms >= top * 1e-3).nonzero()[0])
        reach.append(f"{name} {back}")
        colour = model_colour(name) or "#000"
        whole = " (the whole text)" if back == t else ""
        if lo:  # older characters are cut: say so where the text starts, not after the heading
            body = body.replace(">", ">…", 1)
        blocks.append(f'<div><b style="color:{colour}">{html.escape(name)}</b> '
                      f"(loss {loss:.2f}; reads back {back} character{'' if back == 1 else 's'}{whole} at 1/1000 of the "
                      f"strongest){body}</div>")
    char = {"\n": "↵", " ": "␣"}.get(shown[t], shown[t])
    caption = (f"The prediction of character {t} (**{html.escape(char)}**), outlined. Look for: how far back the colour "
               f"reaches in each model (characters back at 1/1000 of the strongest: {', '.join(reach)}).")
    if notes:
        caption += " Note: " + "; ".join(notes) + " (the number counts the characters the model reads)."
    return "".join(blocks), caption


def validation_states(tm: TextModel, layer: int) -> tuple[str, torch.Tensor]:
    """The validation excerpt as ``tm`` reads it and its states (T, H) at ``layer``, computed on first use."""
    ids = tm.tokenizer.encode(VALIDATION_TEXT).ids
    with _locks_lock:
        lock = _validation_locks.setdefault(tm.model, threading.Lock())
    with lock:
        if tm.model not in _validation_states:
            _validation_states[tm.model] = layer_states(tm.model, ids)  # every layer in one pass
    return tm.tokenizer.decode(ids), _validation_states[tm.model][layer - 1]


def warm_validation_states(models: dict[str, TextModel]) -> None:
    """Compute every recurrent model's states over the validation excerpt, so that no request waits for them
    (1.3 s for the LSTM here; ``build_tab`` runs this on a background thread at start-up)."""
    for tm in models.values():
        if cell_of(tm.model) != "transformer":
            validation_states(tm, 1)


def _best_places(together: torch.Tensor, count: int, width: int) -> list[int]:
    """The ``count`` steps where ``together`` is highest, at least ``width`` apart (one per place in the text)."""
    taken: list[int] = []
    for step in together.argsort(descending=True).tolist():
        if all(abs(step - other) >= width for other in taken):
            taken.append(step)
            if len(taken) == count:
                break
    return taken


def find_pattern(text: str, model_name: str, layer: float = 1, start: float = 0, end: float = 1, *,
                 models: dict[str, TextModel]):
    """The units most active over characters [start, end), and where in the validation text they fire together."""
    tm, ids, shown, notes = checked_ids(text, model_name, models)
    if cell_of(tm.model) == "transformer":
        raise gr.Error("a Transformer has no recurrent state to follow: pick a recurrent model")
    layer = checked_layer(layer, tm)
    start = checked_index("span start", start, 0, len(ids) - 1)
    end = checked_index("span end", end, 0, len(ids))
    if end <= start:
        raise gr.Error("the span is empty: select at least one character (the end comes after the start)")
    hidden = layer_states(tm.model, ids)[layer - 1]
    units = span_units(hidden, start, end, k=PATTERN_UNITS)
    z = (hidden - hidden.mean(0)) / hidden.std(0).clamp_min(1e-6)  # as span_units scores them
    fig = unit_heatmap(z, [u for u, _ in units], shown, f"{model_name}, layer {layer}: the {len(units)} units that "
                       "stand out over the span<br>(standard deviations from each unit's mean)", span=(start, end),
                       zmin=-3, zmax=3)
    val_text, val_hidden = validation_states(tm, layer)
    together = units_together(val_hidden, units)  # (N,)
    colour = _rgb(model_colour(model_name) or "#d62728")
    places = []
    for step in _best_places(together, MATCHES, width=max(20, end - start)):
        lo, hi = max(0, step - 40), min(len(val_text), step + 25)
        values = [max(0.0, float(v)) / 2 for v in together[lo:hi]]  # 2 sd and more: full colour
        titles = [f"all {len(units)} units at least {float(v):+.2f} sd" for v in together[lo:hi]]
        places.append(f'<div>at character {step:,}, strength {float(together[step]):.2f} sd'
                      + shaded_text(val_text[lo:hi], values, titles, rgb=colour, css_class="generated small")
                      + "</div>")
    # a negative score is a unit far more off than usual: "most active" beside "-1.8 sd" read as a mistake
    listed = ", ".join(f"{u} ({s:+.1f} sd, {'on' if s >= 0 else 'off'})" for u, s in units)
    span = shown[start:end].replace("\n", "↵")
    caption = (f"Span “{html.escape(span)}”: units {listed}. Below, the {len(places)} places in the next 3,000 "
               "characters of the validation split where these units stand out together, each on or off as over "
               "the span (shade: the weakest of them at each character). Look for: the same kind of text as your span, "
               "such as speaker names, line ends or one word.")
    if notes:
        caption += " Note: " + "; ".join(notes) + " (positions count the characters the model reads)."
    return fig, "".join(places), caption

