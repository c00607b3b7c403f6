"""The "Inside the RNN" tab: memory, unrolling, gates and the vanishing gradient, on the shipped models.

Every view is computed from the same weights the Text generation tab runs (``seqmodels.inside``):
``app.py`` hands both tabs the one dict of loaded character models. Handlers are plain functions that
take those models and return matplotlib figures and HTML; ``build_tab`` lays them out and wires them to
the models it is given (``api_name="hidden_states"``, ``"gates"``, ``"gradient_flow"``).
"""
from __future__ import annotations

import html
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import torch
from matplotlib.figure import Figure  # not pyplot: figures made in handler threads must not share state

from seqmodels.charmodels import cell_of
from seqmodels.inside import gradient_flow, text_features, top_correlated_units, unroll

from .checks import unset
from .compare import training_curves
from .textgen import TextModel
from .wiring import bind_models

MAX_CHARS = 500  # every view renders in well under a second at this length on 2 CPU cores
ASSETS = Path(__file__).resolve().parent / "assets"
EXAMPLE_TEXT = ("ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n"
                "JULIET:\nAy me!\n")


def _checked_ids(text: str, model_name: str,
                 models: dict[str, TextModel]) -> tuple[TextModel, list[int], str, list[str]]:
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
    if len(enc.ids) < 2:
        raise gr.Error("the text needs at least two characters the model knows")
    return tm, enc.ids, tm.tokenizer.decode(enc.ids), notes


def _read(text: str, model_name: str, layer, models: dict[str, TextModel]):
    """Check the inputs, then unroll the model over the text: (TextModel, text read, notes, layer, Unrolled)."""
    tm, ids, shown, notes = _checked_ids(text, model_name, models)
    layers = tm.model.config.num_layers
    layer = int(layer) if layer else 1
    if not 1 <= layer <= layers:
        raise gr.Error(f"layer must be between 1 and {layers}")
    return tm, shown, notes, layer, unroll(tm.model, ids)


