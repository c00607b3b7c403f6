"""Wiring a tab's handlers to the models ``app.py`` loaded and to the page, for the event listeners in each
``build_tab``: ``bind_models`` fills in the models, ``wire`` connects a handler to its button and its API endpoint
and shows a user's mistake where they are looking, ``bring_into_view`` scrolls a phone to a button's result.

Imported by the tabs in ``demos/``; nothing to run here.
"""
from __future__ import annotations

import functools
import inspect
import logging
from functools import partial
from typing import Callable, Mapping, Sequence

import gradio as gr

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


# Runs in the page when a button is pressed: if the result's place is off the bottom of the screen (a phone, where
# the output column stacks under the inputs), scroll it up to just under the button. Gradio 6.31's own
# scroll_to_output did not scroll here (measured: scrollY unchanged after a caption on a 390 px page).
_SCROLL_JS = """() => {
  const result = document.getElementById(%r);
  if (!result) return;
  const top = result.getBoundingClientRect().top;
  if (top > window.innerHeight - 120) window.scrollBy({top: top - 120, behavior: "smooth"});
}"""


def bring_into_view(button, result) -> None:
    """When ``button`` is pressed, scroll ``result`` (the output it fills) into view if it lies below the screen.

    The browser does it alone (no server call, no API endpoint); ``result`` gets an ``elem_id`` if it has none.
    """
    if not result.elem_id:
        result.elem_id = f"result-{result._id}"
    button.click(None, None, None, js=_SCROLL_JS % result.elem_id, api_name=False, queue=False)


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
         api_name: str, keep: Sequence = (), **kw) -> list:
    """Run ``handler`` on each of ``listeners`` (``button.click``, ``box.submit``, ``event.then``...) for the page,
    and publish it as the API endpoint ``api_name``; return the page's events, for ``.then``.

    The page and the API need a mistake told differently: the page in ``message`` (see ``for_page``), an API
    client as an error. So the endpoint is a second event, on a button nobody sees, running the same handler on
    the same components (its name, parameters and description are the handler's); both events share one
    concurrency group, so together they keep the event's limit.
    """
    kw.setdefault("concurrency_id", api_name)
    gr.Button(visible=False).click(for_api(handler, api_name), inputs, outputs, api_name=api_name, **kw)
    page = for_page(handler, outputs, keep, api_name)
    return [listen(page, inputs, [*outputs, message], api_name=False, **kw) for listen in listeners]
