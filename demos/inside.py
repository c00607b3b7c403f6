"""The "Inside the RNN" tab: memory, gates, a cell's arithmetic, what each character remembers, units that follow a
pattern and the vanishing gradient, on the shipped models.

Every view is computed from the same weights the Text generation tab runs (``seqmodels.inside``,
``seqmodels.cell_arithmetic``): ``app.py`` hands both tabs the one dict of loaded character models. Handlers are
plain functions that take those models and return Plotly figures (hover shows unit, character and value), matplotlib
figures and HTML. This file holds the state and gate views and ``build_tab``, which lays out every view and wires
it (``api_name`` "hidden_states", "gates", "cell_arithmetic", "input_influence", "find_pattern", "gradient_flow");
the other views live in ``inside_cell.py``, ``inside_memory.py`` and ``inside_gradient.py``.
"""
from __future__ import annotations

import copy
import functools
import threading

import gradio as gr
import torch
from plotly.subplots import make_subplots

from seqmodels.charmodels import cell_of
from seqmodels.inside import text_features, top_correlated_units, unroll

from .checks import FittedSlider, unset
from .compare import training_curves
from .inside_cell import EXPLAIN_CELL, cell_arithmetic_view, next_index, previous_index
from .inside_common import (EXAMPLE_TEXT, MAX_CHARS, SHOWN_UNITS, character_noted, checked_ids, checked_layer,
                            fit_to_text, layer_count, layer_range, line_position_hint, parse_units, read_by_models,
                            selection, shown_char, unit_heatmap, unit_html, unfollowable_feature_note)
from .inside_gradient import EXPLAIN_GRADIENT, EXPLAIN_LAG, gradient_flow_plot, memory_lag_plot
from .inside_memory import (EXPLAIN_INFLUENCE, EXPLAIN_PATTERN, find_pattern, input_influence_view,
                            warm_validation_states)
from .style import TOOLBAR_PX, colour_scale, figure, titled_plot
from .textgen import TextModel
from .wiring import bind_models, bring_into_view, clamped_note, clear_on, message_box, wire

__all__ = ["EXAMPLE_TEXT", "MAX_CHARS", "build_tab", "gates", "gradient_flow_plot", "hidden_states",
           "memory_lag_plot", "training_curves"]
ORDERS = ["correlation with the feature", "variance over the text", "the units I list"]


def _read(text: str, model_name: str, layer, models: dict[str, TextModel]):
    """Check the inputs, then unroll the model over the text: (TextModel, text read, notes, layer, Unrolled)."""
    tm, ids, shown, notes = checked_ids(text, model_name, models)
    layer = checked_layer(layer, tm)
    return tm, shown, notes, layer, tm.compute(unroll, ids)


def _by_variance(values: torch.Tensor, k: int) -> list[int]:
    return values.var(0).argsort(descending=True)[:k].tolist()


