"""The Text generation tab's handler, called as Gradio calls it."""
from pathlib import Path

import gradio as gr
import pytest

from demos import textgen
from seqmodels import FastCharLM, greedy_continuation

from conftest import make_model


@pytest.fixture
def models(tokenizer):
    model = make_model(tokenizer, "gru")
    return {"GRU": textgen.TextModel("GRU", None, model, tokenizer, FastCharLM(model, quantize=True), 1.5)}


def stream_every_character(monkeypatch):
    monkeypatch.setattr(textgen, "STREAM_INTERVAL_S", 0.0)
    monkeypatch.setattr(textgen, "STREAM_GROWTH", 0.0)


def run(models, prompt="ANNA:", **kw):
    args = dict(model_name="GRU", temperature=0.8, top_k=0, top_p=1.0, length=50, seed=1, colour=True)
    return list(textgen.generate_text(prompt, **{**args, **kw}, models=models))


def test_handler_streams_text_that_grows_update_by_update(models, monkeypatch):
    stream_every_character(monkeypatch)
    updates = run(models, length=30)
    assert len(updates) == 32  # one at once, one per character, then the final one
    texts = [plain for _, plain, _ in updates]
    # the first comes before any character: the prompt and the seed show while the model reads
    assert texts[0] == "ANNA:" and updates[0][2].startswith("0 of 30 characters in ") and "seed 1" in updates[0][2]
    assert all(texts[i + 1].startswith(texts[i]) for i in range(len(texts) - 1))
    assert texts[-1].startswith("ANNA:") and len(texts[-1]) == 5 + 30
    html, _, stats = updates[-1]
    assert html.count(": p = ") == 30 and "chars/s" in stats and "seed 1" in stats
    # Stop keeps the last update it got: while writing, each says how far along the length it is
    assert updates[12][2].startswith("12 of 30 characters in ") and stats.startswith("30 characters in ")


def test_the_speed_line_leaves_out_the_prompts_reading_and_says_how_long_it_took(models):
    _, _, stats = run(models, prompt="ANNA:", length=20)[-1]
    assert "after reading the 5-character prompt in" in stats and "chars/s" in stats
    _, _, stats = run(models, prompt="", length=20)[-1]  # a new line to start from: no prompt to speak of
    assert "after reading" not in stats and "chars/s" in stats
    _, _, stats = run(models, length=1)[-1]  # one character is no speed
    assert stats.startswith("1 character in") and "chars/s" not in stats


def test_text_that_is_only_a_line_break_is_named_since_it_shows_as_nothing(models, tokenizer):
    import torch
    model = make_model(tokenizer, "gru")
    with torch.no_grad():
        model.head.bias[tokenizer.chars.index("\n")] += 100  # this model writes nothing but line breaks
    breaks = {"GRU": textgen.TextModel("GRU", None, model, tokenizer, FastCharLM(model, quantize=True), 1.5)}
    assert run(breaks, length=1)[-1][2].startswith("1 character (↵) in")
    assert "(↵ ↵ ↵)" in run(breaks, length=3)[-1][2]
    _, text, stats = run(models, length=1, temperature=0)[-1]
    assert text[-1].strip() and stats.startswith("1 character in")  # a visible character is not named


def test_temperature_zero_gives_the_greedy_text(models, tokenizer):
    _, text, stats = run(models, temperature=0, length=40)[-1]
    expected = tokenizer.decode(greedy_continuation(models["GRU"].stepper, tokenizer.encode("ANNA:").ids, 40))
    assert text == "ANNA:" + expected and "greedy" in stats


def test_same_seed_same_text_and_no_seed_reports_the_one_it_drew(models):
    assert run(models, seed=5)[-1][1] == run(models, seed=5)[-1][1]
    stats = run(models, seed=None)[-1][2]
    assert "seed " in stats


def test_empty_prompt_starts_on_a_new_line_and_unknown_characters_are_named(models):
    _, text, stats = run(models, prompt="")[-1]
    assert "empty prompt" in stats
    _, text, stats = run(models, prompt="ANNA ☃ Ж")[-1]
    assert text.startswith("ANNA  ") and "☃" in stats and "Ж" in stats


