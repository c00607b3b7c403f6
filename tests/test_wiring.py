"""demos/wiring.py: how a handler reaches the page and the API, and how a user's mistake is told to each."""
import logging

import gradio as gr
import pytest

from demos import caption, inside_cell, inside_memory, textgen, train, translate, wiring
from seqmodels import FastCharLM

from conftest import make_model


@pytest.fixture
def models(tokenizer):
    model = make_model(tokenizer, "gru")
    return {"GRU": textgen.TextModel("GRU", None, model, tokenizer, FastCharLM(model, quantize=True), 1.5)}


def outputs(n: int) -> list:
    """``n`` output components of the kinds the tabs use."""
    kinds = [gr.Textbox, gr.Plot, gr.HTML, gr.Dataframe, gr.Markdown]
    with gr.Blocks():
        return [kinds[i % len(kinds)]() for i in range(n)]


def mistake(*args):
    raise gr.Error("temperature must be between 0 and 5, not 9")


def test_a_mistake_on_the_page_shows_one_message_and_empties_every_output():
    boxes = outputs(4)
    answer = wiring.for_page(mistake, boxes, endpoint="generate")()
    assert answer[-1] == "⚠️ temperature must be between 0 and 5, not 9"
    assert [u["value"] for u in answer[:-1]] == ["", None, "", None]  # "" where None would leave the old text


def test_each_mistake_gets_its_own_emptied_outputs():
    # Gradio consumes an update once it is sent: the second mistake must not reuse the first one's updates
    page = wiring.for_page(mistake, outputs(2))
    first, second = page(), page()
    assert all(a is not b for a, b in zip(first[:-1], second[:-1]))


def test_kept_outputs_and_state_are_left_as_they_are():
    with gr.Blocks():
        plot, session, query = gr.Plot(), gr.State(), gr.Textbox()
    answer = wiring.for_page(mistake, [plot, session, query], keep=[query])()
    assert answer[0]["value"] is None and answer[1] == gr.skip() and answer[2] == gr.skip()


def test_a_mistake_is_logged_in_one_line_without_a_traceback(caplog):
    with caplog.at_level(logging.WARNING, logger="rnn_playground"):
        wiring.for_page(mistake, outputs(1), endpoint="generate")()
    [record] = caplog.records
    assert record.getMessage() == "bad input to /generate: temperature must be between 0 and 5, not 9"
    assert record.exc_info is None


def test_the_api_still_fails_a_mistake_with_its_message_but_prints_no_traceback(caplog):
    with caplog.at_level(logging.WARNING, logger="rnn_playground"), pytest.raises(gr.Error) as raised:
        wiring.for_api(mistake, "generate")()
    assert raised.value.message == "temperature must be between 0 and 5, not 9"
    assert raised.value.print_exception is False and len(caplog.records) == 1


def test_a_fault_of_the_app_is_not_turned_into_a_message():
    def broken(*args):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        wiring.for_page(broken, outputs(1))()
    with pytest.raises(RuntimeError):
        wiring.for_api(broken)()


def test_a_streaming_handler_streams_on_the_page_with_an_empty_message_then_a_late_mistake_clears_it():
    def stream(n):
        yield "a", "b"
        yield "ab", "bc"
        raise gr.Error("the run failed")

    updates = list(wiring.for_page(stream, outputs(2))(2))
    assert updates[:2] == [("a", "b", ""), ("ab", "bc", "")]
    assert updates[2][-1] == "⚠️ the run failed" and updates[2][0]["value"] == ""
    api = wiring.for_api(stream)
    with pytest.raises(gr.Error, match="the run failed"):
        list(api(2))


def test_the_wrapped_handlers_keep_the_name_parameters_and_description_of_the_endpoint(models):
    import inspect

    handler = wiring.bind_models(textgen.generate_text, models)
    for wrapped in (wiring.for_page(handler, outputs(3)), wiring.for_api(handler)):
        assert list(inspect.signature(wrapped).parameters)[:8] == ["prompt", "model_name", "temperature", "top_k",
                                                                   "top_p", "length", "seed", "colour"]
        assert wrapped.__doc__ == textgen.generate_text.__doc__


def with_models(handler):
    """``handler`` bound to the test's models, as its tab binds it."""
    return lambda models: wiring.bind_models(handler, models)


def with_no_models(handler):
    return lambda models: wiring.bind_models(handler, {})


# each tab's handler with a mistake in its input: the page shows the handler's own message
@pytest.mark.parametrize("bind, args, n_outputs, message", [
    (with_models(textgen.generate_text), ("ANNA:", "GRU", 9, 0, 1.0, 50, 1, True), 3,
     "temperature must be between 0 and 5"),
    (with_models(textgen.generate_text), ("x" * 2001, "GRU", 0.8, 0, 1.0, 50, 1, True), 3, "the limit is 2,000"),
    (with_no_models(translate.translate), ("", 5, "x"), 4, "no translation model was found"),
    (with_no_models(caption.caption_image), (None, 3, "x"), 4, "no captioning model was found"),
    (with_models(inside_cell.cell_arithmetic_view), ("", "GRU", 1, 0, ""), 3, "type some text"),
    (with_models(inside_memory.input_influence_view), ("☃☃☃", 5), 2, "at least two characters"),
    (lambda models: train.inside_own, ("abc", None), 5, "train a model first"),
    (lambda models: train.run_training, ("Names", "", None, "gru", 1, 4096, 32, 0.003, 5, None), 7,
     "hidden size must be between"),
])
def test_each_tab_shows_its_mistakes_as_a_message_on_the_page(models, bind, args, n_outputs, message):
    answer = wiring.for_page(bind(models), outputs(n_outputs))(*args)
    answer = answer if isinstance(answer, tuple) else list(answer)[-1]  # a streaming handler's last update
    assert message in answer[-1] and answer[-1].startswith("⚠️")
