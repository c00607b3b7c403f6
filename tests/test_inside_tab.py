"""The "Inside the RNN" handlers return figures for every cell type, and clear messages for bad input."""
import json

import gradio as gr
import pytest
from matplotlib.figure import Figure

from demos import inside, textgen
from seqmodels import FastCharLM, save_model

from conftest import make_model

LABELS = {"Vanilla RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}


@pytest.fixture
def models(tokenizer, tmp_path):
    out = {}
    for label, cell in LABELS.items():
        model = make_model(tokenizer, cell)
        folder = tmp_path / cell
        save_model(folder, model, tokenizer)
        rows = [{"step": 0, "split": "val", "val_loss": 4.0, "elapsed_s": 0},
                {"step": 10, "split": "train", "loss": 3.0, "elapsed_s": 1},
                {"step": 10, "split": "val", "val_loss": 3.5, "elapsed_s": 1}]
        (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
        out[label] = textgen.TextModel(label, folder, model, tokenizer, FastCharLM(model), 3.5)
    return out


TEXT = "ANNA:\nThe cat is grey, and so is the cat.\n\nBORIS:\nThe sea is wide.\n"  # characters of the tiny vocabulary


@pytest.mark.parametrize("label", list(LABELS))
def test_hidden_states_returns_a_heatmap_coloured_text_and_feature_units(models, label):
    fig, html, caption, table = inside.hidden_states(TEXT, label, 2, None, "inside quotes", models=models)
    assert isinstance(fig, Figure)
    assert html.count("<span") == len(TEXT)
    assert "Unit" in caption and table and all(len(row) == 3 for row in table)


@pytest.mark.parametrize("label", list(LABELS))
def test_gates_view_returns_a_figure_for_each_cell(models, label):
    fig, summary = inside.gates(TEXT, label, 1, models=models)
    assert isinstance(fig, Figure)
    n_axes = {"Vanilla RNN": 1, "LSTM": 4 * 2, "GRU": 2 * 2}[label]  # panels plus their colour bars
    assert len(fig.axes) == n_axes
    assert ("no gates" in summary) == (label == "Vanilla RNN")


def test_gradient_flow_plots_all_three_cells(models):
    fig, rows, _ = inside.gradient_flow_plot(TEXT, models=models)
    assert [r[0] for r in rows] == ["Vanilla RNN", "LSTM", "GRU"]
    assert len(fig.axes[0].get_lines()) == 3 and fig.axes[0].get_yscale() == "log"


def test_training_curves_and_memory_lag_render_from_files(models, tmp_path):
    assert len(inside.training_curves(models).axes) == 2
    (tmp_path / "lag.json").write_text(json.dumps({
        "lags": [2, 4], "accuracy": {"rnn": [1.0, 0.2], "lstm": [1.0, 1.0]}, "chance": 0.125,
        "settings": {"hidden": 8, "steps": 1, "batch_size": 2}, "seconds": 1, "hardware": "cpu", "command": "x"}))
    fig, note = inside.memory_lag_plot(tmp_path / "lag.json")
    assert len(fig.axes[0].get_lines()) == 3 and "8 units" in note
    fig, note = inside.memory_lag_plot(tmp_path / "missing.json")
    assert note == "" and "No stored results" in fig.axes[0].texts[0].get_text()


@pytest.mark.parametrize("text, message", [
    ("", "type some text"),
    ("x" * 501, "the limit here is 500"),
    ("☃☃☃", "at least two characters"),
])
def test_bad_text_gets_a_clear_message(models, text, message):
    for call in (lambda: inside.hidden_states(text, "LSTM", models=models),
                 lambda: inside.gates(text, "GRU", models=models),
                 lambda: inside.gradient_flow_plot(text, models=models)):
        with pytest.raises(gr.Error, match=message):
            call()


def test_unknown_characters_are_dropped_and_named(models):
    _, _, caption, _ = inside.hidden_states("ANNA ☃ cat", "LSTM", models=models)
    assert "☃" in caption


@pytest.mark.parametrize("kw, message", [(dict(layer=3), "layer must be between 1 and 2"),
                                         (dict(unit=16), "unit must be between 0 and 15")])
def test_out_of_range_layer_or_unit_is_refused(models, kw, message):
    with pytest.raises(gr.Error, match=message):
        inside.hidden_states(TEXT, "LSTM", **{"layer": 1, **kw}, models=models)


def test_unit_minus_one_picks_the_unit_that_best_tracks_the_feature(models):
    _, _, caption, table = inside.hidden_states(TEXT, "LSTM", 1, -1, "position in line", models=models)
    best = next(row[1] for row in table if row[0] == "position in line")
    assert f"Unit {best} of layer 1" in caption


@pytest.mark.parametrize("cell, gate_names", [("mingru", ["update"]), ("minlstm", ["forget", "input"]),
                                              ("rglru", ["recurrence", "input", "decay"]), ("transformer", [])])
def test_modern_models_show_their_hidden_states_and_the_gates_they_have(tokenizer, cell, gate_names):
    from seqmodels.charmodels import build_char_model
    from seqmodels.fastgen import fast_stepper

    model = build_char_model(cell, dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=2, num_heads=2)).eval()
    models = {cell: textgen.TextModel(cell, None, model, tokenizer, fast_stepper(model), None)}
    fig, html, caption, table = inside.hidden_states(TEXT, cell, 2, None, "inside quotes", models=models)
    assert isinstance(fig, Figure) and html.count("<span") == len(TEXT)
    fig, summary = inside.gates(TEXT, cell, 1, models=models)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    for name in gate_names:
        assert name in titles and name in summary
    if not gate_names:
        assert "no gates" in summary
