"""The "Inside the RNN" handlers return figures for every cell type, and clear messages for bad input."""
import json
import re

import gradio as gr
import plotly.graph_objects as go
import pytest
import torch

from demos import inside, inside_cell, inside_common, inside_memory, textgen
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
    assert isinstance(fig, go.Figure)
    assert html.count("<span") == len(TEXT)
    assert "Unit" in caption and "Look for" in caption and table and all(len(row) == 3 for row in table)


def test_a_feature_the_text_never_changes_says_no_unit_can_follow_it_and_shows_the_units_that_vary_most(models):
    fig, _, caption, table = inside.hidden_states(TEXT, "LSTM", 1, None, "inside quotes", models=models)
    assert "“inside quotes” does not change over this text" in caption and "inside quotes" not in [r[0] for r in table]
    assert "sorted by variance" in fig.layout.title.text
    most_varied = fig.data[0].y[0]
    assert caption.startswith(f"Unit {most_varied.split()[1]} of layer 1")  # not unit 0 by default
    assert "never saw a double quote" in caption  # the tiny vocabulary, like Tiny Shakespeare's, has none
    _, _, caption, _ = inside.hidden_states(TEXT, "LSTM", 1, None, "position in line", models=models)
    assert "does not change" not in caption and "not among these rows" not in caption  # sorted by it, it is shown


def test_heatmap_shows_a_few_units_sorted_with_the_chosen_one_outlined_and_hover_values(models):
    fig, _, caption, _ = inside.hidden_states(TEXT, "LSTM", 1, 5, "space", "variance over the text", models=models)
    heat = fig.data[0]
    assert len(heat.y) <= inside.SHOWN_UNITS and "unit 5" in heat.y  # the chosen unit is always shown
    assert len(fig.layout.shapes) == 1 and "▶ unit 5" in " ".join(fig.layout.yaxis.ticktext)
    assert "%{customdata}" in heat.hovertemplate and "%{z" in heat.hovertemplate and heat.customdata[0][0] == "A"
    fig, *_ = inside.hidden_states(TEXT, "LSTM", 1, 3, "space", "the units I list", "7, 2", models=models)
    assert list(fig.data[0].y) == ["unit 3", "unit 7", "unit 2"]  # a unit picked by hand joins the list


def test_listed_units_are_the_rows_and_the_first_colours_the_text_when_no_unit_is_picked(models):
    fig, html, caption, _ = inside.hidden_states(TEXT, "LSTM", 1, -1, "space", "the units I list", "7, 2",
                                                 models=models)
    assert list(fig.data[0].y) == ["unit 7", "unit 2"] and caption.startswith("Unit 7 of layer 1")


@pytest.mark.parametrize("listed, message", [("", "list the units"), ("7, 99", "'99' is not a unit"),
                                             ("a", "'a' is not a unit")])
def test_listing_no_unit_or_a_unit_that_does_not_exist_is_refused(models, listed, message):
    with pytest.raises(gr.Error, match=message):
        inside.hidden_states(TEXT, "LSTM", 1, -1, "space", "the units I list", listed, models=models)


@pytest.mark.parametrize("label", list(LABELS))
def test_gates_view_returns_a_panel_for_each_gate(models, label):
    fig, summary = inside.gates(TEXT, label, 1, models=models)
    assert isinstance(fig, go.Figure)
    panels = {"Vanilla RNN": 0, "LSTM": 4, "GRU": 2}[label]  # the LSTM's cell state is a panel too
    assert len(fig.data) == panels
    assert ("no gates" in summary) == (label == "Vanilla RNN")


def test_every_unit_of_the_gates_view_has_its_row_labelled(models):
    fig, _ = inside.gates(TEXT, "LSTM", 1, models=models)
    rows = list(fig.data[0].y)
    for axis in ("yaxis", "yaxis2", "yaxis3", "yaxis4"):  # one per panel
        assert list(fig.layout[axis].tickvals) == rows and fig.layout[axis].tickfont.size >= 11


