"""Wiring a tab's handlers to the models ``app.py`` loaded, for the event listeners in each ``build_tab``.

Imported by the tabs in ``demos/``; nothing to run here.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Mapping


def bind_models(handler: Callable, models: Mapping) -> Callable:
    """``handler`` with its keyword-only ``models`` filled in, ready for ``button.click(...)``.

    A ``functools.partial`` keeps the parameter names Gradio reads for its API page, and ``models`` (now
    with a default) never becomes an API parameter. The docstring is copied because that page shows it as
    the endpoint's description, and a bare partial would show the docstring of ``partial`` itself.
    """
    bound = partial(handler, models=models)
    bound.__doc__ = handler.__doc__
    return bound