def _heatmap(ax, values: torch.Tensor, title: str, cmap: str = "RdBu_r", vmin: float = -1, vmax: float = 1):
    """values (T, H) drawn with time across and units down."""
    im = ax.imshow(values.T.numpy(), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("unit")
    return im


def _label_time_axis(ax, text: str) -> None:
    """Short texts get one tick per character, labelled with it; longer ones keep step numbers."""
    if len(text) <= 120:
        ax.set_xticks(range(len(text)), ["↵" if ch == "\n" else ch for ch in text], fontsize=7, family="monospace")
        ax.set_xlabel("character read at each time step")
    else:
        ax.set_xlabel("time step (character read)")


def _unit_html(text: str, activation: torch.Tensor) -> str:
    """Text with each character's background set by one unit's activation: blue -1 ... red +1."""
    spans = []
    for ch, a in zip(text, activation.tolist()):
        a = max(-1.0, min(1.0, a))
        colour = f"rgba(214, 39, 40, {a:.2f})" if a > 0 else f"rgba(31, 119, 180, {-a:.2f})"
        shown = "↵\n" if ch == "\n" else html.escape(ch)
        spans.append(f'<span style="background:{colour}" title="{a:+.2f}">{shown}</span>')
    return '<pre class="generated">' + "".join(spans) + "</pre>"


def hidden_states(text: str, model_name: str, layer: float = 1, unit: float | None = None,
                  feature: str = "inside quotes", *, models: dict[str, TextModel]):
    """Heatmap of every hidden unit over time, the text coloured by one unit, and units that track features."""
    tm, shown, notes, layer, run = _read(text, model_name, layer, models)
    cfg = tm.model.config
    hidden = run.hidden[layer - 1]  # (T, H)
    best = {name: top[0] for name, values in text_features(shown).items()
            if (top := top_correlated_units(hidden, values, k=1))}  # feature -> (unit, r)
    table = sorted(([name, u, round(r, 3)] for name, (u, r) in best.items()), key=lambda row: -abs(row[2]))
    if unset(unit):
        unit = best[feature][0] if feature in best else 0
    unit = int(unit)
    if not 0 <= unit < cfg.hidden_size:
        raise gr.Error(f"unit must be between 0 and {cfg.hidden_size - 1}")
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.add_subplot()
    what = ("residual stream after block" if cell_of(tm.model) == "transformer"  # a Transformer has no recurrent state
            else "hidden state h_t after each character")
    im = _heatmap(ax, hidden, f"{model_name}, layer {layer}: {what} ({len(hidden)} steps x {cfg.hidden_size} units)")
    ax.axhline(unit, color="k", lw=0.6, ls=":")
    _label_time_axis(ax, shown)
    fig.colorbar(im, ax=ax, fraction=0.03)
    caption = f"Unit {unit} of layer {layer} (red = positive, blue = negative; hover for values)."
    if notes:
        caption += " Note: " + "; ".join(notes)
    return fig, _unit_html(shown, hidden[:, unit]), caption, table


def gates(text: str, model_name: str, layer: float = 1, *, models: dict[str, TextModel]):
    """The gate values (and for the LSTM the cell state) over time, for one layer, for whichever gates the cell has."""
    tm, shown, notes, layer, run = _read(text, model_name, layer, models)
    cell = cell_of(tm.model)
    g = run.gates[layer - 1]
    panels = []
    if cell == "lstm":
        panels = [("input gate i_t", g["input"], "viridis", 0, 1), ("forget gate f_t", g["forget"], "viridis", 0, 1),
                  ("output gate o_t", g["output"], "viridis", 0, 1)]
        c = run.cell[layer - 1]
        lim = float(c.abs().quantile(0.99)) or 1.0
        panels.append(("cell state c_t (the long-term memory)", c, "RdBu_r", -lim, lim))
    elif cell == "gru":
        panels = [("reset gate r_t", g["reset"], "viridis", 0, 1), ("update gate z_t (1 = keep the old state)",
                                                                    g["update"], "viridis", 0, 1)]
    elif cell == "mingru":
        panels = [("update gate z_t (1 = write the new candidate, 0 = keep the old state); it reads only x_t",
                   g["update"], "viridis", 0, 1)]
    elif cell == "minlstm":
        panels = [("forget gate f'_t (share of the old state kept)", g["forget"], "viridis", 0, 1),
                  ("input gate i'_t = 1 - f'_t (share of the new candidate)", g["input"], "viridis", 0, 1)]
    elif cell == "rglru":
        panels = [("recurrence gate r_t (shortens the memory when near 1)", g["recurrence"], "viridis", 0, 1),
                  ("input gate i_t", g["input"], "viridis", 0, 1),
                  ("decay a_t = sigmoid(L)^(8 r_t) (share of the old state kept)", g["decay"], "viridis", 0, 1)]
    fig = Figure(figsize=(10, 1.0 + 2.2 * max(1, len(panels))), layout="constrained")
    if not panels:
        ax = fig.add_subplot()
        ax.axis("off")
        if cell == "transformer":
            message = ("A Transformer has no gates and no recurrent state: each character attends to\n"
                       "the ones before it in its window. Pick one of the recurrent models.")
            summary = "The Transformer has no gates."
        else:
            message = ("A vanilla RNN has no gates: every step it overwrites its state with\n"
                       "h_t = tanh(W_ih x_t + W_hh h_(t-1) + b). Pick the LSTM or the GRU.")
            summary = "The vanilla RNN has no gates."
        ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12)
    else:
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (title, values, cmap, lo, hi) in zip(axes, panels):
            fig.colorbar(_heatmap(ax, values, title, cmap, lo, hi), ax=ax, fraction=0.03)
        _label_time_axis(axes[-1], shown)
        means = {name: float(v.mean()) for name, v in g.items() if name != "candidate"}
        summary = "Mean gate values: " + ", ".join(f"{k} {v:.2f}" for k, v in means.items())
    if notes:
        summary = summary.rstrip(".") + ". Note: " + "; ".join(notes)
    return fig, summary


GRADIENT_ORDER = ["Vanilla RNN", "LSTM", "GRU"]


def layer_range(model_name: str, layer: float, *, models: dict[str, TextModel]):
    """The Layer slider for ``model_name``: 1 to its number of layers, the current value kept where it fits."""
    count = models[model_name].model.config.num_layers if model_name in models else 1
    return gr.Slider(minimum=1, maximum=count, value=min(int(layer or 1), count), step=1, label="Layer")