def test_the_gates_view_draws_a_line_through_every_panel_at_each_line_end(models):
    fig, summary = inside.gates(TEXT, "GRU", 1, models=models)
    ends = [i for i, ch in enumerate(TEXT) if ch == "\n"]
    assert [(s.x0, s.xref, s.yref) for s in fig.layout.shapes] == [(i, x, f"{y} domain") for x, y in
                                                                    [("x", "y"), ("x2", "y2")] for i in ends]
    assert all((shape.y0, shape.y1) == (0, 1) for shape in fig.layout.shapes)  # each panel's full height
    assert "the vertical lines mark the line ends" in summary
    fig, _ = inside.gates(TEXT, "LSTM", 1, models=models)  # three gates, then the red-blue cell state
    colours = [s.line.color for s in fig.layout.shapes]
    assert set(colours[:3 * len(ends)]) == {"#e8173a"} and set(colours[3 * len(ends):]) == {"#111"}


def test_the_layer_slider_offers_the_chosen_models_layers_only(tokenizer):
    from seqmodels.fastgen import fast_stepper

    models = {f"{n} layers": textgen.TextModel(f"{n} layers", None, model, tokenizer, fast_stepper(model), None)
              for n in (1, 3) for model in [make_model(tokenizer, "gru", layers=n)]}
    slider = inside.layer_range("3 layers", 2, models=models)
    assert (slider.minimum, slider.maximum, slider.value) == (1, 3, 2)
    slider = inside.layer_range("3 layers", 9, models=models)  # a layer picked for a deeper model is clamped
    assert slider.value == 3
    slider = inside.layer_range("1 layers", 3, models=models)  # one layer: layer 1, and the slider cannot move
    assert slider.value == 1 and slider.interactive is False
    assert slider.info == ""  # a note left on the slider for the last model's layers goes


def test_the_box_of_units_to_list_shows_only_for_the_sort_that_reads_it():
    assert [inside.listed_units_box(order).visible for order in inside.ORDERS] == [False, False, True]


def test_the_gradient_table_says_what_its_ratios_are(models):
    _, rows, notes = inside.gradient_flow_plot(TEXT, models=models)
    assert "Ratio k back" in notes and "divided by" in notes and "above 1" in notes
    for name, *ratios, loss, nearest in rows:  # each ratio: the norm k steps back over the norm at the prediction
        assert all(r == "-" or float(r) > 0 for r in ratios)


@pytest.mark.parametrize("label", list(LABELS))
def test_cell_arithmetic_view_shows_each_quantity_for_a_few_units(models, label):
    context, table, caption = inside_cell.cell_arithmetic_view(TEXT, label, 2, 9, "", models=models)
    assert "h_t" in table and "h_(t−1)" in table and "unit&nbsp;" in table and "reading character 9" in caption
    assert ("f_t = σ(sum)" in table) == (label == "LSTM") and ("z_t = σ(sum)" in table) == (label == "GRU")
    assert "outline" in context  # the character read is marked in its line
    _, table, _ = inside_cell.cell_arithmetic_view(TEXT, label, 1, 0, "3 1", models=models)
    assert table.count("<th>unit&nbsp;") == 2


def test_a_character_typed_past_the_text_says_which_one_is_used(models):
    last = len(inside.read_by_models(TEXT, models)) - 1
    assert inside_common.character_noted(TEXT, 9999, 0, models=models)["info"] == (
        f"⚠️ 9,999 is above the maximum {last}; used {last}")
    assert inside_common.character_noted(TEXT, 0, 1, models=models)["info"] == "⚠️ 0 is below the minimum 1; used 1"
    assert inside_common.character_noted(TEXT, 5, 0, models=models)["info"] == ""  # in range: the note goes


def test_stepping_stays_inside_the_text():
    assert inside_cell.next_index("abc", 2) == 2 and inside_cell.next_index("abc", 0) == 1
    assert inside_cell.previous_index(0) == 0 and inside_cell.previous_index(5) == 4


def test_input_influence_view_shades_every_earlier_character_for_each_model(models):
    html, caption = inside_memory.input_influence_view(TEXT, 30, models=models)
    for label in LABELS:
        assert label in html and label in caption
    assert html.count("<span") == 3 * 31  # characters 0..30 for each model, the predicted one included
    assert "‖∂loss/∂x‖" in html and "Look for" in caption


