"""The Train tab: a person trains a character model in the page and watches it learn.

Pick a corpus (or paste or upload a text), a cell and its size, press Train: the loss curves grow, a sample
from a fixed prompt appears at every evaluation, Stop keeps what was learned. Then the model writes
(streaming, as in Text generation), opens up (hidden states and gates, as in Inside the RNN) and downloads
as a checkpoint folder that ``python -m train.charlm sample --checkpoint FOLDER`` loads.

The training itself is ``seqmodels.live.LiveRun``: the one training loop in a child process with one
torch thread. Each page's run and model live in its session state and are deleted with it; the settings
(never a pasted text) live in the page's URL, so a link shares a setup (``demos.train_form``). ``api_name="train"``
streams.
"""
from __future__ import annotations

import html
import math
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import pandas as pd

from seqmodels.charmodels import CHAR_CELLS
from seqmodels.checkpoint import CheckpointError, load_model
from seqmodels.fastgen import fast_stepper
from seqmodels.live import LIMITS, MAX_PARAMETERS, MAX_SECONDS, MAX_TEXT_CHARS, LiveError, LiveRun, LiveSettings

from . import inside, textgen
from .corpora import (CORPORA, CorpusError, corpus_summary, default_corpus, fetch_shakespeare_in_background, load_corpus,
                      read_upload)
from .style import titled_plot
from .textgen import TextModel
from .train_form import DEFAULTS, OWN_TEXT, WRITE_ADDRESS, form_query, settings_from, settings_query, size_note
from .wiring import bring_into_view, clear_on, message_box, say_when_clamped, wire

MAX_RUNS = int(os.environ.get("RNN_PLAYGROUND_MAX_TRAININGS", "1"))  # trainings at once; the rest wait in the queue
UPDATE_EVERY_S = 0.4  # the page gets a new curve this often while the run streams records
RUNS_ROOT = Path(tempfile.gettempdir()) / "rnn-playground-live"
OWN_LABEL = "Your model"
START_STATUS = "Press **Train** to start."
CURVE_COLOURS = {"training batch": "#7aa6d6", "validation": "#d95f02"}  # light blue behind a strong orange


