"""`python app.py` starts, serves on the port it is given, and answers the generate endpoint."""

import pytest

from seqmodels import save_model

from conftest import ROOT, make_model, running_app


@pytest.fixture
def app_url(tmp_path, tokenizer):
    for name, cell in [("charlm-lstm", "lstm"), ("charlm-gru", "gru"), ("charlm-rnn", "rnn")]:
        save_model(tmp_path / name, make_model(tokenizer, cell), tokenizer, {"val_loss": 2.0})
    from test_seq2seq import make_s2s
    from conftest import TINY_PAIRS
    from seqmodels import SentencePieceTokenizer
    sp = SentencePieceTokenizer.train([s for p in TINY_PAIRS for s in p], vocab_size=300)
    save_model(tmp_path / "translate-en-fr", make_s2s(vocab=sp.vocab_size), sp, {"val_loss": 3.0, "val_bleu": 1.0})
    from test_caption import make_captioner
    from seqmodels.tokenizers import WordTokenizer
    words = WordTokenizer.train(["a dog runs on the grass"], min_count=1)
    save_model(tmp_path / "caption-flickr8k", make_captioner(vocab=words.vocab_size), words, {"val_loss": 4.0})
    with running_app(tmp_path, start_timeout=90) as url:
        yield url


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


def test_app_serves_the_translate_endpoint(app_url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    model = "Ours: SentencePiece, biGRU, attention"
    french, rows, plot, notes = client.predict("We are ready.", 3, model, api_name="/translate")
    assert isinstance(french, str) and len(rows["data"]) == 3 and plot is not None and "beam 3" in notes
    with pytest.raises(AppError, match="no letters or digits"):
        client.predict("?!", 3, model, api_name="/translate")


def test_app_serves_the_caption_endpoint_and_refuses_a_file_that_is_not_an_image(app_url, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    model = "Show, Attend and Tell (from-scratch CNN)"
    example = ROOT / "demos" / "assets" / "examples" / "cat.jpg"
    caption, rows, gallery, notes = client.predict(handle_file(str(example)), 2, model, api_name="/caption")
    assert isinstance(caption, str) and len(rows["data"]) == 2 and len(gallery) >= 1 and "ms" in notes
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"this is text, not a JPEG")
    with pytest.raises(AppError, match="cannot be read as an image"):
        client.predict(handle_file(str(fake)), 2, model, api_name="/caption")
