"""Input checks every tab shares: a value from a slider or number field, or a gr.Error that says what is wrong.

Gradio's own range check only covers its UI; API callers can send anything (text, NaN, a huge number), so
each handler runs its numbers through these. Imported by the tabs in ``demos/``; nothing to run here.
"""
from __future__ import annotations

import math

import gradio as gr


def unset(value) -> bool:
    """Whether a number field asks the app to choose: empty, NaN or negative (Gradio's Number can't be empty)."""
    return value is None or value == "" or (isinstance(value, (int, float)) and (math.isnan(value) or value < 0))


def check_number(name: str, value, low: float, high: float) -> float:
    """``value`` as a float in [low, high], or a gr.Error naming the field: the message the user sees."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, not {value!r}") from None
    if not low <= value <= high or math.isnan(value):
        raise gr.Error(f"{name} must be between {low:g} and {high:g}, not {value:g}")
    return value
