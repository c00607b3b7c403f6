"""demos/wiring.py: how a handler reaches the page and the API, and how a user's mistake is told to each."""
import logging

import gradio as gr
import pytest

from demos import caption, checks, inside_cell, inside_memory, textgen, train, translate, wiring
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
    raise gr.Error("temperature must be between 0 and 2, not 9")


def test_a_mistake_on_the_page_shows_one_message_and_empties_every_output():
    boxes = outputs(4)
    answer = wiring.for_page(mistake, boxes, endpoint="generate")()
    assert answer[-1] == "⚠️ temperature must be between 0 and 2, not 9"
    assert [u["value"] for u in answer[:-1]] == ["", None, "", None]  # "" where None would leave the old text


def test_each_mistake_gets_its_own_emptied_outputs():
    # Gradio consumes an update once it is sent: the second mistake must not reuse the first one's updates
    page = wiring.for_page(mistake, outputs(2))
    first, second = page(), page()
    assert all(a is not b for a, b in zip(first[:-1], second[:-1]))


def test_a_rerun_without_its_input_changes_nothing_and_says_nothing():
    boxes, calls = outputs(3), []

    def handler(image, beam):
        calls.append(image)
        return "a caption", [[1]], None

    page = wiring.for_page(wiring.rerun_when_given(handler, lambda image, *_: image is not None, boxes), boxes)
    assert page(None, 3) == (gr.skip(), gr.skip(), gr.skip(), "") and calls == []  # a model picked before any photo
    assert page("photo.jpg", 3) == ("a caption", [[1]], None, "") and calls == ["photo.jpg"]


def test_a_new_input_empties_the_results_of_the_last_one_or_shows_their_placeholder():
    with gr.Blocks() as page:
        radio, text, html = gr.Radio(["a", "b"]), gr.Textbox(), gr.HTML()
        wiring.clear_on([radio.change], [text, html], placeholders={html: "<p>it appears here</p>"})
    [event] = events_on(page, radio, "change")
    assert [u["value"] for u in event.fn()] == ["", "<p>it appears here</p>"]


def test_kept_outputs_and_state_are_left_as_they_are():
    with gr.Blocks():
        plot, session, query = gr.Plot(), gr.State(), gr.Textbox()
    answer = wiring.for_page(mistake, [plot, session, query], keep=[query])()
    assert answer[0]["value"] is None and answer[1] == gr.skip() and answer[2] == gr.skip()


def test_a_mistake_is_logged_in_one_line_without_a_traceback(caplog):
    with caplog.at_level(logging.WARNING, logger="rnn_playground"):
        wiring.for_page(mistake, outputs(1), endpoint="generate")()
    [record] = caplog.records
    assert record.getMessage() == "bad input to /generate: temperature must be between 0 and 2, not 9"
    assert record.exc_info is None


def test_the_api_still_fails_a_mistake_with_its_message_but_prints_no_traceback(caplog):
    with caplog.at_level(logging.WARNING, logger="rnn_playground"), pytest.raises(gr.Error) as raised:
        wiring.for_api(mistake, "generate")()
    assert raised.value.message == "temperature must be between 0 and 2, not 9"
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
     "temperature must be between 0 and 2"),
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


def events_on(blocks, component, event: str) -> list:
    """The events ``blocks`` runs when ``component`` fires ``event``."""
    return [fn for fn in blocks.fns.values() if (component._id, event) in fn.targets]


def test_choosing_an_example_scrolls_the_box_it_fills_into_view_in_the_browser_alone(models):
    with gr.Blocks() as page:
        textgen.build_tab(models)
    prompt = next(b for b in page.blocks.values() if isinstance(b, gr.Textbox) and b.label == "Prompt")
    [dataset] = [b for b in page.blocks.values() if isinstance(b, gr.Dataset)]
    scrolls = [fn for fn in events_on(page, dataset, "click") if fn.fn is None]
    assert len(scrolls) == 1 and repr(prompt.elem_id) in scrolls[0].js  # no server call; one scroll, to the prompt
    assert "scrollBy" in scrolls[0].js


def test_an_example_that_fills_two_inputs_scrolls_once_to_the_first():
    with gr.Blocks() as page:
        text, number, button = gr.Textbox(), gr.Number(), gr.Button()
        gr.Examples([["a", 1]], inputs=[text, number])
        wiring.wire([button.click], lambda t, n: t, [text, number], [gr.Textbox()], wiring.message_box(), api_name="x")
    [dataset] = [b for b in page.blocks.values() if isinstance(b, gr.Dataset)]
    [scroll] = [fn for fn in events_on(page, dataset, "click") if fn.fn is None]
    assert repr(text.elem_id) in scroll.js


