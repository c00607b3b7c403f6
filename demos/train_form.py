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

from .corpora import CORPORA, CorpusError, corpus_summary, default_corpus, load_corpus, shakespeare_at_hand

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


TYPICAL_VOCAB = 65  # Tiny Shakespeare's characters: the count for a text not at hand yet (a corpus to download)
_corpus_characters: dict[str, int] = {}  # built-in corpus -> its distinct characters, counted once


def text_characters(corpus: str, own_text: str | None, upload) -> int | None:
    """How many distinct characters the text to learn has (its vocabulary), or None where it is not at hand yet: a
    corpus to download, or an upload (read when training starts; its path is the page's word here, not Gradio's)."""
    try:
        if corpus == OWN_TEXT:
            return None if upload else len(set(own_text or "")) or None
        if corpus == "Tiny Shakespeare" and not shakespeare_at_hand():  # counting it must not start a download
            return None
        if corpus not in _corpus_characters:
            _corpus_characters[corpus] = len(set(load_corpus(corpus)))
        return _corpus_characters[corpus]
    except CorpusError:
        return None


def size_note(corpus: str, own_text: str | None, upload, cell: str, layers: float, hidden: float) -> str:
    """The model's size as the form stands, said under the sliders: 3 layers of 512 units, which the sliders allow,
    were refused as over the cap only after a press of Train. The embedding and output layers grow with the text's
    characters (a count for 65 said 268,161 for Python code's 160, which trained 298,656), so they are counted."""
    chars = text_characters(corpus, own_text, upload)
    try:
        settings = LiveSettings(cell=str(cell), layers=_number(layers), hidden_size=_number(hidden))
        n = settings.parameter_count(chars or TYPICAL_VOCAB)
    except (LiveError, gr.Error):  # a number being typed: the note waits for a valid one
        return gr.skip()
    text = f"the text's {chars}" if chars else f"a text of {TYPICAL_VOCAB}"
    if n > MAX_PARAMETERS:
        return (f"⚠️ About {n:,} parameters for {text} distinct characters: over this machine's cap of "
                f"{MAX_PARAMETERS:,}. Use fewer layers or units.")
    return f"About {n:,} parameters for {text} distinct characters (the cap is {MAX_PARAMETERS:,})."


WRITE_ADDRESS = "(q) => { if (q) history.replaceState(null, '', '?' + q); }"  # the page's address, in the browser


def settings_query(corpus: str, s: LiveSettings) -> str:
    """The URL query that reopens this setup (a built-in corpus by name, never a pasted text)."""
    values = [corpus if corpus in CORPORA else OWN_TEXT, s.cell, s.layers, s.hidden_size, s.seq_len,
              s.learning_rate, s.seconds]
    return urlencode(dict(zip(QUERY_KEYS, map(str, values))))


def form_query(corpus: str, cell: str, layers: float, hidden: float, seq_len: float, lr: float, seconds: float):
    """The URL query for the form as it stands, so the address shares a setup before any training; a number typed
    past a slider's range goes in as the slider uses it (the address kept 30 s while the page said "used 5"), and a
    setting that is not valid yet (a number half typed) leaves the address as it was."""
    numbers = [_in_range(v, key) for v, key in zip([layers, hidden, seq_len, lr, seconds], NUMBER_LIMITS)]
    try:
        return settings_query(corpus, settings_from(cell, *numbers))
    except gr.Error:
        return gr.skip()


NUMBER_LIMITS = ["layers", "hidden_size", "seq_len", "learning_rate", "seconds"]  # LIMITS' keys, in the query's order


def _in_range(value, limit: str):
    """``value`` moved into the slider's range, as the page moves a number typed past it; anything else as it is."""
    lo, hi = LIMITS[limit]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return float(min(max(number, lo), hi)) if math.isfinite(number) else value


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
    for key, limit in zip(["layers", "hidden", "seq_len", "lr", "seconds"], NUMBER_LIMITS):
        if key not in query:
            continue
        try:
            number = float(query[key])
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            notes.append(f"{key} {query[key]!r} is not a number, so {values[key]:g}")
            continue
        if (used := _in_range(number, limit)) != number:
            lo, hi = LIMITS[limit]
            notes.append(f"{key} {query[key]} is outside {lo:g} to {hi:g}, so {used:g}")
        values[key] = int(used) if used.is_integer() else used
    address = gr.skip()
    if notes:
        gr.Warning("Some of this link's settings could not be used as they were: " + "; ".join(notes) + ".")
        # the mended setup goes into the address, or copying it passes the bad values on
        address = form_query(*values.values())
    opened = any(k in query for k in QUERY_KEYS)
    # the corpora's line is written again as the page opens: by then start-up's download of Tiny Shakespeare has
    # succeeded or failed, and the line says which
    values["corpus"] = gr.update(value=values["corpus"], info=corpus_summary())
    return [*values.values(), address, gr.Tabs(selected="train") if opened else gr.Tabs()]