def test_the_influence_view_marks_a_cut_where_the_text_starts_and_a_reach_over_the_whole_text(models, monkeypatch):
    monkeypatch.setattr(inside_memory, "SHOWN_BEFORE", 10)
    html, caption = inside_memory.input_influence_view(TEXT, 30, models=models)
    assert html.count('<pre class="generated small">…<span') == 3  # each model's text starts with the cut
    html, _ = inside_memory.input_influence_view(TEXT, 1, models=models)
    assert "reads back 1 character (the whole text)" in html  # the first character is all there is to read


@pytest.mark.parametrize("best, says", [
    ((7, 0.8), "unit 7, which tracks the position in the line (r = +0.80): it grows along each line and resets"),
    ((3, -0.7), "unit 3, which tracks the position in the line (r = −0.70): it falls along each line and jumps back"),
    ((3, -0.28), "No unit of this layer does so closely (the best has r = −0.28)"),
    (None, "No unit of this layer does so closely:")])
def test_the_hidden_state_caption_describes_the_line_position_unit_as_it_runs(best, says):
    assert says.replace("−", "-") in inside_common.line_position_hint(best)


def test_the_line_position_hint_says_how_to_see_its_unit_when_the_rows_leave_it_out():
    assert "(not among these rows: pick “position in line” to see it)" in inside_common.line_position_hint((7, 0.8), [1])
    assert "not among" not in inside_common.line_position_hint((7, 0.8), [1, 7])


def test_find_pattern_finds_units_and_places_in_the_validation_text(models):
    fig, places, caption = inside_memory.find_pattern(TEXT, "GRU", 1, 0, 4, models=models)
    assert isinstance(fig, go.Figure) and len(fig.data[0].y) == inside_memory.PATTERN_UNITS
    assert places.count("at character") == inside_memory.MATCHES and "“ANNA”" in caption
    # each unit says whether it stands out on or off ("most active" beside "-1.8 sd" read as a mistake)
    listed = re.findall(r"(\d+) \(([+-]\d+\.\d) sd, (on|off)\)", caption)
    assert len(listed) == inside_memory.PATTERN_UNITS
    assert all((float(score) >= 0) == (state == "on") for _, score, state in listed)


def test_gradient_flow_plots_all_three_cells(models):
    fig, rows, _ = inside.gradient_flow_plot(TEXT, models=models)
    assert [r[0] for r in rows] == ["Vanilla RNN", "LSTM", "GRU"]
    assert [t.name for t in fig.data] == ["Vanilla RNN", "LSTM", "GRU"] and fig.layout.yaxis.type == "log"
    *_, notes = inside.gradient_flow_plot(TEXT, models=models)
    assert "steps back, and the gradient fades" not in notes  # some 60 characters: enough to say nothing


def test_a_text_too_short_for_the_gradient_view_says_so(models):
    *_, notes = inside.gradient_flow_plot("ANNA: cat", models=models)
    assert "This text gives only 8 steps back" in notes


def test_training_curves_and_memory_lag_render_from_files_as_browser_plots(models, tmp_path):
    curves = inside.training_curves(models).data  # per model: validation and training by step, validation by time
    assert len(curves) == 3 * len(models) and {t.xaxis for t in curves} == {"x", "x2"}
    assert [t.name for t in curves if t.showlegend is not False] == list(models)  # one legend entry per model
    (tmp_path / "lag.json").write_text(json.dumps({
        "lags": [2, 4], "accuracy": {"rnn": [1.0, 0.2], "lstm": [1.0, 1.0]}, "chance": 0.125,
        "settings": {"hidden": 8, "steps": 1, "batch_size": 2}, "seconds": 1, "hardware": "cpu", "command": "x"}))
    fig, note = inside.memory_lag_plot(tmp_path / "lag.json")
    assert [t.name for t in fig.data] == ["Vanilla RNN", "LSTM", "chance"] and "8 units" in note
    fig, note = inside.memory_lag_plot(tmp_path / "missing.json")
    assert note == "" and "No stored results" in fig.layout.annotations[0].text