@pytest.mark.parametrize("kw, message", [
    (dict(prompt="x" * 2001), "the limit is 2,000"),
    (dict(length=10_000), "length must be a whole number from 1 to 2,000, not 10,000"),
    (dict(temperature=-1), "temperature must be between 0 and 2, not -1"),
    (dict(temperature=99), "temperature must be between 0 and 2, not 99"),
    (dict(top_p=1.5), "top-p must be between 0 and 1, not 1.5"),
    (dict(top_k="lots"), "top-k must be a whole number from 0 to 10,000, not 'lots'"),
    (dict(length=2.5), "length must be a whole number from 1 to 2,000, not 2.5"),
    (dict(length=-5), "length must be a whole number from 1 to 2,000, not -5"),
    (dict(model_name="Transformer"), "unknown model"),
])
def test_bad_input_raises_a_gradio_error_with_a_clear_message(models, kw, message):
    with pytest.raises(gr.Error, match=message):
        run(models, **kw)


@pytest.mark.parametrize("seed", [99999999999999999999, 1e20, 2**63, -5, 2.5, "lots"])
def test_a_seed_out_of_range_names_every_seed_it_takes_written_out_in_full(models, seed):
    with pytest.raises(gr.Error) as raised:
        run(models, seed=seed)
    wanted = "seed must be -1 (random) or a whole number from 0 to 9,223,372,036,854,775,807, not "
    assert raised.value.message.startswith(wanted) and "e+" not in raised.value.message
    if seed == 1e20:
        assert raised.value.message.endswith("not 100,000,000,000,000,000,000")


def test_the_largest_seed_still_generates(models):
    assert "seed 9223372036854775807" in run(models, seed=2**63 - 1, length=5)[-1][2]


def test_one_character_is_counted_in_the_singular(models):
    assert run(models, length=1)[-1][2].startswith("1 character in ")
    assert run(models, length=2)[-1][2].startswith("2 characters in ")


@pytest.mark.parametrize("greedy, name", [(dict(top_k=1), "top-k 1"), (dict(top_p=0.0), "top-p 0"),
                                          (dict(temperature=0), "temperature 0")])
def test_settings_that_leave_one_candidate_say_they_decode_greedily_and_do(models, tokenizer, greedy, name):
    _, text, stats = run(models, length=40, **{"temperature": 1.5, **greedy})[-1]
    expected = tokenizer.decode(greedy_continuation(models["GRU"].stepper, tokenizer.encode("ANNA:").ids, 40))
    assert text == "ANNA:" + expected and f"Note: {name}: greedy decoding" in stats


@pytest.mark.parametrize("top_p", [0.0, 1.0])
def test_top_p_at_its_bounds_still_generates(models, top_p):
    assert len(run(models, top_p=top_p, length=10)[-1][1]) == 5 + 10


def test_colour_off_gives_plain_text_without_spans(models):
    html, text, _ = run(models, colour=False)[-1]
    assert "<span style" not in html and text[5:] in html


def test_generated_characters_are_html_escaped():
    html = textgen.render_html("<b>", ["<", "&"], [0.5, 0.9], colour=True)
    assert "&lt;b&gt;" in html and ">&lt;</span>" in html and ">&amp;</span>" in html


def test_missing_checkpoints_are_reported_not_raised(tmp_path):
    models, problems = textgen.load_models(tmp_path)
    assert models == {} and len(problems) == len(textgen.CHECKPOINTS) and "not found" in problems[0]


def test_a_negative_seed_means_a_random_one_that_is_reported(models):
    _, text, stats = run(models, seed=-1, temperature=1.5)[-1]
    seed = int(stats.split("seed ")[1].split()[0])
    assert seed >= 0 and run(models, seed=seed, temperature=1.5)[-1][1] == text