def test_a_result_is_brought_into_view_when_its_top_is_above_the_screen_as_well_as_below():
    with gr.Blocks() as page:
        button, result = gr.Button(), gr.HTML()
        wiring.bring_into_view(button, result)
    [scroll] = events_on(page, button, "click")
    assert scroll.fn is None and "top < 0 ||" in scroll.js and "window.innerHeight" in scroll.js


@pytest.mark.parametrize("typed, note", [
    (99, "99 is above the maximum 2; used 2"),
    (-5, "-5 is below the minimum 0; used 0"),
    (2.5, "2.5 is above the maximum 2; used 2"),
    ("", "the box was empty; used 0"), (None, "the box was empty; used 0"),
    (1.5, None), (0, None), (2, None), ("abc", None),
])
def test_a_number_typed_out_of_a_sliders_range_gets_a_note_with_the_value_used(typed, note):
    assert wiring.clamped_note(typed, 0, 2) == note


def test_the_slider_itself_says_when_it_moved_a_typed_number_and_its_hint_comes_back_after():
    with gr.Blocks() as page:
        slider = gr.Slider(0, 2, value=0.8, label="Temperature", info="0 = greedy")
        wiring.say_when_clamped(slider)
    [event] = events_on(page, slider, "release")
    assert event.outputs == [slider] and event.queue is False
    assert event.fn(gr.EventData(slider, 99))["info"] == "⚠️ 99 is above the maximum 2; used 2"
    assert event.fn(gr.EventData(slider, 1.2))["info"] == "0 = greedy"
    emptied = event.fn(gr.EventData(slider, ""))  # the page would run it as 0, greedy: it goes back to its start
    assert emptied["value"] == 0.8 and emptied["info"] == "⚠️ the box was empty; back to 0.8"


def test_every_slider_of_the_text_generation_tab_says_when_it_moved_a_typed_number(models):
    with gr.Blocks() as page:
        textgen.build_tab(models)
    sliders = [b for b in page.blocks.values() if isinstance(b, gr.Slider)]
    assert len(sliders) == 4 and all(len(events_on(page, s, "release")) == 1 for s in sliders)


@pytest.mark.parametrize("value, shown", [
    (2**63 - 1, "9,223,372,036,854,775,807"), (1e20, "100,000,000,000,000,000,000"), (0.05, "0.05"),
    (1e-7, "0.0000001"), (-5, "-5"), (2.0, "2"), (1e300, "1 × 10³⁰⁰"), (12345678901234567890123, "1.23 × 10²²"),
    (99999999999999999999999, "1 × 10²³"), (-3e21, "-3 × 10²¹"), (float("nan"), "nan"),
])
def test_numbers_in_messages_are_written_out_with_thousands_separators(value, shown):
    assert checks.plain(value) == shown


def test_a_whole_number_check_compares_exactly_and_writes_its_bounds_out():
    assert checks.check_whole("seed", 2**63 - 1, 0, 2**63 - 1) == 2**63 - 1
    with pytest.raises(gr.Error) as raised:
        checks.check_whole("seed", 2**63, 0, 2**63 - 1)
    assert raised.value.message == "seed must be a whole number from 0 to 9,223,372,036,854,775,807, not " \
                                   "9,223,372,036,854,775,808"
    with pytest.raises(gr.Error, match="must be a whole number from 1 to 8, not 2.5"):
        checks.check_whole("beam size", 2.5, 1, 8)


def test_a_message_once_said_is_scrolled_into_view_after_its_event():
    with gr.Blocks() as page:
        button, result, message = gr.Button(), gr.Textbox(), wiring.message_box()
        wiring.wire([button.click], lambda: "x", [], [result], message, api_name="x")
    [scroll] = [fn for fn in page.fns.values() if fn.fn is None and fn.js and repr(message.elem_id) in fn.js]
    [page_event] = [fn for fn in events_on(page, button, "click") if message in fn.outputs]
    assert scroll.trigger_after == page_event._id  # after the handler has run, not when the button is pressed
    assert "innerText.trim()" in scroll.js and "scrollBy" in scroll.js  # only a box that says something


def test_an_nbest_column_prints_as_many_decimals_as_its_ranking_needs():
    from demos.style import ranked_round
    # -3.3897 and -3.3902 both printed -3.390: a list ranked by them looked arbitrary
    assert ranked_round([-3.38968, -3.39015, -3.41342]) == ["-3.3897", "-3.3902", "-3.4134"]
    assert ranked_round([-1.23411, -1.5, -2.0]) == ["-1.234", "-1.500", "-2.000"]  # three decimals where they suffice
    assert ranked_round([-1.0, -1.0]) == ["-1.000", "-1.000"]  # a real tie stays a tie