def _every_view(text, models, **kw):
    """Each view of the tab called on ``text``, with its other inputs valid (or as given in ``kw``)."""
    index, start, end, layer = kw.get("index", 1), kw.get("start", 0), kw.get("end", 2), kw.get("layer", 1)
    return [lambda: inside.hidden_states(text, "LSTM", layer, models=models),
            lambda: inside.gates(text, "GRU", layer, models=models),
            lambda: inside.gradient_flow_plot(text, models=models),
            lambda: inside_cell.cell_arithmetic_view(text, "LSTM", layer, index, models=models),
            lambda: inside_memory.input_influence_view(text, index, models=models),
            lambda: inside_memory.find_pattern(text, "GRU", layer, start, end, models=models)]


@pytest.mark.parametrize("text, message", [
    ("", "type some text"),
    (None, "type some text"),
    ("x" * 501, "the limit here is 500"),
    ("☃☃☃", "at least two characters"),
])
def test_bad_text_gets_a_clear_message_from_every_view(models, text, message):
    for call in _every_view(text, models):
        with pytest.raises(gr.Error, match=message):
            call()


@pytest.mark.parametrize("kw, message", [
    (dict(index=len(TEXT)), f"must be between [01] and {len(TEXT) - 1}, not {len(TEXT)}"),
    (dict(index=-1), "must be between"),
    (dict(index="x"), "must be a number"),
    (dict(start=5, end=5), "the span is empty"),
    (dict(start=9, end=3), "the span is empty"),
    (dict(start=0, end=len(TEXT) + 1), "span end must be between"),
    (dict(layer=3), "layer must be between 1 and 2"),
])
def test_an_index_or_span_outside_the_text_gets_a_clear_message(models, kw, message):
    views = _every_view(TEXT, models, **kw)
    affected = {"index": views[3:5], "start": views[5:], "layer": views[:2] + views[3:4] + views[5:]}
    for call in affected[next(iter(kw))]:
        with pytest.raises(gr.Error, match=message):
            call()


def test_the_prediction_of_the_first_character_is_refused(models):
    with pytest.raises(gr.Error, match="character number must be between 1"):
        inside_memory.input_influence_view(TEXT, 0, models=models)


def test_unknown_characters_are_dropped_and_named(models):
    _, _, caption, _ = inside.hidden_states("ANNA ☃ cat", "LSTM", models=models)
    assert "☃" in caption


def test_every_view_names_the_characters_it_dropped(models):
    for call in _every_view("ANNA ☃ cat", models, index=3, start=0, end=4):
        texts = [out for out in call() if isinstance(out, str)]  # the caption among them, wherever the view puts it
        assert any("never saw" in t and "☃" in t for t in texts)


def test_find_pattern_reads_the_validation_excerpt_once_even_while_start_up_is_reading_it(models, monkeypatch):
    import threading
    import time

    calls, reading, asked, release = [], threading.Event(), threading.Event(), threading.Event()
    real = inside_memory.layer_states

    def slow_states(model, ids):
        if len(ids) > 1000:  # the excerpt, not the user's text
            calls.append(model)
            reading.set()
            release.wait(5)  # still being read when the request comes
        else:
            asked.set()  # the request has read the user's text: next it looks for the excerpt's states
        return real(model, ids)

    monkeypatch.setattr(inside_memory, "layer_states", slow_states)
    start_up = threading.Thread(target=inside_memory.warm_validation_states, args=({"GRU": models["GRU"]},))
    start_up.start()
    reading.wait(5)
    request = threading.Thread(target=inside_memory.find_pattern, args=(TEXT, "GRU", 2, 0, 4),
                               kwargs={"models": models})
    request.start()
    asked.wait(5)
    time.sleep(0.2)  # time for the request to reach the excerpt's states while start-up is still reading them
    release.set()
    start_up.join(), request.join()
    assert calls == [models["GRU"].model]  # the request waited for start-up's states instead of computing them again
    _, states = inside_memory.validation_states(models["GRU"], 2)
    ids = models["GRU"].tokenizer.encode(inside_memory.VALIDATION_TEXT).ids
    torch.testing.assert_close(states, real(models["GRU"].model, ids)[1])


@pytest.mark.parametrize("kw, message", [(dict(layer=3), "layer must be between 1 and 2"),
                                         (dict(unit=16), "unit must be between 0 and 15"),
                                         (dict(unit=-7), r"unit must be -1 \(the best match\) or between 0 and 15")])
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
    assert isinstance(fig, go.Figure) and html.count("<span") == len(TEXT)
    fig, summary = inside.gates(TEXT, cell, 1, models=models)
    titles = " ".join(a.text for a in fig.layout.annotations)
    for name in gate_names:
        assert name in titles and name in summary
    if not gate_names:
        assert "no gates" in summary