def test_which_model_table_reads_the_bench_record_and_says_when_it_is_missing(tmp_path):
    import json

    from demos.compare import COLUMNS, comparison_rows, measured_on

    rows, note = comparison_rows(tmp_path / "missing.json")
    assert rows == [] and "bench/compare_char_models.py" in note and measured_on(tmp_path / "missing.json") == "Not measured yet"
    record = {"note": "measured here", "hardware": "Intel(R) Xeon(R) Processor (AVX-512 with bf16), 2 cores, no GPU; "
              "torch 2.14.1", "models": [{
        "label": "minGRU", "params": 2821505, "train_tokens_per_s": 4980, "minutes_trained": 26.2, "val_loss": 1.4746,
        "hamlet_loss": 1.5893, "chars_per_s": 3000, "chars_per_s_at_100": 2900, "chars_per_s_at_2000": 2950,
        "state_floats_at_2000": 4800}]}
    (tmp_path / "r.json").write_text(json.dumps(record))
    rows, note = comparison_rows(tmp_path / "r.json")
    assert note == "measured here" and len(rows) == 1 and len(rows[0]) == len(COLUMNS)
    # the label names the machine: the tab's experiments ran on several, and "this project's CPU" named two of them
    assert measured_on(tmp_path / "r.json") == "Measured on Intel Xeon (AVX-512 with bf16), 2 cores, no GPU"
    row = dict(zip(COLUMNS, rows[0]))
    assert row["model"] == "minGRU" and row["parameters"] == "2,821,505" and row["minutes to best"] == "26.2"
    assert row["val. loss"] == "1.4746" and row["Hamlet loss"] == "1.5893" and row["… at 2,000"] == "2,950"
    assert COLUMNS[1:3] == ["val. loss", "Hamlet loss"]  # what the panel's text reads first, on a phone's screen


def test_the_which_model_texts_claims_hold_for_the_shipped_models_and_their_record():
    import json

    from demos.compare import ASSET

    measured = {m["label"]: m for m in json.loads(ASSET.read_text(encoding="utf-8"))["models"]}
    assert min(measured, key=lambda label: measured[label]["val_loss"]) == "minGRU"
    assert "The **minGRU** has the lowest validation loss" in textgen.WHICH_MODEL
    assert min(measured, key=lambda label: measured[label]["hamlet_loss"]) == "GRU"
    assert "The **GRU**\n  does best on *Hamlet*" in textgen.WHICH_MODEL
    modern = max(measured[name]["train_tokens_per_s"] for name in ("minGRU", "RG-LRU (Hawk)"))
    assert measured["LSTM"]["train_tokens_per_s"] > modern  # "the modern RNNs do not train faster here"
    root = Path(__file__).resolve().parents[1] / "checkpoints"
    configs = {name: json.loads((root / textgen.CHECKPOINTS[name] / "config.json").read_text(encoding="utf-8"))
               for name in ("minGRU", "RG-LRU (Hawk)")}
    configs = {name: saved["config"] for name, saved in configs.items()}
    assert all(c["conv_width"] == 4 for c in configs.values()) and "last 4 positions" in textgen.WHICH_MODEL
    assert configs["minGRU"]["num_layers"] == 8 and "its 8 layers" in textgen.WHICH_MODEL


# Machado et al. (2009) matrices, severity 1, on linear RGB: what a person with each colour blindness sees
DICHROMACY = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}


def seen_with(colour: str, matrix) -> list[float]:
    """The sRGB colour (0-255) that ``colour`` (#rrggbb) looks like through ``matrix``."""
    def linear(c):
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    def gamma(c):
        c = min(max(c, 0.0), 1.0)
        return 255 * (12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055)

    rgb = [linear(int(colour[i:i + 2], 16)) for i in (1, 3, 5)]
    return [gamma(sum(m * c for m, c in zip(row, rgb))) for row in matrix]


@pytest.mark.parametrize("kind", DICHROMACY)
def test_surprised_and_sure_characters_stay_apart_for_colour_blind_readers(kind):
    # the old red-green scale's ends came within 42 of each other for deuteranopia; these stay over 120 apart
    surprised, sure = (seen_with(textgen._colour(p), DICHROMACY[kind]) for p in (0.0, 1.0))
    assert sum((a - b) ** 2 for a, b in zip(surprised, sure)) ** 0.5 > 120


def test_the_colour_scale_runs_from_its_first_stop_to_its_last_through_the_middle():
    ends = [textgen._colour(p) for p in (0.0, 0.5, 1.0)]
    assert ends == ["#" + "".join(f"{c:02x}" for c in rgb) for _, rgb in textgen.PROBABILITY_SCALE]