@dataclass
class Session:
    """One page's training: its run while it trains, its model after, and the folder that holds both."""
    folder: Path = field(default_factory=lambda: RUNS_ROOT / f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
    run: LiveRun | None = None
    model: TextModel | None = None
    # Train pressed, its run not started yet: with one training slot it may wait in the queue for another page's run
    waiting: bool = False
    cancelled: bool = False  # Stop pressed while it waited: the run ends as soon as the queue lets it start
    # the status line before Train was pressed, and whether the press's run has ended as a run should (finished,
    # stopped or cancelled): one that ended on a mistake must not leave "Starting…" on the page for good
    status_before: str = ""
    ended: bool = False
    trained_on: str = ""  # the text the page's model learned: its corpus, or "your text"

    def close(self) -> None:
        if self.run is not None:
            self.run.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def remove_stale_runs() -> None:
    """Delete the folders of runs whose server process is gone (a restart leaves no files behind)."""
    for path in RUNS_ROOT.iterdir() if RUNS_ROOT.is_dir() else []:
        pid = path.name.split("-")[0]
        try:
            os.kill(int(pid), 0)  # signal 0: does that process still exist?
        except (ValueError, ProcessLookupError):
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


def training_text(corpus: str, own_text: str | None, upload: str | None) -> tuple[str, str]:
    """(text, prompt for the samples) of the chosen corpus, pasted text or upload."""
    try:
        if corpus == OWN_TEXT:
            text = read_upload(upload) if upload else (own_text or "")
            return text, "\n" if "\n" in text else text[:1]
        return load_corpus(corpus), CORPORA[corpus][1]
    except CorpusError as e:
        raise gr.Error(str(e)) from None


def curves(records: list[dict]) -> pd.DataFrame:
    """Training and validation loss against seconds, one row per record, for the LinePlot."""
    rows = [{"seconds": r["elapsed_s"], "loss": r["loss"], "curve": "training batch"} for r in records if r["split"] == "train"]
    rows += [{"seconds": r["elapsed_s"], "loss": r["val_loss"], "curve": "validation"} for r in records if r["split"] == "val"]
    # Both curves from the first update on (a missing one as an empty NaN row): the browser's plot fixes its
    # legend at the first data it draws. Float columns: it reads an object column as categories, one tick per value.
    rows += [{"seconds": 0.0, "loss": math.nan, "curve": c} for c in CURVE_COLOURS if c not in {r["curve"] for r in rows}]
    return pd.DataFrame(rows, columns=["seconds", "loss", "curve"]).astype({"seconds": float, "loss": float})


def samples_html(records: list[dict], keep: int = 5) -> str:
    """Up to ``keep`` samples, newest first, each with its step and validation loss: the first (the untrained
    model's noise), the newest, and others spread evenly between, so that the page keeps the text's way from noise to
    words (the newest four alone lost its middle once a run had more evaluations)."""
    rows = [r for r in records if r["split"] == "val" and "sample" in r]
    if len(rows) > keep:
        rows = [rows[i] for i in sorted({round(k * (len(rows) - 1) / (keep - 1)) for k in range(keep)})]
    parts = [f'<div class="live-sample"><b>step {r["step"]:,}, {r["elapsed_s"]:.0f} s, validation loss '
             f'{r["val_loss"]:.3f}</b><pre class="generated">{html.escape(r["sample"])}</pre></div>'
             for r in rows[::-1]]
    return "".join(parts) or '<p style="color: grey">Samples appear here at every evaluation.</p>'


def status_line(records: list[dict], settings: LiveSettings, finished: str = "") -> str:
    train_rows = [r for r in records if r["split"] == "train"]
    val_rows = [r for r in records if r["split"] == "val"]
    start = next((r for r in records if r["split"] == "start"), None)
    parts = []
    if start:
        parts.append(f"{start['parameters']:,} parameters, {start['vocab_size']} distinct characters")
    if train_rows:
        last = train_rows[-1]
        # a finished run's line ends "finished after N steps": its last logged step would say a slightly smaller number
        parts.append((f"step {last['step']:,} · " if not finished else "")
                     + f"**{last['tokens_per_s']:,} chars/s** · training loss {last['loss']:.3f}")
    if val_rows:
        # the step of the validation figure: before the first evaluation after the start it is the untrained model's
        parts.append(f"validation loss **{val_rows[-1]['val_loss']:.3f}** at step {val_rows[-1]['step']:,} "
                     f"(best {min(r['val_loss'] for r in val_rows):.3f})")
    if finished:
        parts.append(finished)
    else:
        # the run's own clock (its records' elapsed_s), not the page's: loading torch in the child takes seconds
        clock = max((r["elapsed_s"] for r in records if "elapsed_s" in r), default=0.0)
        left = max(0.0, settings.seconds - clock)
        parts.append(f"{left:.0f} s left" if train_rows else "starting (a fresh process loads torch: a few seconds)…")
    return " · ".join(parts)


def run_training(corpus: str, own_text: str, upload, cell: str, layers: float, hidden: float, seq_len: float,
                 lr: float, seconds: float, session: Session | None):
    """Train a character model on the chosen text; stream its curves, status, samples, download and a text for the views."""
    session = session or Session()
    if session.run is not None and not session.run.finished:
        raise gr.Error("a training is already running in this page: wait for it, or press Stop first")
    cancelled, session.waiting, session.cancelled = session.cancelled, False, False
    if cancelled:
        session.ended = True
        yield gr.update(), "Cancelled before it started: nothing was trained.", gr.update(), session, gr.update(), \
            gr.update(), gr.update()
        return
    try:
        text, prompt = training_text(corpus, own_text, upload)
        settings = settings_from(cell, layers, hidden, seq_len, lr, seconds, prompt)
        run = LiveRun(settings, text, session.folder / "run")  # the checkpoint goes to run.folder, .../run/model
    except (gr.Error, LiveError) as e:
        # the panel keeps the last model's curves and samples (see build_tab): say whose, or they read as the newly
        # picked text's (a newcomer saw Shakespeare's samples beside "Python code" after a refused run)
        last = f". The curves and samples on the page are still your last model's, trained on {session.trained_on}"
        raise gr.Error(getattr(e, "message", str(e)) + (last if session.model is not None else "")) from None
    query = settings_query(corpus, settings)
    if session.run is not None:  # a new run replaces the page's old model
        session.model = None
    session.run = run
    records: list[dict] = []
    last_yield = 0.0
    try:
        while not run.finished:
            records += run.poll(timeout=0.1)
            if time.time() - last_yield >= UPDATE_EVERY_S or run.finished:
                last_yield = time.time()
                yield curves(records), status_line(records, settings), samples_html(records), session, \
                    gr.update(), query, gr.update()
    finally:
        if not run.finished:  # the page went away mid-run: free the core
            run.kill()
    end = records[-1] if records else {"split": "error", "message": "no record came back"}
    if end["split"] == "error":
        raise gr.Error(end["message"])
    trained_on = "your text" if corpus == OWN_TEXT else corpus
    ended = "stopped" if end.get("stopped") else "finished"
    finished = f"{ended} after {end['steps']:,} steps, {end['elapsed_s']:.0f} s, on {trained_on}"
    try:
        model, tokenizer, config = load_model(run.folder)
    except CheckpointError as e:
        raise gr.Error(f"the run saved no model: {e}") from None
    session.model = TextModel(OWN_LABEL, run.folder, model, tokenizer, fast_stepper(model), config["metrics"].get("val_loss"))
    session.trained_on = trained_on
    archive = shutil.make_archive(str(session.folder / f"rnn-playground-{settings.cell}"), "zip", run.folder)
    session.ended = True
    yield (curves(records), status_line(records, settings, finished), samples_html(records), session,
           gr.update(value=archive, visible=True), query, piece_to_read(text))


def piece_to_read(text: str, length: int = 300) -> str:
    """About ``length`` characters from the last tenth of ``text``, the views' text after a run (the ROMEO example
    means nothing to a model of names): from the start of a line, up to the end of a word, when the text has them."""
    start = len(text) * 9 // 10
    line = text.find("\n", start, start + length // 3)
    start = line + 1 if line != -1 else start
    piece = text[start:start + length]
    cut = max(piece.rfind(" "), piece.rfind("\n"))
    piece = piece[:cut] if cut > length // 2 and start + length < len(text) else piece
    return piece.lstrip("\n") or piece


def stop_training(session: Session | None) -> tuple[str, Session | None, gr.Button]:
    """Stop this page's training after its current step, keeping its best weights, or cancel one waiting to start."""
    # returns (status, session, Stop button); the one-line docstring is the API page's description
    idle = session is None or session.run is None or session.run.finished
    if idle and session is not None and session.waiting:  # the queue would start it later all the same
        session.waiting, session.cancelled = False, True
        # Train stays off until the queue reaches the cancelled run and ends it: a click before that would queue
        # a second run behind it
        return ("Cancelled: this run will not start. **Train** comes back when the run ahead of it ends.", session,
                gr.Button(interactive=False))
    if idle:
        gr.Info("Nothing is training in this page.")
        return "", session, gr.Button()
    session.run.stop()
    return "Stopping: one last evaluation, then the model is yours.", session, gr.Button()


def buttons_while_training(session: Session | None = None,
                           status: str = "") -> tuple[gr.Button, gr.Button, str, Session]:
    """(Train, Stop, status, session) from the click until the run ends: Train off, so a second click cannot queue a
    second run; Stop on, and it also cancels a run still waiting in the queue for another page's to end. ``status``:
    the line it replaces, which ``buttons_when_idle`` puts back if the press ends on a mistake."""
    session = session or Session()
    if session.run is None or session.run.finished:
        session.waiting = True
        session.status_before, session.ended = status, False
    status = ("Starting… With one training at a time on this machine, a run waits for another page's to end; "
              "its place in the queue shows below.")
    return gr.Button(interactive=False), gr.Button(interactive=True, variant="stop"), status, session


def buttons_when_idle(session: Session | None = None) -> tuple[gr.Button, gr.Button, str]:
    """(Train, Stop, status) when no run is going: Stop greyed out, since there is nothing to stop. A press that
    ended on a mistake (its message is under the Train button) gets back the status it replaced, or, if its run had
    begun, says that the run failed; a run that ended as it should keeps its own line."""
    if session is None or session.ended:
        status = gr.skip()
    elif session.run is not None and not session.waiting and session.model is None:
        status = "The run failed: its message is under the **Train** button. Press **Train** to try again."
    elif session.status_before in (None, "", START_STATUS):  # "press Train" beside the message of a press: say why
        status = "Nothing trained yet: the message under the **Train** button says why."
    else:
        status = session.status_before
    return gr.Button(interactive=True), gr.Button(interactive=False, variant="secondary"), status


def _own_models(session: Session | None) -> dict[str, TextModel]:
    if session is None or session.model is None:
        raise gr.Error("train a model first: press Train and wait for it to finish (or press Stop)")
    return {OWN_LABEL: session.model}


def generate_own(prompt: str, temperature: float, top_k: float, top_p: float, length: float, seed: float | None,
                 session: Session | None):
    """Stream text from this page's trained model, with the Text generation tab's controls and handler."""
    yield from textgen.generate_text(prompt, OWN_LABEL, temperature, top_k, top_p, length, seed, True,
                                     models=_own_models(session))


def inside_own(text: str, session: Session | None):
    """Hidden states and gates of this page's model while it reads ``text`` (layer 1)."""
    models = _own_models(session)
    heat, unit_html, caption, _ = inside.hidden_states(text, OWN_LABEL, 1, None, "position in line", models=models)
    gate_fig, gate_summary = inside.gates(text, OWN_LABEL, 1, models=models)
    return heat, unit_html, caption, gate_fig, gate_summary


EXPLAIN = """Train a character-level model here and watch it learn: the loss curves grow as it trains, and at every
evaluation it writes a sample from the same start, so you see the text go from noise to words. Press **Stop**
at any time: the model keeps what it learned. Then make it write, look inside it, or download it.
"""

# beside the status: above the settings it pushed the Train button below a laptop's first screen (y=1025 of 900)
LIMITS_NOTE = f"""Limits on this shared machine: up to {MAX_SECONDS} s of training, {MAX_PARAMETERS:,} parameters and
{MAX_TEXT_CHARS:,} characters of text; {MAX_RUNS} training at a time (others wait in the queue, with their place shown).
The settings are in the page's address: copy it to share this setup.
"""


# a newcomer asked why validation sat below training on Python code, having learned that the gap means overfitting
CURVES_NOTE = """*Training batch*: the loss on each batch as the model learns from it, every batch a random window that
starts with an empty memory. *Validation*: the last tenth of the text, never trained on, read straight through with
the memory carried along, so it can sit below training; measured at each evaluation (step 0 first, then beside each
sample below) and joined by straight lines, so it shows from the second on. Memorising shows as validation rising
while training falls.
"""


def build_tab() -> tuple[list, gr.State]:
    """Lay out the Train tab; return (what ``train_form.fill_from_query`` fills: the form, then its query; the session)."""
    remove_stale_runs()
    fetch_shakespeare_in_background()
    gr.Markdown(EXPLAIN)
    session = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)
    with gr.Row():
        with gr.Column(scale=9):
            corpus = gr.Radio([*CORPORA, OWN_TEXT], value=default_corpus(), label="Text to learn",
                              info=corpus_summary())
            own_text = gr.Textbox(label=f"Your text (up to {MAX_TEXT_CHARS:,} characters)", lines=4, visible=False,
                                  max_length=MAX_TEXT_CHARS)
            upload = gr.File(label="…or upload a UTF-8 .txt file", file_types=[".txt"], type="filepath", visible=False)
            cell = gr.Dropdown([(v[1], k) for k, v in CHAR_CELLS.items()], value=DEFAULTS.cell, label="Cell")
            with gr.Row():
                # short labels: on a phone "Hidden size" beside its number box pushed the box a line down
                layers = gr.Slider(*LIMITS["layers"], value=DEFAULTS.layers, step=1, label="Layers")
                hidden = gr.Slider(*LIMITS["hidden_size"], value=DEFAULTS.hidden_size, step=16, label="Units")
            size = gr.Markdown(size_note(default_corpus(), "", None, DEFAULTS.cell, DEFAULTS.layers, DEFAULTS.hidden_size),
                               elem_classes="size-note")
            with gr.Row():
                seq_len = gr.Slider(*LIMITS["seq_len"], value=DEFAULTS.seq_len, step=16, label="Sequence length",
                                    info="the gradient's reach")
                # hints of the same length keep the two number boxes level
                lr = gr.Slider(*LIMITS["learning_rate"], value=DEFAULTS.learning_rate, step=1e-4, label="Learning rate",
                               info="too high diverges")
            seconds = gr.Slider(*LIMITS["seconds"], value=DEFAULTS.seconds, step=5, label="Time limit (seconds)")
            with gr.Row():
                train_button = gr.Button("Train", variant="primary")
                stop_button = gr.Button("Stop", variant="secondary", interactive=False)  # on while a run goes
            message = message_box()
        with gr.Column(scale=11):
            gr.Markdown(LIMITS_NOTE)
            status = gr.Markdown(START_STATUS)
            # no initial data: a plot drawn first from an empty table never draws its lines (Gradio 6.31); the
            # unit is in the label, since a y title as long as "loss (nats/char)" was cut off at the plot's left edge
            plot = gr.LinePlot(None, x="seconds", y="loss", color="curve", color_map=CURVE_COLOURS,
                               label="Loss (nats per character)", x_title="seconds of training",
                               y_title="loss", color_title="loss on", elem_id="live-loss",
                               x_lim=[0, None])  # from the start of training, not from the first batch's 0.1 s
            gr.Markdown(CURVES_NOTE, elem_classes="curves-note")
            samples = gr.HTML(samples_html([]), elem_id="live-samples")
            download = gr.DownloadButton("Download the model (.zip)", visible=False)
    with gr.Accordion("Use your model: make it write, look inside", open=False):
        prompt = gr.Textbox(label="Prompt", lines=2, placeholder="Start of the text (empty: start a new line)")
        with gr.Row():
            temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature", info="0 = greedy")
            length = gr.Slider(1, textgen.MAX_LENGTH, value=300, step=1, label="Length", info="characters to write")
            top_k = gr.Slider(0, 256, value=0, step=1, label="Top-k", info="0 = off")
            top_p = gr.Slider(0, 1, value=1.0, step=0.01, label="Top-p (nucleus)", info="1 = off")
            seed = gr.Number(value=-1, label="Seed", info="-1 = random", precision=0)
        write_button = gr.Button("Write", variant="primary")
        write_message = message_box()
        written = gr.HTML()
        write_stats = gr.Markdown()
        written_plain = gr.Textbox(visible=False)
        inside_text = gr.Textbox(value=inside.EXAMPLE_TEXT, label=f"Text to read, up to {inside.MAX_CHARS} characters",
                                 lines=3, max_length=inside.MAX_CHARS)
        inside_button = gr.Button("Show hidden states and gates")
        inside_message = message_box()
        heat = titled_plot("**Hidden state over time** (layer 1)")
        unit_text = gr.HTML()
        heat_caption = gr.Markdown()
        gate_plot = titled_plot("**Gates over time** (layer 1)")
        gate_summary = gr.Markdown()
    query = gr.Textbox(visible=False)

    corpus.change(lambda c: [gr.update(visible=c == OWN_TEXT)] * 2, corpus, [own_text, upload], api_name=False)
    # .change: a shared link gets its size too; preprocess=False: a number typed past a range is no 500 (form_query's)
    gr.on([c.change for c in (corpus, own_text, upload, cell, layers, hidden)], size_note,
          [corpus, own_text, upload, cell, layers, hidden], size, api_name=False,
          queue=False, show_progress="hidden", preprocess=False)
    # a mistake in the settings keeps the whole panel of the model trained before: curves, status, samples, download,
    # address, text to read (emptying only the curves and samples left a status and a download of an unshown model)
    [run] = wire([train_button.click(buttons_while_training, [session, status],
                                     [train_button, stop_button, status, session], api_name=False, queue=False).then],
                 run_training, [corpus, own_text, upload, cell, layers, hidden, seq_len, lr, seconds, session],
                 [plot, status, samples, session, download, query, inside_text], message,
                 keep=[plot, status, samples, download, query, inside_text], api_name="train", concurrency_limit=MAX_RUNS,
                 concurrency_id="live-training")
    run.then(buttons_when_idle, session, [train_button, stop_button, status], api_name=False, queue=False)
    # the settings go into the address bar as the person changes them, so the page's URL shares the setup at once;
    # .input, not .change: filling the form from a shared link must not write an address the visitor never chose
    form = [corpus, cell, layers, hidden, seq_len, lr, seconds]
    for setting in form:
        # the address is written right after the new query arrives (.then): the hidden box's .change alone missed some
        # preprocess=False: a number typed past a slider's range reaches form_query as typed, not a 500 from Gradio
        setting.input(form_query, form, query, api_name=False, queue=False, trigger_mode="always_last",
                      preprocess=False).then(
            None, query, None, js=WRITE_ADDRESS, api_name=False, queue=False)
    query.change(None, query, None, js=WRITE_ADDRESS)  # after a run, which fills in the query too
    bring_into_view(train_button, status)
    for slider in (layers, hidden, seq_len, lr, seconds, temperature, length, top_k, top_p):
        say_when_clamped(slider)
    stop_button.click(stop_training, session, [status, session, stop_button], api_name="stop_training",
                      concurrency_limit=None)
    wire([write_button.click], generate_own, [prompt, temperature, top_k, top_p, length, seed, session],
         [written, written_plain, write_stats], write_message, api_name="generate_own")
    bring_into_view(write_button, written)
    wire([inside_button.click], inside_own, [inside_text, session],
         [heat, unit_text, heat_caption, gate_plot, gate_summary], inside_message, api_name="inside_own")
    bring_into_view(inside_button, heat)
    clear_on([train_button.click], [write_message, inside_message])  # "train a model first" goes when one trains
    return [*form, query], session