def hidden_states(text: str, model_name: str, layer: float = 1, unit: float | None = None,
                  feature: str = "inside quotes", order: str = ORDERS[0], listed: str = "", *,
                  models: dict[str, TextModel]):
    """A heat map of the most informative hidden units over time, the text coloured by one unit, feature units."""
    tm, shown, notes, layer, run = _read(text, model_name, layer, models)
    cfg = tm.model.config
    hidden = run.hidden[layer - 1]  # (T, H)
    features = text_features(shown)
    best = {name: top[0] for name, values in features.items()
            if (top := top_correlated_units(hidden, values, k=1))}  # feature -> (unit, r)
    table = sorted(([name, u, round(r, 3)] for name, (u, r) in best.items()), key=lambda row: -abs(row[2]))
    listed_units = parse_units(listed, cfg.hidden_size) if order == ORDERS[2] else []
    if order == ORDERS[2] and not listed_units:
        raise gr.Error("list the units to show, for example: 12, 40, 7")
    # checked here, not by the field's minimum: Gradio's own check shows a bare "Error" over every output
    if isinstance(unit, (int, float)) and unit < -1:
        raise gr.Error(f"unit must be -1 (the best match) or between 0 and {cfg.hidden_size - 1}, not {unit:g}")
    if unset(unit):  # the best match: with units listed, the first of them (a newcomer found a unit they never listed)
        unit = listed_units[0] if listed_units else best[feature][0] if feature in best else _by_variance(hidden, 1)[0]
    unit = int(unit)
    if not 0 <= unit < cfg.hidden_size:
        raise gr.Error(f"unit must be between 0 and {cfg.hidden_size - 1}")
    if listed_units:
        units, why = listed_units, "the units you listed"
    elif order == ORDERS[0] and feature in features and (top := top_correlated_units(hidden, features[feature],
                                                                                         k=SHOWN_UNITS)):
        units, why = [u for u, _ in top], f"|correlation| with “{feature}”"
    else:
        units, why = _by_variance(hidden, SHOWN_UNITS), "variance over the text"
    if unit not in units:
        units = [unit, *units[:SHOWN_UNITS - 1]]
    what = "residual stream after block" if cell_of(tm.model) == "transformer" else "hidden state h_t"  # no state
    lim = 1.0 if cell_of(tm.model) in ("rnn", "lstm", "gru") else float(hidden.abs().quantile(0.99)) or 1.0
    fig = unit_heatmap(hidden, units, shown, f"{model_name}, layer {layer}: {what}, {len(units)} of "
                       f"{cfg.hidden_size} units,<br>sorted by {why}", highlight=unit, zmin=-lim, zmax=lim)
    caption = (f"Unit {unit} of layer {layer} colours the text (red = positive, blue = negative; hover or tap for "
               "values). Look for: a row of the heat map that changes colour at the same places in every line, "
               + line_position_hint(best.get("position in line"), units))
    if notes := [*([] if listed_units else unfollowable_feature_note(feature, best, tm.tokenizer)), *notes]:
        caption += " Note: " + "; ".join(notes)
    return fig, unit_html(shown, hidden[:, unit]), caption, table


def _gate_panels(cell: str, g: dict, run, layer: int) -> list[tuple[str, torch.Tensor, bool]]:
    """(title, values (T, H), whether it is a gate in 0..1) for each gate the cell has. Titles of at most about 46
    characters: a 390 px phone cut longer ones at both edges (the formulas are in "A cell's arithmetic")."""
    if cell == "lstm":
        return [("input gate i_t", g["input"], True), ("forget gate f_t", g["forget"], True),
                ("output gate o_t", g["output"], True),
                ("cell state c_t (the long-term memory)", run.cell[layer - 1], False)]
    if cell == "gru":
        return [("reset gate r_t", g["reset"], True), ("update gate z_t (1 = keep the old state)", g["update"], True)]
    if cell == "mingru":
        return [("update gate z_t (never reads h; 1 = write new)", g["update"], True)]
    if cell == "minlstm":
        return [("forget gate f'_t (share of the old state kept)", g["forget"], True),
                ("input gate i'_t = 1 − f'_t (share of new)", g["input"], True)]
    if cell == "rglru":
        return [("recurrence gate r_t (near 1: shorter memory)", g["recurrence"], True),
                ("input gate i_t", g["input"], True),
                ("decay a_t (share of the old state kept)", g["decay"], True)]
    return []


@functools.cache
def _stacked_layout(titles: tuple[str, ...]) -> dict:
    """make_subplots' layout of one panel per title, stacked, sharing the x axis (x, y for the top, then x2, y2, ...).
    Made once per cell type: make_subplots checks every property it sets, 10-15 ms a call. Copy it before use."""
    layout = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=titles).to_dict()["layout"]
    del layout["template"]  # the default, which ``figure`` adds anyway
    return layout