def gradient_flow_plot(text: str, *, models: dict[str, TextModel]):
    """Norm of d(loss at the last step)/d(h_t) against how many steps back t is, for each cell, log scale."""
    available = [name for name in GRADIENT_ORDER if name in models]
    if not available:
        raise gr.Error("no character model is loaded")
    checked = [_checked_ids(text, name, models) for name in available]
    # One model per thread: the autograd work runs in C++ without the GIL, so the app's single torch
    # thread per request still gets both cores for the three backward passes.
    with ThreadPoolExecutor(len(checked)) as pool:
        results = list(pool.map(lambda c: gradient_flow(c[0].model, c[1]), checked))
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.add_subplot()
    rows, notes = [], checked[0][3]
    for name, (norms, loss) in zip(available, results):
        back = torch.arange(len(norms) - 1, -1, -1)  # steps back from the last one read
        ax.semilogy(back.numpy(), norms.clamp_min(1e-30).numpy(), label=name, lw=1.4)
        nearest = float(norms[-1])
        row = [name, round(loss, 3), f"{nearest:.2e}"]
        for k in (10, 50, 100):
            row.append(f"{float(norms[-1 - k]) / nearest:.1e}" if k < len(norms) else "-")
        rows.append(row)
    if any(bool((norms == 0).any()) for norms, _ in results):
        notes = [*notes, "gradients that underflowed to exactly 0 in float32 are drawn at 1e-30"]
    ax.set_xlabel("steps back from the prediction")
    ax.set_ylabel("‖∂ loss / ∂ h_t‖ (log scale)")
    ax.set_title("How far back can the error signal reach?")
    ax.invert_xaxis()  # the prediction on the right, older steps to the left, as the text reads
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig, rows, "; ".join(notes)


