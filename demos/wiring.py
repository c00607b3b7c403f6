"""Wiring a tab's handlers to the models ``app.py`` loaded and to the page, for the event listeners in each
``build_tab``: ``bind_models`` fills in the models, ``wire`` connects a handler to its button and its API endpoint
and shows a user's mistake where they are looking, ``bring_into_view`` scrolls to a button's result,
``bring_chosen_examples_into_view`` to the box an example filled, and ``say_when_clamped`` tells a person that a slider
moved the number they typed into its range.

Imported by the tabs in ``demos/``; nothing to run here.
"""
from __future__ import annotations

import functools
import inspect
import logging
from functools import partial
from typing import Callable, Mapping, Sequence

import gradio as gr
from gradio.context import get_blocks_context

from .checks import plain

log = logging.getLogger("rnn_playground")  # a user's mistake: one line (Python's last-resort handler prints it)


def bind_models(handler: Callable, models: Mapping) -> Callable:
    """``handler`` with its keyword-only ``models`` filled in, ready for ``button.click(...)``.

    A ``functools.partial`` keeps the parameter names Gradio reads for its API page, and ``models`` (now
    with a default) never becomes an API parameter. The docstring is copied because that page shows it as
    the endpoint's description, and a bare partial would show the docstring of ``partial`` itself.
    """
    bound = partial(handler, models=models)
    bound.__doc__ = handler.__doc__
    return bound


# Runs in the page: if the element's top lies off the screen, below it (a phone, where the output column stacks under
# the inputs) or above it (a laptop's page scrolled down to reach the button; long text then grew out of sight), scroll
# it to ``margin`` px from the top: its start, not its end, is what a person reads first. Gradio 6.31's own
# scroll_to_output did not scroll here (measured: scrollY unchanged after a caption on a 390 px page).
_SCROLL_JS = """() => {
  const element = document.getElementById(%(id)r);
  if (!element) return;
  const top = element.getBoundingClientRect().top;
  if (top < 0 || top > window.innerHeight - %(margin)d) window.scrollBy({top: top - %(margin)d, behavior: "smooth"});
}"""
# The same for a message box, once its event has run, if it now says something: the button scrolled the page to the
# result, and a mistake's message under the button could be off the screen while the result emptied (measured: a
# too-long seed's message at y=984 of a 900-px screen, a binary file's at 1118). It waits a moment: the event's end
# reaches this code before the page has drawn the message (without the wait the seed's message stayed off the
# screen; with it, it scrolled to y=674, measured in Chromium). It puts the message at the bottom of the screen, so
# that the input it is about stays above it: the button had already scrolled the page to its (now empty) result,
# and an empty text box, or the photo box that the message asked to fill, had left the screen (measured: 488 px).
_SCROLL_IF_SAID_JS = """() => setTimeout(() => {
  const element = document.getElementById(%(id)r);
  if (!element || !element.innerText.trim()) return;
  const box = element.getBoundingClientRect();
  window.scrollBy({top: Math.min(box.bottom - (window.innerHeight - 16), box.top - 16), behavior: "smooth"});
}, 200)"""
RESULT_MARGIN = 120  # px above a result: on a phone the button that made it stays in view there
INPUT_MARGIN = 16  # px above an input an example filled: its label, and from there down as much as fits


def _scroll_on(listener: Callable, element, margin: int, js: str = _SCROLL_JS) -> None:
    """On ``listener`` (``button.click``...), scroll ``element`` into view in the browser alone: no server call, no
    API endpoint. ``element`` gets an ``elem_id`` if it has none."""
    if not element.elem_id:
        element.elem_id = f"scroll-target-{element._id}"
    listener(None, None, None, js=js % {"id": element.elem_id, "margin": margin}, api_name=False, queue=False)


def bring_into_view(button, result) -> None:
    """When ``button`` is pressed, scroll ``result`` (the output it fills) into view if its top is off the screen."""
    _scroll_on(button.click, result, RESULT_MARGIN)


# The same, a moment later: an example's own scroll (to the input it fills, on the Dataset's click) can start after
# an event that follows the example's filling of that input, and a smooth scroll cancels the one before it
# (measured: a text generation example left the page on the prompt, its text being written a screen below).
_SCROLL_LATER_JS = "() => setTimeout(%s, 300)" % _SCROLL_JS