def test_coloured_text_has_a_legend_and_plain_text_none(models):
    assert "prob-legend" in run(models, colour=True)[-1][0]
    assert "prob-legend" not in run(models, colour=False)[-1][0]


def test_each_character_names_its_probability_and_the_models_five_likeliest_characters(models):
    import re

    html, text, _ = run(models, length=20)[-1]
    titles = re.findall(r'title="([^"]*)"', html)
    assert len(titles) == 20
    for title, char in zip(titles, text[5:]):
        head, likeliest = title.split("\n")
        prob = float(re.search(r"p = ([0-9.]+)", head).group(1))
        probs = [float(p) for p in re.findall(r" ([01][.][0-9]{2})(?: ·|$)", likeliest)]
        assert len(probs) == textgen.ALTERNATIVES and probs == sorted(probs, reverse=True)
        assert prob <= probs[0] + 0.005  # nothing is likelier than the likeliest


def test_generate_reports_the_likeliest_tokens_with_the_probability_it_reports_for_its_own(models, tokenizer):
    from seqmodels import SamplingSettings, generate

    stepper = models["GRU"].stepper
    for token in generate(stepper, tokenizer.encode("ANNA:").ids, SamplingSettings(max_new_tokens=10, seed=0),
                          alternatives=5):
        ids, probs = zip(*token.top)
        assert len(ids) == 5 and list(probs) == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        if token.id in ids:
            assert probs[ids.index(token.id)] == pytest.approx(token.prob)
        else:
            assert token.prob <= probs[-1]
    assert all(t.top == () for t in generate(stepper, [0], SamplingSettings(max_new_tokens=3, seed=0)))


def test_streamed_updates_are_coloured_and_only_the_last_carries_the_hover_text(models, monkeypatch):
    stream_every_character(monkeypatch)
    updates = run(models, length=12)
    for html, _, _ in updates[:-1]:
        assert "background:" in html and "title=" not in html
    assert updates[-1][0].count("title=") == 12


@pytest.mark.parametrize("colour", [True, False])
def test_the_final_result_is_the_same_however_often_the_text_streams(models, monkeypatch, colour):
    stream_every_character(monkeypatch)
    every_character = run(models, length=40, colour=colour)
    monkeypatch.setattr(textgen, "STREAM_INTERVAL_S", 1e9)  # no update between the first (no text yet) and the last
    once = run(models, length=40, colour=colour)
    assert len(once) == 2 and len(every_character) == 42
    assert every_character[-1][:2] == once[-1][:2]  # the HTML and the plain text; the stats line holds the time


def test_updates_thin_out_as_a_long_generation_runs_on(models, monkeypatch):
    import itertools

    clock = itertools.count(0, 0.05)  # every character takes 50 ms: a crowded server
    monkeypatch.setattr(textgen.time, "perf_counter", lambda: next(clock))
    updates = run(models, length=200)  # 10 s
    texts = [plain for _, plain, _ in updates]
    assert all(texts[i + 1].startswith(texts[i]) for i in range(len(texts) - 1))
    assert 10 <= len(updates) <= 25  # a fixed 0.1 s interval would send 100


def test_the_model_picker_shows_the_loss_the_which_model_table_measured(models, tokenizer, monkeypatch, tmp_path):
    import json

    from demos import compare

    # the checkpoint's own figure (1.5, from training) gives way to the table's; a model the table lacks keeps its own
    record = {"models": [{"label": "GRU", "val_loss": 1.4383}]}
    (tmp_path / "r.json").write_text(json.dumps(record))
    monkeypatch.setattr(compare, "ASSET", tmp_path / "r.json")
    lstm = make_model(tokenizer, "lstm")
    models = {**models, "LSTM": textgen.TextModel("LSTM", None, lstm, tokenizer, FastCharLM(lstm, quantize=True), 1.6)}
    with gr.Blocks() as page:
        textgen.build_tab(models)
    pickers = [b for b in page.blocks.values() if isinstance(b, gr.Radio) and b.label == "Model"]
    assert [label for label, _ in pickers[0].choices] == ["GRU · 1.438", "LSTM · 1.600"]