@pytest.mark.parametrize("cell", ["mingru", "rglru"])
def test_modern_cells_show_their_arithmetic_and_their_patterns(tokenizer, cell):
    from seqmodels.charmodels import build_char_model
    from seqmodels.fastgen import fast_stepper

    model = build_char_model(cell, dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=2)).eval()
    models = {cell: textgen.TextModel(cell, None, model, tokenizer, fast_stepper(model), None)}
    _, table, _ = inside_cell.cell_arithmetic_view(TEXT, cell, 2, 12, models=models)
    assert "h_t" in table and ("z_t = σ(…)" in table) == (cell == "mingru") and ("a_t = σ(Λ)^(8 r_t)" in table) == (
        cell == "rglru")
    fig, places, _ = inside_memory.find_pattern(TEXT, cell, 2, 6, 9, models=models)
    assert places.count("at character") == inside_memory.MATCHES


def test_the_memory_views_read_the_modern_models_beside_the_classic_ones(tokenizer, models):
    from seqmodels.charmodels import build_char_model
    from seqmodels.fastgen import fast_stepper

    for label, cell in [("minGRU", "mingru"), ("RG-LRU (Hawk)", "rglru"), ("Transformer", "transformer")]:
        torch.manual_seed(0)
        model = build_char_model(cell, dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=2,
                                            num_heads=2)).eval()
        models[label] = textgen.TextModel(label, None, model, tokenizer, fast_stepper(model), None)
    html, caption = inside_memory.input_influence_view(TEXT, 30, models=models)
    assert html.count("<span") == 6 * 31 and "Transformer" in html and "RG-LRU (Hawk) " in caption
    fig, rows, _ = inside.gradient_flow_plot(TEXT, models=models)  # no recurrent state in the Transformer: not drawn
    assert [r[0] for r in rows] == [t.name for t in fig.data] == ["Vanilla RNN", "LSTM", "GRU", "minGRU",
                                                                  "RG-LRU (Hawk)"]
    assert all(float(r[1]) > 0 for r in rows)
    only_transformer = {"Transformer": models["Transformer"]}
    with pytest.raises(gr.Error, match="no recurrent character model"):
        inside.gradient_flow_plot(TEXT, models=only_transformer)


def test_selecting_text_picks_the_span_and_a_click_picks_only_the_character():
    index, start, end = inside.selection(TEXT, gr.SelectData(None, {"index": [6, 9], "value": "The"}), models={})
    assert (index, start, end) == (6, 6, 9)
    index, start, end = inside.selection(TEXT, gr.SelectData(None, {"index": [12, 12], "value": ""}), models={})
    assert index == 12 and start == end == gr.skip()


def test_a_selection_counts_the_characters_the_model_reads_after_an_emoji_or_an_accent(models):
    text = "“Thé” \U0001F642 ANNA: the cat."  # “, é, ” and the emoji are not in the tiny vocabulary
    read = inside.read_by_models(text, models)
    assert read == "Th  ANNA: the cat."
    at = text.index("ANNA") + 1  # the browser counts the emoji as two characters
    index, start, end = inside.selection(text, gr.SelectData(None, {"index": [at, at + 4], "value": "ANNA"}),
                                         models=models)
    assert read[start:end] == "ANNA" and index == start
    *_, caption = inside_memory.find_pattern(text, "LSTM", 1, start, end, models=models)
    assert caption.startswith("Span “ANNA”")


def test_the_pickers_count_the_characters_the_model_reads(models):
    index, target, *_, length = inside.fit_to_text("“Thé cat,” said ANNA.", 60, 300, 0, 1, models=models)
    assert length == 18 and index.maximum == target.maximum == 17  # “, é and ” are left out