def bring_into_view_after(events: Sequence, result) -> None:
    """After each of ``events`` (those ``wire`` returns, or an example's ``load_input_event``) has run, scroll
    ``result`` into view if its top is off the screen: for results that come without a press (a photo captioned
    as it arrives, an example's text written as it is chosen), on a phone far below."""
    for event in events:
        _scroll_on(event.then, result, RESULT_MARGIN, _SCROLL_LATER_JS)


def bring_chosen_examples_into_view(inputs: Sequence) -> None:
    """When an example of a ``gr.Examples`` that fills one of ``inputs`` is chosen, scroll the first input it fills
    into view (its button below it, as far as the screen allows). ``wire`` calls it for every tab.

    Examples sit at the bottom of a tab, and on a phone the box they fill is far above the screen: without this a
    tap changed nothing the person could see. The Examples are found by the click event that fills an input, since
    ``gr.Examples`` keeps its dataset to itself; they must exist by then (``gr.Examples(...)`` before ``wire``).
    """
    context = get_blocks_context()
    if context is None:
        return
    targets = {}  # dataset -> the input to show; one each, or two scrolls would fight
    for fn in context.fns.values():
        filled = [c for c in inputs if any(c is o for o in fn.outputs)]
        for block_id, event in fn.targets:
            block = context.blocks.get(block_id)
            if filled and event == "click" and isinstance(block, gr.Dataset):
                targets.setdefault(block, filled[0])
    for dataset, target in targets.items():
        _scroll_on(dataset.click, target, INPUT_MARGIN)


def clamped_note(typed, low: float, high: float) -> str | None:
    """What to tell a person whose number ``typed`` the page moved into [low, high], or None if it was in range.

    A slider's number box takes any number, but Gradio's page keeps the value within the slider's range without a
    word (temperature 99 ran as 2, an emptied Length box as 1); this says so, with the value used.
    """
    if typed is None or (isinstance(typed, str) and not typed.strip()):  # an emptied box runs as the minimum
        return f"the box was empty; used {plain(low)}"
    try:
        typed = float(typed)
    except (TypeError, ValueError):
        return None
    if typed > high:
        return f"{plain(typed)} is above the maximum {plain(high)}; used {plain(high)}"
    if typed < low:
        return f"{plain(typed)} is below the minimum {plain(low)}; used {plain(low)}"
    return None


def say_when_clamped(slider: gr.Slider) -> None:
    """When a number typed into ``slider``'s box is out of its range, say on the slider itself which value is used;
    the slider's own hint comes back once a value in range is chosen.

    Hooked on ``release``: the page sends that event with the number as typed, then moves the number into range. An
    emptied box, which the page runs as the minimum (a Length of 1: one character written), goes back to the
    slider's starting value instead.
    """
    low, high, info, start = slider.minimum, slider.maximum, slider.info, slider.value

    def noted(event: gr.EventData) -> dict:  # a real function: Gradio fills in gr.EventData by its type hint
        typed = event._data
        if typed is None or (isinstance(typed, str) and not typed.strip()):
            return gr.update(value=start, info=f"⚠️ the box was empty; back to {plain(start)}")
        note = clamped_note(typed, low, high)
        return gr.update(info=f"⚠️ {note}" if note else info)

    slider.release(noted, None, slider, api_name=False, queue=False, show_progress="hidden")


def message_box() -> gr.Markdown:
    """An empty line, placed right under a button, where ``wire`` explains a mistake in the person's input."""
    return gr.Markdown(elem_classes="user-message")


def _as_tuple(result, n: int) -> tuple:
    return result if n > 1 else (result,)


def _logged(endpoint: str, error: gr.Error) -> str:
    """Log a user's mistake as one line (no traceback: nothing is broken) and return its message."""
    log.warning("bad input to /%s: %s", endpoint, error.message)
    return error.message


def _empty(component) -> object:
    """The value that empties ``component`` in the page: None leaves a text box's old text on screen (Gradio 6.31)."""
    return gr.update(value="" if isinstance(component, (gr.Textbox, gr.HTML, gr.Markdown)) else None)


