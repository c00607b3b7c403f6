"""Input checks every tab shares: a value from a slider or number field, or a gr.Error that says what is wrong.

Gradio's own range check only covers its UI; API callers can send anything (text, NaN, a huge number), so
each handler runs its numbers through these. Imported by the tabs in ``demos/``; nothing to run here.
"""
from __future__ import annotations

import math
from decimal import Decimal

import gradio as gr

PLAIN_LIMIT = 10**21  # beyond this a number written out in full is longer than the message around it
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def unset(value) -> bool:
    """Whether a number field asks the app to choose: empty, NaN or negative (Gradio's Number can't be empty)."""
    return value is None or value == "" or (isinstance(value, (int, float)) and (math.isnan(value) or value < 0))


def plain(value: float) -> str:
    """``value`` as a person writes it: 9,223,372,036,854,775,807 and 0.05, never 9.22337e+18 or 5e-02."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if abs(value) >= PLAIN_LIMIT:  # 1.2 × 10²², as a person writes it (a limit of its own, "more than 10²¹", read
        # as a second range beside the one the message gave)
        # rounded first, so 99,999,999,999,999,991,611,392 reads 1 × 10²³, not 10 × 10²²
        mantissa, exponent = f"{Decimal(int(value)):.2e}".split("e")
        return f"{float(mantissa):g} × 10{str(int(exponent)).translate(SUPERSCRIPT)}"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return format(Decimal(repr(float(value))), ",f")


def check_number(name: str, value, low: float, high: float) -> float:
    """``value`` as a float in [low, high], or a gr.Error naming the field: the message the user sees."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, not {value!r}") from None
    if not low <= value <= high or math.isnan(value):
        raise gr.Error(f"{name} must be between {plain(low)} and {plain(high)}, not {plain(value)}")
    return value


def check_whole(name: str, value, low: int, high: int, *, minus_one_means: str | None = None) -> int:
    """``value`` as an int in [low, high], or a gr.Error naming the field and the numbers it takes.

    ``minus_one_means``: what -1 asks for ("random" for a seed); the caller handles -1, the message names it. Ints
    are compared as ints: a float would round 2**63 - 1 up to 2**63 and let one number too many through.
    """
    wanted = f"{name} must be {f'-1 ({minus_one_means}) or ' if minus_one_means else ''}a whole number from " \
             f"{low:,} to {high:,}"
    try:
        number = value if isinstance(value, int) else float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{wanted}, not {value!r}") from None
    if isinstance(number, float) and not number.is_integer():  # also NaN and infinity
        raise gr.Error(f"{wanted}, not {plain(number)}")
    if not low <= number <= high:
        raise gr.Error(f"{wanted}, not {plain(number)}")
    return int(number)


class FittedSlider(gr.Slider):
    """gr.Slider whose value outside its range is brought to the nearest end, where gr.Slider rejects it.

    The character pickers of "Inside the RNN" get a new maximum whenever the text changes. An event that leaves the
    browser before that update arrives carries the old position (31 for a text now 30 characters long), and gr.Slider
    then fails before the handler runs: a red "Value 31 is greater than maximum value 29." and a traceback in the
    log. The nearest character is what the update would have moved the slider to anyway.
    """

    is_template = True  # rendered by the frontend as a plain Slider

    def preprocess(self, payload):
        if isinstance(payload, (int, float)) and math.isfinite(payload):
            payload = min(max(payload, self.minimum), self.maximum)
        return super().preprocess(payload)
