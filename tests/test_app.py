"""`python app.py` starts, serves on the port it is given, and answers every tab's endpoints."""
import json
import shutil

import pytest

from demos import caption, inside, inside_cell, inside_memory, textgen, train, translate
from seqmodels import CharTokenizer, save_model
from seqmodels.tokenizers import WordTokenizer
from seqmodels.workers import WORKERS_READY

from conftest import ROOT, TINY_TEXT, make_captioner, make_model, running_app

# api_name -> (handler, the parameters the API asks for: each tab binds its models in build_tab, so never
# `models`); the API page describes each endpoint with its handler's docstring
ENDPOINTS = {
    "/generate": (textgen.generate_text, ["prompt", "model_name", "temperature", "top_k", "top_p", "length", "seed",
                                          "colour"]),
    "/translate": (translate.translate, ["text", "beam_size", "model_name"]),
    "/caption": (caption.caption_image, ["image", "beam_size", "model_name"]),
    "/hidden_states": (inside.hidden_states, ["text", "model_name", "layer", "unit", "feature", "order", "listed"]),
    "/gates": (inside.gates, ["text", "model_name", "layer"]),
    "/cell_arithmetic": (inside_cell.cell_arithmetic_view, ["text", "model_name", "layer", "index", "units"]),
    "/input_influence": (inside_memory.input_influence_view, ["text", "index"]),
    "/find_pattern": (inside_memory.find_pattern, ["text", "model_name", "layer", "start", "end"]),
    "/gradient_flow": (inside.gradient_flow_plot, ["text"]),
    "/train": (train.run_training, ["corpus", "own_text", "upload", "cell", "layers", "hidden", "seq_len", "lr", "seconds"]),
    "/stop_training": (train.stop_training, []),
    "/generate_own": (train.generate_own, ["prompt", "temperature", "top_k", "top_p", "length", "seed"]),
    "/inside_own": (train.inside_own, ["text"]),
}