def gates(text: str, model_name: str, layer: float = 1, *, models: dict[str, TextModel]):
    """The gate values (and the LSTM's cell state) over time, for one layer's units whose gates vary most."""
    tm, shown, notes, layer, run = _read(text, model_name, layer, models)
    cell = cell_of(tm.model)
    g = run.gates[layer - 1]
    panels = _gate_panels(cell, g, run, layer)
    if not panels:
        if cell == "transformer":
            # short lines: the figure does not wrap them, and a phone cut longer ones at both edges
            message = ("A Transformer has no gates and<br>no recurrent state: each character<br>attends to the ones "
                       "before it<br>in its window. Pick a recurrent model.")
            summary = "The Transformer has no gates."
        else:
            message = ("A vanilla RNN has no gates: every step<br>it overwrites its state with<br>"
                       "h_t = tanh(W_ih x_t + W_hh h_(t-1) + b).<br>Pick a model with gates: the LSTM,<br>"
                       "GRU, minGRU or RG-LRU.")
            summary = "The vanilla RNN has no gates."
        fig = figure([], {"annotations": [{"text": message, "showarrow": False, "font": {"size": 15}, "x": 0.5,
                                           "y": 0.5, "xref": "paper", "yref": "paper"}],
                          "xaxis": {"visible": False}, "yaxis": {"visible": False}, "height": 220,
                          "plot_bgcolor": "white"})  # no grey-blue band behind the message's middle lines
    else:
        # the same units in every panel: those whose gates move most over this text
        units = _by_variance(torch.cat([v for _, v, is_gate in panels if is_gate], dim=1), 4 * SHOWN_UNITS)
        units = list(dict.fromkeys(u % run.hidden[layer - 1].size(1) for u in units))[:SHOWN_UNITS // 2]
        layout = copy.deepcopy(_stacked_layout(tuple(title for title, _, _ in panels)))
        chars = [shown_char(ch) for ch in shown]
        labels = [f"unit {u}" for u in units]
        data = []
        for row, (title, values, is_gate) in enumerate(panels, start=1):
            suffix = "" if row == 1 else str(row)  # make_subplots' names: x, y, then x2, y2, ...
            data.append({"type": "heatmap", "z": values[:, units].T.numpy(), "x": list(range(len(shown))),
                         "y": labels, "customdata": [chars] * len(units),
                         "coloraxis": "coloraxis" if is_gate else "coloraxis2",
                         "hovertemplate": (f"{title.split(' (')[0]}<br>%{{y}}, character %{{x}}: <b>%{{customdata}}</b>"
                                           "<br>value %{z:.3f}<extra></extra>"),
                         "xaxis": "x" + suffix, "yaxis": "y" + suffix})
            # every row labelled: left to itself, Plotly labels every other unit when the rows are this thin
            layout["yaxis" + suffix].update(autorange="reversed", tickmode="array", tickvals=labels, ticktext=labels,
                                            tickfont={"size": 11})
            # a line through the panel at each line end (over hundreds of characters the columns read as a barcode,
            # and "snap at line ends" could not be checked): red on the gates, black on the red-blue cell state
            layout.setdefault("shapes", []).extend(
                {"type": "line", "xref": "x" + suffix, "yref": f"y{suffix} domain", "x0": i, "x1": i, "y0": 0, "y1": 1,
                 "line": {"color": "#e8173a" if is_gate else "#111", "width": 2}}
                for i, ch in enumerate(shown) if ch == "\n")
        for annotation in layout["annotations"]:  # the panels' titles
            annotation["font"]["size"] = 12
        layout["xaxis" + ("" if len(panels) == 1 else str(len(panels)))]["title"] = {
            "text": "character read at each step (hover or tap for it)"}
        lim = float(run.cell[layer - 1].abs().quantile(0.99)) if cell == "lstm" else 1.0
        layout.update(coloraxis={"colorscale": colour_scale("Viridis"), "cmin": 0, "cmax": 1,
                                 "colorbar": {"title": {"text": "gate"}, "thickness": 10, "len": 0.5, "y": 0.75}},
                      coloraxis2={"colorscale": colour_scale("RdBu_r"), "cmin": -lim, "cmax": lim,
                                  "colorbar": {"title": {"text": "c_t"}, "thickness": 10, "len": 0.3, "y": 0.12}},
                      height=174 + 220 * len(panels), margin={"l": 10, "r": 10, "t": 99, "b": 40},
                      # just under the toolbar, which a phone shows all the time (at the very top the two overlapped),
                      # with the first panel's title below it (lower, they ran into each other on a phone)
                      title={"text": f"{model_name}, layer {layer}:<br>{len(units)} units whose gates vary most",
                             "font": {"size": 13}, "y": 1, "yref": "container", "yanchor": "top",
                             "pad": {"t": TOOLBAR_PX + 6}})
        fig = figure(data, layout)
        means = {name: float(v.mean()) for name, v in g.items() if name != "candidate"}
        summary = ("Mean gate values: " + ", ".join(f"{k} {v:.2f}" for k, v in means.items()) + ". Look for: "
                   "gates that snap open or shut at spaces and at line ends (the vertical lines mark the line ends). "
                   "Yellow = 1, purple = 0. A 1 opens an LSTM gate fully; elsewhere it differs (see the panel "
                   "titles): the GRU's z_t = 1 keeps the old state, the minGRU's writes the new one.")
    if notes:
        summary = summary.rstrip(".") + ". Note: " + "; ".join(notes)
    return fig, summary


def listed_units_box(order: str) -> gr.Textbox:
    """The box of units to show, there only while the sort is "the units I list": every other sort ignores it."""
    return gr.Textbox(visible=order == ORDERS[2])


def controls_shown():
    return gr.Column(visible=True)


def controls_hidden():
    """For the views that read every classic model at once, or none: the Model and Layer controls would do nothing."""
    return gr.Column(visible=False)


EXPLAIN_MEMORY = f"""
### Memory: the hidden state, unrolled
A recurrent network reads one character per **time step** and keeps a vector, the **hidden state** h_t, as its
memory of everything so far: h_t = f(x_t, h_(t-1)). "Unrolling" means drawing one copy of the cell per step: the
heat map *is* the unrolled network, one column per character, one row per unit of h_t: {SHOWN_UNITS} of the layer's
units (208 to 512, by model), as the *Show units* menu sorts them. Pick a feature and the tab finds the unit that
correlates with it most, outlines it, and colours the text by it. For the **Transformer**, the rows are each block's
output (its *residual stream*): it has no memory carried from step to step, and reads the characters before it
through attention instead.
"""
EXPLAIN_GATES = """
### Gates: how the LSTM and the GRU decide what to keep
A vanilla RNN rewrites its whole state every step. An **LSTM** keeps a separate cell state c_t and three gates,
numbers between 0 and 1 for every unit: the *forget* gate says how much of the old c to keep, the *input* gate
how much new content to write, the *output* gate how much of the memory to show. A **GRU** merges this into an
*update* gate (keep the old state or take the new candidate) and a *reset* gate (how much of the old state the
candidate may read). The modern recurrences (**minGRU**, **RG-LRU**) compute their gates from the layer's input
alone (the character and the 3 before it, through a short convolution, plus what lower layers pass up), never from
the previous state, so training computes them for all characters at once.
"""


def build_tab(models: dict[str, TextModel]) -> None:
    """Lay out the "Inside the RNN" tab inside the current gr.Blocks and wire its events to ``models``."""
    choices = list(models) or ["(no model found)"]
    first = "LSTM" if "LSTM" in models else choices[0]
    gr.Markdown("These views open up the models of the Text generation tab while they read a text of yours (up to "
                f"{MAX_CHARS} characters). Select characters in the text to pick them for the arithmetic and pattern "
                "views.")
    # the text beside the Model and Layer controls on a laptop, above them on a phone: one under the other, the
    # first view's button was at y=1016 of a 1366 x 900 screen
    with gr.Row(equal_height=False):
        text = gr.Textbox(value=EXAMPLE_TEXT, lines=6, max_lines=10, max_length=MAX_CHARS, scale=3, min_width=320,
                          label=f"Text to read, up to {MAX_CHARS} characters")
        with gr.Column(scale=2, min_width=300) as controls:
            model_name = gr.Radio(choices, value=first, label="Model")
            layer = layer_range(first, 1, models=models)
    # the slider offers the picked model's own layers only
    model_name.change(bind_models(layer_range, models), [model_name, layer], layer, api_name=False, queue=False)

    def layer_noted(model_name: str, event: gr.EventData):  # as say_when_clamped does, for a range set by the model
        note = clamped_note(event._data, 1, layer_count(model_name, models))
        return gr.update(info=f"⚠️ {note}" if note else "")  # "": as layer_range leaves it

    layer.release(layer_noted, model_name, layer, api_name=False, queue=False, show_progress="hidden")
    views = []
    # seven views: wrapped in rows rather than hidden behind Gradio's "⋯" menu, where a phone showed two
    with gr.Tabs(overflow_behavior="wrap", elem_classes=["inside-views"]):
        with gr.Tab("Memory & unrolling") as tab:
            views.append((tab, True))
            gr.Markdown(EXPLAIN_MEMORY)
            with gr.Row():
                feature = gr.Dropdown(list(text_features("a").keys()), value="position in line",
                                      label="Find the unit that tracks…", min_width=200)  # a phone: own line
                unit = gr.Number(value=-1, precision=0, label="…or pick a unit (-1: the best match)")
            with gr.Row():
                # wide enough for "correlation with the feature" whole on a phone
                order = gr.Dropdown(ORDERS, value=ORDERS[0], label=f"Show {SHOWN_UNITS} units, sorted by",
                                    min_width=250)
                listed = gr.Textbox(value="", label="Units to show", placeholder="12, 40, 7", visible=False)
                show = gr.Button("Show hidden states", variant="primary")
            order.change(listed_units_box, order, listed, api_name=False, queue=False)
            message = message_box()
            heat = titled_plot("**Hidden state over time**")
            unit_text = gr.HTML()
            caption = gr.Markdown()
            gr.HTML('<div class="swipe-hint">swipe the table sideways for the correlation →</div>')
            corr = gr.Dataframe(headers=["feature", "best unit", "correlation r"], label="Units that track features",
                                interactive=False)
            wire([show.click], bind_models(hidden_states, models),
                 [text, model_name, layer, unit, feature, order, listed], [heat, unit_text, caption, corr], message,
                 api_name="hidden_states")
            bring_into_view(show, heat)
        with gr.Tab("Gates") as tab:
            views.append((tab, True))
            gr.Markdown(EXPLAIN_GATES)
            gate_button = gr.Button("Show gates", variant="primary")
            message = message_box()
            gate_plot = titled_plot("**Gates over time**")
            gate_summary = gr.Markdown()
            wire([gate_button.click], bind_models(gates, models), [text, model_name, layer], [gate_plot, gate_summary],
                 message, api_name="gates")
            bring_into_view(gate_button, gate_plot)
        with gr.Tab("A cell's arithmetic") as tab:
            views.append((tab, True))
            gr.Markdown(EXPLAIN_CELL)
            with gr.Row():
                index = FittedSlider(0, len(EXAMPLE_TEXT) - 1, value=60, step=1,
                                     label="Character (its index in the text)")
                cell_units = gr.Textbox(value="", label="Units (empty: the units that track features)",
                                        placeholder="12, 40, 7")
            with gr.Row():
                back = gr.Button("◀ previous character")
                cell_button = gr.Button("Show the arithmetic", variant="primary")
                forward = gr.Button("next character ▶")
            message = message_box()
            cell_context = gr.HTML()
            cell_table = gr.HTML()
            cell_caption = gr.Markdown()
            stepped = [back.click(previous_index, index, index, api_name=False, queue=False).then,
                       forward.click(next_index, [text, index], index, api_name=False, queue=False).then]
            wire([cell_button.click, index.release, *stepped], bind_models(cell_arithmetic_view, models),
                 [text, model_name, layer, index, cell_units], [cell_context, cell_table, cell_caption], message,
                 api_name="cell_arithmetic")
            bring_into_view(cell_button, cell_context)
        with gr.Tab("What each character remembers") as tab:
            views.append((tab, False))
            gr.Markdown(EXPLAIN_INFLUENCE)
            with gr.Row():
                target = FittedSlider(1, len(EXAMPLE_TEXT) - 1, value=300, step=1,
                                      label="The prediction of character number")
                influence_button = gr.Button("Show what each model reads", variant="primary")
            message = message_box()
            influence_caption = gr.Markdown()  # above the six blocks: on a phone they fill several screens
            influence_html = gr.HTML()
            wire([influence_button.click, target.release], bind_models(input_influence_view, models), [text, target],
                 [influence_html, influence_caption], message, api_name="input_influence")
            bring_into_view(influence_button, influence_html)
        with gr.Tab("Find the pattern") as tab:
            views.append((tab, True))
            gr.Markdown(EXPLAIN_PATTERN)
            with gr.Row():
                name_at = EXAMPLE_TEXT.find("BAPTISTA")  # a speaker's name: units that follow names are easy to see
                span_start = gr.Number(value=max(name_at, 0), precision=0, label="Span: first character")
                span_end = gr.Number(value=max(name_at, 0) + 8, precision=0, label="Span: after the last character")
                pattern_button = gr.Button("Find the units and where else they fire", variant="primary")
            message = message_box()
            pattern_plot = titled_plot("**The units that stand out over the span** (+ on, − off)")
            pattern_html = gr.HTML()
            pattern_caption = gr.Markdown()
            wire([pattern_button.click], bind_models(find_pattern, models), [text, model_name, layer, span_start,
                 span_end], [pattern_plot, pattern_html, pattern_caption], message, api_name="find_pattern")
            bring_into_view(pattern_button, pattern_plot)

        # a closure, not bind_models: Gradio finds the SelectData by its annotation, which a partial loses
        def select(text: str, evt: gr.SelectData):
            return selection(text, evt, models=models)

        text.select(select, text, [index, span_start, span_end], api_name=False, queue=False)
        with gr.Tab("Vanishing gradient") as tab:
            views.append((tab, False))
            gr.Markdown(EXPLAIN_GRADIENT)
            grad_button = gr.Button("Measure the gradient flow (the five recurrent models)", variant="primary")
            message = message_box()
            grad_plot = titled_plot("**How far back can the error signal reach?** Gradient norm against steps back")
            # the ratios, the point of the table, right after the model: a 390 px phone shows them without a swipe
            # short headers and the n-best tables' compact type: with "ratio 100 back" and the rest spelled out, a
            # 390 px phone cut the table mid-column with no sign it scrolls; the note under it says what they mean
            gr.HTML('<div class="swipe-hint">swipe the table sideways for the loss and ‖grad‖ →</div>')
            grad_table = gr.Dataframe(headers=["model", "ratio 10 back", "50 back", "100 back", "loss", "‖grad‖"],
                                      interactive=False, wrap=True, elem_classes=["nbest"])  # the compact type
            grad_notes = gr.Markdown()
            wire([grad_button.click], bind_models(gradient_flow_plot, models), [text],
                 [grad_plot, grad_table, grad_notes], message, api_name="gradient_flow")
            bring_into_view(grad_button, grad_plot)
            gr.Markdown(EXPLAIN_LAG)
            lag_fig, lag_note = memory_lag_plot()
            titled_plot("**Recall accuracy against lag**", value=lag_fig)
            gr.Markdown(lag_note)
        with gr.Tab("Training curves") as tab:
            views.append((tab, False))
            gr.Markdown("Loss of the shipped models while they trained (from each checkpoint's `metrics.jsonl`). "
                        "Validation loss is measured on text the model never trains on; when it stops falling while "
                        "the training loss keeps falling, the model has started to memorise (overfit).")
            titled_plot("**Validation loss while training** (faint: the loss on training batches)",
                        value=training_curves(models))
    # the pattern view's search text, read once per model off the request path
    threading.Thread(target=warm_validation_states, args=(models,), daemon=True).start()
    for tab, uses_controls in views:
        tab.select(controls_shown if uses_controls else controls_hidden, None, controls, api_name=False, queue=False)
    # a view drawn for one model, layer or text must not stay beside another: a newcomer who picked the GRU read the
    # LSTM's gates, titled "LSTM", as the GRU's. Picking another model or layer empties the views that read it;
    # editing the text empties them all
    per_model = [heat, unit_text, caption, corr, gate_plot, gate_summary, cell_context, cell_table, cell_caption,
                 pattern_plot, pattern_html, pattern_caption]
    clear_on([model_name.change, layer.change], per_model)
    clear_on([text.input], [*per_model, influence_html, influence_caption, grad_plot, grad_table, grad_notes])

    def noted_from(low: int):  # a closure, not a partial: Gradio finds the EventData by its annotation
        def noted(text: str, event: gr.EventData):
            return character_noted(text, event._data, low, models=models)
        return noted

    for picker, low in ((index, 0), (target, 1)):  # a character typed past the text's end runs as its last: say so
        picker.release(noted_from(low), text, picker, api_name=False, queue=False, show_progress="hidden")
    length = gr.State(len(read_by_models(EXAMPLE_TEXT, models)))  # the text's length at the last fit
    text.change(bind_models(fit_to_text, models), [text, index, target, span_start, span_end, length],
                [index, target, span_start, span_end, length], api_name=False, queue=False, show_progress="hidden")
