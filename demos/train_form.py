"""The Train tab's form: its values as ``LiveSettings``, and as the page's address, so that a link shares a setup.

The settings (never a pasted text) go into the URL's query as a person changes them; a page opened from such a
link gets its form filled (``fill_from_query``, on the app's load) and the Train tab opened.
"""
from __future__ import annotations

import math
from urllib.parse import parse_qs, urlencode

import gradio as gr

from seqmodels.charmodels import CHAR_CELLS
from seqmodels.live import LIMITS, MAX_PARAMETERS, LiveError, LiveSettings

from .corpora import CORPORA, corpus_summary, default_corpus

OWN_TEXT = "My own text"
DEFAULTS = LiveSettings()
QUERY_KEYS = ["corpus", "cell", "layers", "hidden", "seq_len", "lr", "seconds"]


def settings_from(cell, layers, hidden, seq_len, lr, seconds, prompt: str = "\n") -> LiveSettings:
    """The form's values as a run's settings; a gr.Error says which value is wrong and why."""
    try:
        return LiveSettings(cell=str(cell), layers=_number(layers), hidden_size=_number(hidden), seq_len=_number(seq_len),
                            learning_rate=_number(lr), seconds=_number(seconds), prompt=prompt)
    except LiveError as e:
        raise gr.Error(str(e)) from None


def _number(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"every setting must be a number, not {value!r}") from None
    return int(value) if value.is_integer() else value


TYPICAL_VOCAB = 65  # Tiny Shakespeare's characters; the others' differ by a few thousand parameters at most


def size_note(cell: str, layers: float, hidden: float) -> str:
    """The model's size as the sliders stand, said under them: 3 layers of 512 units, which the sliders allow, were
    refused as over the cap only after a press of Train."""
    try:
        n = LiveSettings(cell=str(cell), layers=_number(layers), hidden_size=_number(hidden)).parameter_count(TYPICAL_VOCAB)
    except (LiveError, gr.Error):  # a number being typed: the note waits for a valid one
        return gr.skip()
    if n > MAX_PARAMETERS:
        return (f"⚠️ About {n:,} parameters: over this machine's cap of {MAX_PARAMETERS:,}. Use fewer layers or "
                "units.")
    return f"About {n:,} parameters (the cap here is {MAX_PARAMETERS:,})."


WRITE_ADDRESS = "(q) => { if (q) history.replaceState(null, '', '?' + q); }"  # the page's address, in the browser


def settings_query(corpus: str, s: LiveSettings) -> str:
    """The URL query that reopens this setup (a built-in corpus by name, never a pasted text)."""
    values = [corpus if corpus in CORPORA else OWN_TEXT, s.cell, s.layers, s.hidden_size, s.seq_len,
              s.learning_rate, s.seconds]
    return urlencode(dict(zip(QUERY_KEYS, map(str, values))))


def form_query(corpus: str, cell: str, layers: float, hidden: float, seq_len: float, lr: float, seconds: float):
    """The URL query for the form as it stands, so the address shares a setup before any training; a setting
    that is not valid yet (a number being typed) leaves the address as it was."""
    try:
        return settings_query(corpus, settings_from(cell, layers, hidden, seq_len, lr, seconds))
    except gr.Error:
        return gr.skip()


def fill_from_query(request: gr.Request):
    """The form's values from the page URL's query: a number out of range brought into it, a value that cannot be
    used replaced by the default, and each such change said in a notice (a link that asked for 99 layers opened
    with the defaults and no word)."""
    query = {k: v[-1] for k, v in parse_qs(str(request.query_params) if request else "").items()}
    values = dict(corpus=default_corpus(), cell=DEFAULTS.cell, layers=DEFAULTS.layers, hidden=DEFAULTS.hidden_size,
                  seq_len=DEFAULTS.seq_len, lr=DEFAULTS.learning_rate, seconds=DEFAULTS.seconds)
    notes = []
    for key, known in [("corpus", [*CORPORA, OWN_TEXT]), ("cell", list(CHAR_CELLS))]:
        if query.get(key) in known:
            values[key] = query[key]
        elif key in query:
            notes.append(f"{key} {query[key]!r} is not one of {', '.join(known)}, so {values[key]}")
    for key, limit in zip(["layers", "hidden", "seq_len", "lr", "seconds"],
                          ["layers", "hidden_size", "seq_len", "learning_rate", "seconds"]):
        if key not in query:
            continue
        try:
            number = float(query[key])
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            notes.append(f"{key} {query[key]!r} is not a number, so {values[key]:g}")
            continue
        lo, hi = LIMITS[limit]
        if not lo <= number <= hi:
            number = float(min(max(number, lo), hi))
            notes.append(f"{key} {query[key]} is outside {lo:g} to {hi:g}, so {number:g}")
        values[key] = int(number) if number.is_integer() else number
    if notes:
        gr.Warning("Some of this link's settings could not be used as they were: " + "; ".join(notes) + ".")
    opened = any(k in query for k in QUERY_KEYS)
    # the corpora's line is written again as the page opens: by then start-up's download of Tiny Shakespeare has
    # succeeded or failed, and the line says which
    values["corpus"] = gr.update(value=values["corpus"], info=corpus_summary())
    return [*values.values(), gr.Tabs(selected="train") if opened else gr.Tabs()]