def label(tab, folder: str) -> str:
    """The name the tab's model picker gives the checkpoint in ``folder``."""
    return next(name for name, f in tab.CHECKPOINTS.items() if f == folder)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app on tiny untrained models, except translation: the shipped model, so its output can be checked.
    One app for the whole file: its endpoints keep no state between requests. The tests start once its worker
    processes are up, so the requests go through them, as on a server that has run a while."""
    tmp_path = tmp_path_factory.mktemp("checkpoints")
    tokenizer = CharTokenizer.from_text(TINY_TEXT)
    for name, cell in [("charlm-lstm", "lstm"), ("charlm-gru", "gru"), ("charlm-rnn", "rnn")]:
        save_model(tmp_path / name, make_model(tokenizer, cell), tokenizer, {"val_loss": 2.0})
    shutil.copytree(ROOT / "checkpoints" / "translate-en-fr", tmp_path / "translate-en-fr")
    words = WordTokenizer.train(["a dog runs on the grass"], min_count=1)
    save_model(tmp_path / "caption-flickr8k", make_captioner(vocab=words.vocab_size), words, {"val_loss": 4.0})
    with running_app(tmp_path, start_timeout=180, ready_line=WORKERS_READY) as url:
        yield url


def test_every_endpoint_keeps_its_name_parameters_and_description(app_url):
    from gradio_client import Client

    api = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == set(ENDPOINTS) and not api["unnamed_endpoints"]
    for name, (handler, params) in ENDPOINTS.items():
        endpoint = api["named_endpoints"][name]
        assert [p["parameter_name"] for p in endpoint["parameters"]] == params, name
        assert endpoint["description"] == handler.__doc__.strip(), name


def test_app_serves_the_generate_endpoint(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    html, text, stats = client.predict("ANNA:", "GRU", 0.8, 0, 1.0, 40, 3, True, api_name="/generate")
    assert text.startswith("ANNA:") and len(text) == 45
    assert "chars/s" in stats and "<span" in html


def test_app_answers_bad_input_with_the_message(app_url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    with pytest.raises(AppError, match="maximum value 2000"):  # the slider's own check
        client.predict("ANNA:", "LSTM", 0.8, 0, 1.0, 99999, 3, True, api_name="/generate")
    with pytest.raises(AppError, match="the limit is 2,000"):  # ours: max_length is only an HTML attribute
        client.predict("x" * 2001, "LSTM", 0.8, 0, 1.0, 10, 3, True, api_name="/generate")


def test_app_serves_the_inside_the_rnn_endpoints(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    text = "ANNA:\nThe cat is grey.\n"
    plot, html, caption, table = client.predict(text, "LSTM", 1, -1, "position in line", api_name="/hidden_states")
    assert plot is not None and html.count("<span") == len(text) and "Unit" in caption
    plot, rows, notes = client.predict(text, api_name="/gradient_flow")
    assert [r[0] for r in rows["data"]] == ["Vanilla RNN", "LSTM", "GRU"]
    plot, summary = client.predict(text, "GRU", 1, api_name="/gates")
    assert "reset" in summary
    context, table, caption = client.predict(text, "LSTM", 2, 7, "", api_name="/cell_arithmetic")
    assert "f_t = σ(sum)" in table and "reading character 7" in caption
    shaded, caption = client.predict(text, 12, api_name="/input_influence")
    assert all(name in shaded for name in ("Vanilla RNN", "LSTM", "GRU"))
    plot, places, caption = client.predict(text, "GRU", 1, 0, 4, api_name="/find_pattern")
    assert plot["type"] == "plotly" and "at character" in places


@pytest.mark.parametrize("endpoint, args, message", [
    ("/cell_arithmetic", ("", "LSTM", 1, 0, ""), "type some text"),
    ("/cell_arithmetic", ("ANNA:\n", "LSTM", 1, 99, ""), "character index must be between 0 and 5"),
    ("/input_influence", ("☃☃☃", 5), "at least two characters"),
    ("/find_pattern", ("ANNA:\nThe cat.", "GRU", 1, 3, 3), "the span is empty"),
    ("/hidden_states", ("ANNA:\nThe cat.", "LSTM", 1, -1, "space", "the units I list", "99"), "'99' is not a unit"),
])
def test_the_inside_endpoints_answer_bad_input_with_a_message(app_url, endpoint, args, message):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        Client(app_url, verbose=False).predict(*args, api_name=endpoint)


def test_app_serves_the_translate_endpoint(app_url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    model = label(translate, "translate-en-fr")
    french, rows, plot, notes = client.predict("I am cold.", 3, model, api_name="/translate")
    assert "froid" in french and "\n" not in french  # "Je suis froid." from the shipped model: one line of French
    # (sentence, rank, candidate, ...): the box shows the best
    assert [r[:2] for r in rows["data"]] == [[1, 1], [1, 2], [1, 3]] and rows["data"][0][2] == french
    assert plot["type"] == "plotly" and "beam 3" in notes  # data for the browser to draw, not a picture
    french, rows, plot, notes = client.predict("I am cold. Thank you! 🙏", 3, model, api_name="/translate")
    assert "froid" in french and "merci" in french.lower() and french.endswith("🙏") and "2 sentences" in notes
    with pytest.raises(AppError, match="no letters or digits"):
        client.predict("?!", 3, model, api_name="/translate")


def test_app_serves_the_caption_endpoint_and_refuses_a_file_that_is_not_an_image(app_url, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    model = label(caption, "caption-flickr8k")
    example = ROOT / "demos" / "assets" / "examples" / "cat.jpg"
    text, rows, figure, notes = client.predict(handle_file(str(example)), 2, model, api_name="/caption")
    assert isinstance(text, str) and len(rows["data"]) == 2 and "ms" in notes
    traces = json.loads(figure["plot"])["data"]  # the photo, then one heat map per word, drawn by the browser
    assert traces[0]["type"] == "image" and len(traces) - 1 in (len(text.split()), len(text.split()) + 1)  # and </s>
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"this is text, not a JPEG")
    with pytest.raises(AppError, match="cannot be read as an image"):
        client.predict(handle_file(str(fake)), 2, model, api_name="/caption")


def test_app_trains_live_through_the_api(app_url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    plot, status, samples, download, query, views_text = client.predict("Names", "", None, "gru", 1, 32, 32, 0.003, 5,
                                                                         api_name="/train")
    assert "finished after" in status and "<pre" in samples and download and "corpus=Names" in query
    with pytest.raises(AppError, match="maximum value 512"):  # the API is checked too (the slider's range, then ours)
        client.predict("Names", "", None, "gru", 1, 4096, 32, 0.003, 5, api_name="/train")