def test_pickers_at_the_end_of_the_text_follow_it_while_one_types(models):
    # Ctrl+A, then a first letter
    index, target, *_, length = inside.fit_to_text("A", 60, 300, 0, 8, 472, models=models)
    assert (index.value, target.value, length) == (0, 1, 1)
    for typed in ["AN", "ANN", "ANNA: the cat"]:
        index, target, *_, length = inside.fit_to_text(typed, index.value, target.value, 0, 1, length, models=models)
    assert (index.value, target.value) == (12, 12)
    index, target, *_ = inside.fit_to_text("ANNA: the cat.", 4, 5, 0, 1, length, models=models)  # elsewhere: stays
    assert (index.value, target.value) == (4, 5)


def test_views_without_a_model_or_layer_hide_those_controls():
    assert inside.controls_hidden().visible is False and inside.controls_shown().visible is True


def test_one_colour_per_model_in_every_plot(models, tmp_path):
    from demos.style import MODEL_COLOURS

    fig, _, _ = inside.gradient_flow_plot(TEXT, models=models)
    assert {t.name: t.line.color for t in fig.data} == {name: MODEL_COLOURS[name] for name in LABELS}
    curves = inside.training_curves(models).data
    assert {(t.name, t.line.color) for t in curves} == {(name, MODEL_COLOURS[name]) for name in LABELS}
    fig, _ = inside.memory_lag_plot()
    lag = {t.name: t.line.color for t in fig.data if t.name in LABELS}
    assert lag == {name: MODEL_COLOURS[name] for name in LABELS}


def test_the_character_pickers_fit_the_text(models):
    index, target, start, end, _ = inside.fit_to_text("Hello there.", 60, 300, 31, 39, models={})  # 12 characters: 0 to 11
    assert (index.maximum, index.value, target.maximum, target.value) == (11, 11, 11, 11)
    assert (start, end) == (11, 12)  # the span moved inside the text
    index, target, start, end, _ = inside.fit_to_text("Hello there.", 3, 5, 2, 6, models={})  # in range: kept
    assert (index.value, target.value) == (3, 5) and start == end == gr.skip()
    for short in ["", "H", "Hi", "Hi!"]:  # Gradio refuses a slider whose maximum is not above its minimum
        index, target, _, _, _ = inside.fit_to_text(short, 0, 1, 0, 8, models={})
        gr.Slider(0, index.maximum), gr.Slider(1, target.maximum)  # the tab's minimums: these raise if refused
    index, target, *_ = inside.fit_to_text("at", 60, 300, 0, 8, models={})  # on characters the views accept
    assert (index.value, target.value) == (1, 1)
    assert inside_memory.input_influence_view("at", target.value, models=models)


def test_a_span_emptied_with_the_text_comes_back_on_the_first_word_of_a_new_text():
    *_, start, end, _ = inside.fit_to_text("", 0, 1, 42, 50, models={})  # the text cleared
    assert (start, end) == (0, 0)
    *_, start, end, _ = inside.fit_to_text("KING LEAR:\nBlow, winds.", 0, 1, start, end, 0, models={})  # pasted
    assert start == gr.skip() and end == 4  # the start stays at 0
    *_, end, _ = inside.fit_to_text("Blow!", 0, 1, 0, 0, models={})  # no space: at most the first 8 characters
    assert end == 5


def test_a_position_sent_before_the_new_range_arrived_is_moved_into_it_not_refused():
    # the text shrank to 30 characters while the browser still sent character 31 (a newcomer's walkthrough)
    with pytest.raises(gr.Error, match="greater than maximum"):
        gr.Slider(0, 29, step=1).preprocess(31)
    assert inside.FittedSlider(0, 29, step=1).preprocess(31) == 29
    assert inside.FittedSlider(1, 29, step=1).preprocess(-4) == 1
    assert isinstance(inside.layer_range("any", 5, models={}), inside.FittedSlider)  # the Layer slider does the same


def test_the_dropped_note_counts_every_dropped_character_and_shows_each_kind_once():
    from seqmodels.charlm import unseen_note
    assert unseen_note("zz ##### 12345 ~~~~", ["#", "1", "2", "3", "4", "5", "~"]).startswith(
        "dropped 14 characters (7 different) the model never saw in training: '#12345~'")
    assert unseen_note("a ☃ b", ["☃"]).startswith("dropped 1 character the model")
    assert unseen_note("☃☃", ["☃"]).startswith("dropped 2 characters the")
