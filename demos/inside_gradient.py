"""The "Inside the RNN" tab's vanishing-gradient views: the gradient flow measured on the shipped models, and
the stored memory-over-lag experiment. Part of ``demos/inside.py``'s tab; nothing to run here.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import torch
import plotly.graph_objects as go

from seqmodels.inside import gradient_flow

from .inside_common import ASSETS, checked_ids
from .style import figure, line_plot_layout, model_colour
from .textgen import TextModel

GRADIENT_ORDER = ["Vanilla RNN", "LSTM", "GRU", "minGRU", "RG-LRU (Hawk)"]  # the models with a recurrent state
LOOK_GRADIENT = ("Look for: the vanilla RNN's line falling fastest to the left over tens of steps (on the example "
                 "text its signal from 100 characters back is some 20,000 times weaker than at the prediction), the "
                 "gated cells' lines staying higher, and the RG-LRU's falling least of all after the first tens of "
                 "steps: its decays sit near 1. On the example text the minGRU's line starts lowest, 3 to 12 times "
                 "below the others, and falls slowly: it passes the RNN's within 50 steps back and runs above the LSTM's from about 80 "
                 "to 200 back. Over the first ten or twenty steps the order can differ (on the example text the "
                 "LSTM's ratio 10 back is below the RNN's): the gap opens further back")
EXPLAIN_RATIO = ("“Ratio k back” is ‖∂ loss / ∂ h‖ at the state k characters before the prediction, divided by the "
                 "same norm at the state that makes the prediction (the last one read): below 1, the error signal "
                 "has faded on its way back; above 1, the gradient there is larger than at the prediction, which a "
                 "gated cell such as the GRU can do, since the product of its Jacobians may grow as well as shrink. "
                 "Loss and ‖grad‖: the loss of that prediction and the norm at its state")
LOOK_LAG = "Look for: the lag at which each line drops to chance, the vanilla RNN's first."


SHORT_TEXT_STEPS = 10  # the table's first ratio is 10 steps back
FLOOR = 1e-45  # float32's smallest number: a log axis cannot draw 0


def gradient_flow_plot(text: str, *, models: dict[str, TextModel]):
    """Norm of d(loss at the last step)/d(h_t) against how many steps back t is, for each cell, log scale."""
    available = [name for name in GRADIENT_ORDER if name in models]
    if not available:
        raise gr.Error("no recurrent character model is loaded (the Transformer has no state to measure)")
    checked = [checked_ids(text, name, models) for name in available]
    # One model per thread, each in a worker process when they are up (else here, where the matrix products of each
    # step still run in C++ without the GIL): the app's single torch thread per request gets both cores.
    with ThreadPoolExecutor(len(checked)) as pool:
        results = list(pool.map(lambda c: c[0].compute(gradient_flow, c[1]), checked))
    lines, rows, notes = [], [], checked[0][3]
    for name, (norms, loss) in zip(available, results):
        back = torch.arange(len(norms) - 1, -1, -1)  # steps back from the last one read
        lines.append({"type": "scatter", "x": back.tolist(), "y": norms.clamp_min(FLOOR).tolist(), "name": name,
                      "line": {"color": model_colour(name), "width": 1.6},
                      "hovertemplate": f"<b>{name}</b><br>%{{x}} steps back<br>‖grad‖ %{{y:.2e}}<extra></extra>"})
        nearest = float(norms[-1])
        # the ratios first, right after the model: they are the point, and a phone shows the first columns
        ratios = [f"{float(norms[-1 - k]) / nearest:.1e}" if k < len(norms) else "-" for k in (10, 50, 100)]
        rows.append([name, *ratios, round(loss, 3), f"{nearest:.2e}"])
    steps = len(checked[0][1]) - 1
    if steps < SHORT_TEXT_STEPS:  # a point or two on the plot, and the ratios' columns all "-": say why
        notes = [*notes, f"this text gives only {steps} step{'s' * (steps != 1)} back, and the gradient fades over "
                         "tens of steps: try a longer text (the example's 472 characters reach 100 steps back)"]
    if any(bool((norms == 0).any()) for norms, _ in results):
        notes = [*notes, f"gradients below float32's smallest number are exactly 0 and drawn at {FLOOR:.0e}"]
    fig = figure(lines, {**line_plot_layout(420),
                         # the prediction on the right, older steps to the left, as the text reads
                         "xaxis": {"title": {"text": "steps back from the prediction"}, "autorange": "reversed"},
                         "yaxis": {"title": {"text": "‖∂ loss / ∂ h_t‖ (log scale)"}, "type": "log",
                                   "exponentformat": "power"}})
    notes = [EXPLAIN_RATIO, LOOK_GRADIENT, *notes]
    return fig, rows, " ".join(n[0].upper() + n[1:] + ("" if n.endswith(".") else ".") for n in notes)


def memory_lag_plot(path: Path = ASSETS / "memory_lag.json"):
    """Stored results of train/memory_lag.py: recall accuracy against the lag, per cell."""
    fig = go.Figure()
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        fig.add_annotation(text="No stored results: run <code>python -m train.memory_lag</code>", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return fig.update_layout(line_plot_layout(200)), ""
    labels = {"rnn": "Vanilla RNN", "lstm": "LSTM", "gru": "GRU"}
    for cell, acc in record["accuracy"].items():
        label = labels.get(cell, cell)
        fig.add_scatter(x=record["lags"], y=acc, name=label, mode="lines+markers", line={"color": model_colour(label)},
                        hovertemplate=f"<b>{label}</b><br>lag %{{x}}<br>accuracy %{{y:.2f}}<extra></extra>")
    fig.add_scatter(x=[min(record["lags"]), max(record["lags"])], y=[record["chance"]] * 2, name="chance",
                    mode="lines", line={"color": "grey", "dash": "dash", "width": 1}, hoverinfo="skip")
    fig.update_xaxes(title_text="lag: distractors between key and question", type="log",
                     tickvals=record["lags"], ticktext=[str(lag) for lag in record["lags"]])
    fig.update_yaxes(title_text="recall accuracy", range=[0, 1.02])
    fig.update_layout(line_plot_layout(380))
    s = record["settings"]
    note = (LOOK_LAG + f" Each cell: one layer of {s['hidden']} units, {s['steps']} training steps of {s['batch_size']} "
            f"sequences at every lag; {record['seconds']:.0f} s in all on {record['hardware']}. ")
    if "forget_bias" in s:
        note += (f"The LSTM starts with its forget-gate bias at {s['forget_bias']:g} (the usual practice; in a trial run "
                 "with PyTorch's default of 0 it stayed at chance from lag 20); the RNN and GRU keep PyTorch's defaults. ")
    note += f"Made by:\n\n```\n{record['command']}\n```"  # a block: the long command wraps, no stray full stop
    return fig, note


EXPLAIN_GRADIENT = """
### The vanishing gradient, measured
Learning sends an error signal backwards through the unrolled network. At each step it is multiplied by the
cell's Jacobian; for a vanilla RNN those products shrink (or blow up) exponentially, so the loss at the end
can barely "hear" characters from long ago. The LSTM's additive cell update, c_t = f c_(t-1) + i g, gives the
signal a path with less decay. The modern recurrences go further: in the minGRU and the RG-LRU the step back from
h_t to h_(t-1) is a plain product with the decay a_t (1 − z_t for the minGRU; the "Gates" view shows both), with no
weight matrix or tanh in the way. The plot shows ‖∂ loss / ∂ h_t‖, backpropagated through the real models, for your
text. The Transformer has no recurrent state to send it back through ("What each character remembers" shows it).
"""
EXPLAIN_LAG = """
### Where each cell forgets
The classic experiment: show a key, then *lag* random distractors, then ask for the key. Each cell is trained
the same way at every lag; accuracy falls to chance once the gradient cannot carry the key back that far.
This experiment has the three classic cells only; the gradient flow above has the modern ones too.
"""