def for_page(handler: Callable, outputs: Sequence, keep: Sequence = (), endpoint: str = "") -> Callable:
    """``handler`` as the page calls it: its outputs and then the message box's text.

    A ``gr.Error`` from it (the person's mistake) becomes a message in the box and empties the other outputs, so
    no result of earlier input stays under it; Gradio would instead mark every output "Error", leave the old
    results there and log a traceback. Outputs in ``keep`` and gr.State values (a trained model) stay as they are.
    Any other exception is a fault of the app: it propagates, and Gradio logs its traceback.
    """
    n = len(outputs)

    def shown(error: gr.Error) -> tuple:
        # new update dicts for every answer: Gradio consumes them (a dict sent twice emptied nothing the second time)
        cleared = (gr.skip() if o in keep or isinstance(o, gr.State) else _empty(o) for o in outputs)
        return (*cleared, f"⚠️ {_logged(endpoint, error)}")

    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def page(*args, **kwargs):
            try:
                for result in handler(*args, **kwargs):
                    yield (*_as_tuple(result, n), "")
            except gr.Error as e:
                yield shown(e)
    else:
        @functools.wraps(handler)
        def page(*args, **kwargs):
            try:
                return (*_as_tuple(handler(*args, **kwargs), n), "")
            except gr.Error as e:
                return shown(e)
    return page


def for_api(handler: Callable, endpoint: str = "") -> Callable:
    """``handler`` as API clients call it: a mistake still fails the call with its message (gradio_client raises
    AppError), logged in one line instead of a traceback."""
    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def api(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except gr.Error as e:
                raise gr.Error(_logged(endpoint, e), print_exception=False) from None
    else:
        @functools.wraps(handler)
        def api(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except gr.Error as e:
                raise gr.Error(_logged(endpoint, e), print_exception=False) from None
    return api


def wire(listeners: Sequence[Callable], handler: Callable, inputs: list, outputs: list, message: gr.Markdown, *,
         api_name: str | None, keep: Sequence = (), **kw) -> list:
    """Run ``handler`` on each of ``listeners`` (``button.click``, ``box.submit``, ``event.then``...) for the page,
    and publish it as the API endpoint ``api_name``; return the page's events, for ``.then``.

    The page and the API need a mistake told differently: the page in ``message`` (see ``for_page``), an API
    client as an error. So the endpoint is a second event, on a button nobody sees, running the same handler on
    the same components (its name, parameters and description are the handler's); both events share one
    concurrency group, so together they keep the event's limit. Choosing one of the tab's examples for these inputs
    brings the input it fills into view (``bring_chosen_examples_into_view``), and a message, once said, is scrolled
    into view too. ``api_name`` None: the page alone
    (a handler that only serves the page, as ``rerun_when_given`` makes); give it the endpoint's ``concurrency_id``.
    """
    if api_name is not None:
        kw.setdefault("concurrency_id", api_name)
        bring_chosen_examples_into_view(inputs)
        gr.Button(visible=False).click(for_api(handler, api_name), inputs, outputs, api_name=api_name, **kw)
    page = for_page(handler, outputs, keep, api_name or kw.get("concurrency_id", ""))
    events = [listen(page, inputs, [*outputs, message], api_name=False, **kw) for listen in listeners]
    for event in events:  # a message said is a message seen
        _scroll_on(event.then, message, RESULT_MARGIN, _SCROLL_IF_SAID_JS)
    return events


def rerun_when_given(handler: Callable, given: Callable[..., bool], outputs: Sequence) -> Callable:
    """``handler`` for events that are not a request (a model picked, a photo uploaded): it runs when
    ``given(*inputs)`` says its input is there, and otherwise changes none of ``outputs`` and says nothing, where
    a press of the button would have asked for the input."""
    @functools.wraps(handler)
    def rerun(*args, **kwargs):
        if given(*args):
            return handler(*args, **kwargs)
        skipped = tuple(gr.skip() for _ in outputs)
        return skipped if len(skipped) > 1 else skipped[0]
    return rerun


def clear_on(listeners: Sequence[Callable], outputs: Sequence, placeholders: Mapping | None = None,
             cancels: Sequence = ()) -> None:
    """Empty ``outputs`` on each of ``listeners`` (a model picked, the text edited): a result must not stay on the
    page beside an input it was not made from, where a person would take it for the new input's (a caption of the
    beach beside a cup of coffee). ``placeholders``: what some outputs show when empty instead of nothing;
    ``cancels``: events that make those outputs and stop then (a text still streaming would paint over the emptied
    box)."""
    placeholders = placeholders or {}

    def cleared():
        updates = tuple(gr.update(value=placeholders[o]) if o in placeholders else _empty(o) for o in outputs)
        return updates if len(updates) > 1 else updates[0]

    for listen in listeners:
        if cancels:  # stop them, then empty: emptied in the same event, a stream's last updates still landed on
            # the emptied box (3 of 6 model changes mid-stream, measured in the browser; in a .then, 0 of 12)
            listen = listen(None, None, None, api_name=False, queue=False, cancels=list(cancels)).then
        listen(cleared, None, list(outputs), api_name=False, queue=False, show_progress="hidden")