def memory_lag_plot(path: Path = ASSETS / "memory_lag.json"):
    """Stored results of train/memory_lag.py: recall accuracy against the lag, per cell."""
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.add_subplot()
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        ax.axis("off")
        ax.text(0.5, 0.5, "No stored results: run `python -m train.memory_lag`", ha="center", va="center")
        return fig, ""
    labels = {"rnn": "Vanilla RNN", "lstm": "LSTM", "gru": "GRU"}
    for cell, acc in record["accuracy"].items():
        ax.plot(record["lags"], acc, marker="o", label=labels.get(cell, cell))
    ax.axhline(record["chance"], color="grey", ls="--", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_xticks(record["lags"], [str(lag) for lag in record["lags"]])
    ax.minorticks_off()
    ax.set_xlabel("lag: distractor steps between the key and the question")
    ax.set_ylabel("recall accuracy (unseen sequences)")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.grid(True, alpha=0.3)
    s = record["settings"]
    note = (f"Each cell: one layer of {s['hidden']} units, {s['steps']} training steps of {s['batch_size']} "
            f"sequences at every lag; {record['seconds']:.0f} s in all on {record['hardware']}. ")
    if "forget_bias" in s:
        note += (f"The LSTM starts with its forget-gate bias at {s['forget_bias']:g} (the usual practice; in a trial run "
                 "with PyTorch's default of 0 it stayed at chance from lag 20); the RNN and GRU keep PyTorch's defaults. ")
    note += f"Made by `{record['command']}`."
    return fig, note


EXPLAIN_MEMORY_TRANSFORMER = ("For the **Transformer**, the heatmap shows each block's output (its *residual stream*): it "
                              "has no memory carried from step to step, and reads the characters before it through "
                              "attention instead.")
EXPLAIN_MEMORY = """
### Memory: the hidden state, unrolled
A recurrent network reads one character per **time step** and keeps a vector, the **hidden state** h_t, as its
memory of everything so far: h_t = f(x_t, h_(t-1)). "Unrolling" means drawing one copy of the cell per step: the
heatmap below *is* the unrolled network, one column per character, one row per unit of h_t. Some units learn
to track something you can name: pick a feature and the tab finds the unit that correlates with it most, then
colours the text by that unit (red positive, blue negative).
"""
EXPLAIN_GATES = """
### Gates: how the LSTM and the GRU decide what to keep
A vanilla RNN rewrites its whole state every step. An **LSTM** keeps a separate cell state c_t and three gates,
numbers between 0 and 1 for every unit: the *forget* gate says how much of the old c to keep, the *input* gate
how much new content to write, the *output* gate how much of the memory to show. A **GRU** merges this into an
*update* gate (keep the old state or take the new candidate) and a *reset* gate (how much of the old state the
candidate may read). These values are recomputed here from the model's own weights, step by step.

The modern recurrences (**minGRU**, **RG-LRU**) keep gates but compute them from the current character alone,
never from the previous state: the state update becomes h_t = a_t h_(t-1) + b_t, which training computes for
all characters at once. Their gates still decide, unit by unit, how much of the old state to keep.
"""
EXPLAIN_GRADIENT = """
### The vanishing gradient, measured
Learning sends an error signal backwards through the unrolled network. At each step it is multiplied by the
cell's Jacobian; for a vanilla RNN those products shrink (or blow up) exponentially, so the loss at the end
can barely "hear" characters from long ago. The LSTM's additive cell update, c_t = f c_(t-1) + i g, gives the
signal a path with less decay. The plot shows ‖∂ loss / ∂ h_t‖ by autograd on the real models, for your text,
for the three classic cells: the minGRU's and RG-LRU's states pass back through a linear recurrence whose gradient
is simply the product of their decays a_t (the "Gates" view shows them), and the Transformer has no recurrent state.
"""
EXPLAIN_LAG = """
### Where each cell forgets
The classic experiment: show a key, then *lag* random distractors, then ask for the key. Each cell is trained
the same way at every lag; accuracy falls to chance once the gradient cannot carry the key back that far.
"""


def build_tab(models: dict[str, TextModel]) -> None:
    """Lay out the "Inside the RNN" tab inside the current gr.Blocks and wire its events to ``models``."""
    choices = list(models) or ["(no model found)"]
    first = "LSTM" if "LSTM" in models else choices[0]
    layers = max((tm.model.config.num_layers for tm in models.values()), default=1)
    gr.Markdown("These views open up the models of the Text generation tab while they read a text of yours "
                f"(up to {MAX_CHARS} characters).")
    text = gr.Textbox(value=EXAMPLE_TEXT, lines=5, label="Text to read", max_length=MAX_CHARS)
    with gr.Row():
        model_name = gr.Radio(choices, value=first, label="Model")
        layer = gr.Slider(1, layers, value=1, step=1, label="Layer")
    # the slider offers the picked model's own layers only
    model_name.change(bind_models(layer_range, models), [model_name, layer], layer, api_name=False, queue=False)
    with gr.Tab("Memory & unrolling"):
        gr.Markdown(EXPLAIN_MEMORY + "\n" + EXPLAIN_MEMORY_TRANSFORMER)
        with gr.Row():
            feature = gr.Dropdown(list(text_features("a").keys()), value="position in line",
                                  label="Find the unit that tracks…")
            unit = gr.Number(value=-1, precision=0, minimum=-1, label="…or pick a unit (-1: the best match)")
            show = gr.Button("Show hidden states", variant="primary")
        heat = gr.Plot(label="Hidden state over time")
        unit_text = gr.HTML()
        caption = gr.Markdown()
        corr = gr.Dataframe(headers=["feature", "best unit", "correlation r"], label="Units that track features",
                            interactive=False)
        show.click(bind_models(hidden_states, models), [text, model_name, layer, unit, feature],
                   [heat, unit_text, caption, corr], api_name="hidden_states")
    with gr.Tab("Gates"):
        gr.Markdown(EXPLAIN_GATES)
        gate_button = gr.Button("Show gates", variant="primary")
        gate_plot = gr.Plot(label="Gates over time")
        gate_summary = gr.Markdown()
        gate_button.click(bind_models(gates, models), [text, model_name, layer], [gate_plot, gate_summary],
                          api_name="gates")
    with gr.Tab("Vanishing gradient"):
        gr.Markdown(EXPLAIN_GRADIENT)
        grad_button = gr.Button("Measure the gradient flow (all three models)", variant="primary")
        grad_plot = gr.Plot(label="Gradient norm against steps back")
        grad_table = gr.Dataframe(headers=["model", "loss at the last step", "‖grad‖ at the last step",
                                           "ratio 10 back", "ratio 50 back", "ratio 100 back"], interactive=False)
        grad_notes = gr.Markdown()
        grad_button.click(bind_models(gradient_flow_plot, models), [text], [grad_plot, grad_table, grad_notes],
                          api_name="gradient_flow")
        gr.Markdown(EXPLAIN_LAG)
        lag_fig, lag_note = memory_lag_plot()
        gr.Plot(value=lag_fig, label="Recall accuracy against lag")
        gr.Markdown(lag_note)
    with gr.Tab("Training curves"):
        gr.Markdown("Loss of the shipped models while they trained (from each checkpoint's `metrics.jsonl`). "
                    "Validation loss is measured on text the model never trains on; when it stops falling while "
                    "the training loss keeps falling, the model has started to memorise (overfit).")
        gr.Plot(value=training_curves(models), label="Training curves")
