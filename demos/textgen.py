"""The Text generation tab: character-level models that stream text: the classic RNN, LSTM and GRU, the
modern linear recurrences (minGRU, RG-LRU) and a Transformer for reference.

Handlers are plain functions that take the loaded models (testable without a browser); ``build_tab``
lays out the tab for the models it is given and wires them with ``api_name="generate"``. Run the whole
app with ``python app.py``.
"""
from __future__ import annotations

import html
import math
import random
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

import gradio as gr

from seqmodels import PromptError, SamplingSettings, encode_prompt, generate
from seqmodels.charlm import MAX_PROMPT_CHARS
from seqmodels.charmodels import CHAR_MODEL_TYPES
from seqmodels.checkpoint import load_named
from seqmodels.decoding import Stepper, Token
from seqmodels.workers import ModelWorkers, NoWorker, WorkerError, serving

from .checks import check_number, check_whole
from .compare import COLUMNS, comparison_rows, measured_on, measured_val_losses, training_curves
from .style import titled_plot
from .wiring import bind_models, bring_into_view, bring_into_view_after, clear_on, message_box, say_when_clamped, wire

WARM_UP_PROMPT = "ROMEO:\n"
MAX_LENGTH = 2000  # characters generated per request: ~0.6 s here, and enough to read a scene
MAX_TEMPERATURE = 2.0  # at 2 the text is already mostly noise
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer
# Send the page at most 10 updates a second, and once a generation has run a while, one update per quarter of the
# time it has taken: the text still visibly streams, and every update costs the server a pass through Gradio's
# queue (postprocessing, a diff, an event). A fixed interval made a crowded server, whose generations run slower,
# send more updates the busier it got; this way a 5 s generation sends some 15, not 50.
STREAM_INTERVAL_S = 0.1
STREAM_GROWTH = 0.25

# label shown in the UI -> checkpoint folder name
CHECKPOINTS = {"LSTM": "charlm-lstm", "GRU": "charlm-gru", "Vanilla RNN": "charlm-rnn", "minGRU": "charlm-mingru",
               "RG-LRU (Hawk)": "charlm-rglru", "Transformer": "charlm-transformer"}

WHICH_MODEL = """
- **Vanilla RNN, LSTM, GRU**: each step reads the previous state (the LSTM's and GRU's gates too), so training goes
  one character after another.
- **minGRU** (Feng et al. 2024) and **RG-LRU** (Hawk, De et al. 2024): the gates read only the layer's input (its
  last 4 positions, through a short convolution), never the state, so the update h_t = a_t h_(t-1) + b_t can run
  over a whole batch of text at once.
- **Transformer**: no recurrent state. It attends to the last 256 characters, and its key/value cache (its memory
  per stream) grows with the text up to that window, while an RNN's state stays the same size.

How to read the table (loss in nats per character, lower is better; *Hamlet* is a play none of them trained on):
- The **minGRU** has the lowest validation loss. It trained with **Muon**, which moves every direction of a weight
  matrix by the same step (with AdamW, as the others trained, it reached 1.440, just ahead of the LSTM). The **GRU**
  does best on *Hamlet*.
- *Training chars/s*: the parallel form is what a GPU needs; on a 2-core CPU the LSTM's batch already keeps both
  cores busy, so the modern RNNs do not train faster here. Each model trained for up to 26 minutes at its own speed
  (the vanilla RNN for 11), so the curves stop at different steps; *minutes to best* is when its best checkpoint was
  saved.
- *Generation chars/s*: the model alone on one thread, after 100 and after 2,000 characters of context. The speed
  under the generated text also counts the page's updates, so it reads lower, more so when others use the app.
- *State floats*: what one stream keeps after 2,000 characters. A minGRU's is larger than its width suggests: each of
  its 8 layers keeps its hidden vector and the last 3 inputs of its convolution.
"""

PLACEHOLDER = '<pre class="generated" style="color: grey">The text appears here as it is written.</pre>'
EXAMPLES = [
    ["ROMEO:\n"],
    ["First Citizen:\nBefore we proceed any further, hear me speak.\n"],
    ["To be, or not to be"],
    ["KING HENRY:\nNow, lords, "],
]


@dataclass
class TextModel:
    label: str
    folder: Path
    model: object  # CharLM, LinearRNNLM or TransformerLM, kept for the "Inside the RNN" views
    tokenizer: object
    stepper: Stepper
    val_loss: float | None
    workers: ModelWorkers | None = None  # processes that do this model's work, when they are up (seqmodels/workers.py)

    def compute(self, function, *args):
        """``function(self.model, *args)`` (one of ``seqmodels.workers.CALLS``), in a worker process if one can."""
        if self.workers is None:
            return function(self.model, *args)
        try:
            return self.workers.run(self.folder, function, partial(function, self.model), *args)
        except WorkerError as e:
            raise gr.Error(str(e)) from None

    def tokens(self, ids: list[int], settings: SamplingSettings, alternatives: int) -> Iterator[Token]:
        """``seqmodels.decoding.generate`` with this model, in a worker process if one can."""
        if self.workers is not None:
            try:
                return _reported(self.workers.generate(self.folder, ids, settings, alternatives))
            except NoWorker:
                pass
        return generate(self.stepper, ids, settings, alternatives)


def load_models(root: str | Path = "checkpoints", workers: ModelWorkers | None = None
                ) -> tuple[dict[str, TextModel], list[str]]:
    """Load every character model found under ``root``; return (models by label, problems found). With ``workers``
    (not started yet), their generation and Inside views run in those processes once they are up."""
    models = {}
    loaded, problems = load_named(root, CHECKPOINTS, CHAR_MODEL_TYPES)
    for label, (folder, model, tokenizer, config) in loaded.items():
        stepper = serving(model, tokenizer, config)  # int8, compiled where it is faster: bench/generate_speed.py
        models[label] = TextModel(label, folder, model, tokenizer, stepper, config.get("metrics", {}).get("val_loss"),
                                  workers)
        if workers is not None:
            workers.add(folder)
    # The first request used to run at half the speed of later ones. Warm every model through the handler itself,
    # as the page calls it (a prompt of several characters, temperature 0.8, colours with the likeliest
    # characters): TorchScript specialises the step on its first calls, the prompt's forward sets up its kernels
    # on its first multi-character input, and the sampling and colouring code runs for the first time; all of
    # that happens here, not in a user's request.
    for label in models:
        for _ in generate_text(WARM_UP_PROMPT, label, length=64, seed=0, models=models):
            pass
    return models, problems


# (probability, RGB) stops of the shading: orange where the character surprised the model, pale grey halfway,
# blue where it was sure. Orange against blue (Okabe and Ito's pair) stays apart for every kind of colour
# blindness, where red against green vanished for the 1 man in 12 who has one; both ends are light enough for
# black text on them.
PROBABILITY_SCALE = [(0.0, (240, 160, 60)), (0.5, (238, 238, 238)), (1.0, (140, 190, 235))]
ALTERNATIVES = 5  # the likeliest characters shown for each generated one
SHOWN = {"\n": "↵", " ": "␣", "\t": "⇥"}  # characters that would be invisible in a tooltip


def _colour(prob: float) -> str:
    """Background for a character the model gave probability ``prob``, on ``PROBABILITY_SCALE``."""
    for (p0, c0), (p1, c1) in zip(PROBABILITY_SCALE, PROBABILITY_SCALE[1:]):
        if prob <= p1:
            t = (max(prob, p0) - p0) / (p1 - p0)
            return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(c0, c1))
    return "#" + "".join(f"{c:02x}" for c in PROBABILITY_SCALE[-1][1])


def _shown(char: str) -> str:
    return SHOWN.get(char, char)


def _shade(char: str, prob: float) -> str:
    """One character on its probability's colour, without the hover text: what the page gets while text streams."""
    return f'<span style="background:{_colour(prob)}">{html.escape(char)}</span>'


def _span(char: str, prob: float, top: list[tuple[str, float]] = ()) -> str:
    """One generated character; its title (hover, or tap: the script in ``style.HEAD``) gives its probability and
    what else the model thought likely there."""
    tip = f"“{_shown(char)}”: p = {prob:.3f}"
    if top:
        tip += "\nlikeliest: " + " · ".join(f"{_shown(c)} {p:.2f}" for c, p in top)
    return f'<span style="background:{_colour(prob)}" title="{html.escape(tip)}">{html.escape(char)}</span>'


LEGEND = ('<div class="prob-legend"><span>surprised (p near 0)</span><span class="bar" style="background: '
          f'linear-gradient(to right, {_colour(0)}, {_colour(0.5)}, {_colour(1)})"></span><span>sure (p near 1)</span>'
          '</div><div class="prob-legend-hint">Tap or hover a character: its probability and the model\'s '
          f'{ALTERNATIVES} likeliest characters there.</div>')


def render_html(prompt: str, chars: list[str], probs: list[float], colour: bool, spans: list[str] | None = None) -> str:
    """The generated text as HTML, with the colour scale's legend when coloured; ``spans``: the coloured spans of
    ``chars`` if already made (while streaming, ``_shade``'s: the colours without the hover text)."""
    body = f'<span class="prompt">{html.escape(prompt)}</span>'
    if colour:
        body += "".join(spans if spans is not None else map(_span, chars, probs))
    else:
        body += html.escape("".join(chars))
    return '<pre class="generated">' + body + "</pre>" + (LEGEND if colour else "")


def generate_text(prompt: str, model_name: str, temperature: float = 0.8, top_k: float = 0, top_p: float = 1.0,
                  length: float = 500, seed: float | None = None, colour: bool = True, *,
                  models: dict[str, TextModel]) -> Iterator[tuple[str, str, str]]:
    """Stream (coloured HTML, plain text, statistics) as the model writes."""
    if model_name not in models:
        known = ", ".join(models) or "none (no checkpoint was found; see the README to train one)"
        raise gr.Error(f"unknown model {model_name!r}; available: {known}")
    prompt = "" if prompt is None else str(prompt)
    # the page's sliders keep these in range (and say so, see say_when_clamped); API callers are told
    temperature = check_number("temperature", temperature, 0, MAX_TEMPERATURE)
    top_k = check_whole("top-k", top_k, 0, 10_000)
    top_p = check_number("top-p", top_p, 0, 1)
    length = check_whole("length", length, 1, MAX_LENGTH)  # the slider's range, named in the message
    if seed is None or seed == "" or seed == -1 or (isinstance(seed, float) and math.isnan(seed)):
        seed = random.randrange(2**31)  # shown to the user, so a good sample can be reproduced
    seed = check_whole("seed", seed, 0, MAX_SEED, minus_one_means="random")
    tm = models[model_name]
    try:
        ids, notes = encode_prompt(tm.tokenizer, prompt, MAX_PROMPT_CHARS)
    except PromptError as e:
        raise gr.Error(str(e)) from None
    # each of these leaves one candidate per step, whatever the other settings say
    greedy = [s for s, on in [("temperature 0", temperature == 0), ("top-k 1", top_k == 1), ("top-p 0", top_p == 0)]
              if on]
    if greedy:
        notes.append(f"{' and '.join(greedy)}: greedy decoding, the most likely character every time")
    settings = SamplingSettings(max_new_tokens=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    shown_prompt = tm.tokenizer.decode(ids) if prompt else ""
    # Grown one token at a time, so each update costs only the join. The streamed updates carry each character's
    # colour; its hover text (probability and five likeliest) goes once, in the last update, which is the whole result.
    chars, probs, tops, shades = [], [], [], []
    nll = 0.0
    t0 = last = time.perf_counter()
    first = None  # when the first character came: before it, the model read the prompt

    def update(spans: list[str], done: bool) -> tuple[str, str, str]:
        dt = max(time.perf_counter() - t0, 1e-9)
        # "of 500" while it writes: Stop keeps the last update, which then says how far short of the length it is
        count = f"{len(chars):,}{'' if done else f' of {length:,}'} character{'' if len(chars) == 1 and done else 's'}"
        if chars and not "".join(chars).strip() and len(chars) <= 5:  # a line break alone shows as nothing: name it
            count += f" ({' '.join(map(_shown, chars))})"
        line = f"{count} in {dt:.2f} s"
        if len(chars) > 1:  # the writing speed, without the prompt's reading (a 2,000-character prompt took seconds)
            line += f" · **{(len(chars) - 1) / max(time.perf_counter() - first, 1e-9):,.0f} chars/s**"
        if len(ids) > 1 and first is not None:
            line += f" after reading the {len(ids):,}-character prompt in {first - t0:.2f} s"
        line += f" · seed {seed}"
        if chars:
            line += f" · mean surprise {nll / len(chars):.2f} nats/char"
        stats = "\n\n".join([line, *[f"Note: {n}" for n in notes]])
        return render_html(shown_prompt, chars, probs, colour, spans), shown_prompt + "".join(chars), stats

    # At once, before the model has read the prompt: the prompt, the seed and "0 of 500 characters" show while it reads
    # (the tab shows no progress overlay, see build_tab)
    yield update([], done=False)
    for token in tm.tokens(ids, settings, ALTERNATIVES if colour else 0):
        char = tm.tokenizer.chars[token.id]
        chars.append(char)
        probs.append(token.prob)
        tops.append(token.top)
        nll -= math.log(max(token.prob, 1e-12))
        now = time.perf_counter()
        first = first or now
        if now - last >= max(STREAM_INTERVAL_S, STREAM_GROWTH * (now - t0)):
            last = now
            if colour:
                shades.extend(map(_shade, chars[len(shades):], probs[len(shades):]))
            yield update(shades, done=False)
    chars_of = tm.tokenizer.chars
    yield update([_span(c, p, [(chars_of[i], q) for i, q in top]) for c, p, top in zip(chars, probs, tops)]
                 if colour else [], done=True)


def _reported(tokens: Iterator[Token]) -> Iterator[Token]:
    """``tokens``, with a worker process that died mid-request told to the person as a message."""
    try:
        yield from tokens
    except WorkerError as e:
        raise gr.Error(str(e)) from None


def build_tab(models: dict[str, TextModel], problems: list[str] | None = None) -> None:
    """Lay out the Text generation tab inside the current gr.Blocks and wire its event to ``models``."""
    gr.Markdown(
        "A **character-level language model** reads text one character at a time, keeps a summary of what "
        "it has read in its hidden state, and predicts the next character. Pick a model, give it a start, and "
        "watch it write. With *colour by probability*, each character is shaded by the probability the "
        "model gave it: blue where it was sure, orange where the character surprised it (tap or hover a character "
        "for its probability and what else the model thought likely)."
    )
    for p in problems or []:
        gr.Markdown(f"⚠️ {p}")
    # the label carries each model's validation loss, so the picker doubles as the comparison; short labels, so the
    # six fit in two rows and the Generate button stays in a laptop's first screen
    measured = measured_val_losses()
    losses = {name: measured.get(name, tm.val_loss) for name, tm in models.items()}
    choices = [(f"{name} · {losses[name]:.3f}" if losses[name] else name, name) for name in models]
    choices = choices or [("(no model found)", "(no model found)")]
    vocab = max((tm.tokenizer.vocab_size for tm in models.values()), default=65)
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", lines=4, max_length=MAX_PROMPT_CHARS,
                                placeholder="Start of the text (empty: start a new line)",
                                info=f"up to {MAX_PROMPT_CHARS:,} characters (a longer paste is cut)")
            model_name = gr.Radio(choices, value=choices[0][1], label="Model",
                                  info="validation loss in nats per character: lower = better predictions")
            with gr.Row():
                temperature = gr.Slider(0, MAX_TEMPERATURE, value=0.8, step=0.05, label="Temperature",
                                        info="0 = greedy; higher = more adventurous")
                # a hint as long as the temperature's, so that the two number boxes line up on a phone
                length = gr.Slider(1, MAX_LENGTH, value=500, step=1, label="Length",
                                   info="characters to write after the prompt")
            # folded: with them open, the Generate button was below a laptop's first screen
            with gr.Accordion("More settings: top-k, top-p, seed, colour", open=False):
                with gr.Row():
                    top_k = gr.Slider(0, vocab, value=0, step=1, label="Top-k", info="0 = off")
                    top_p = gr.Slider(0, 1, value=1.0, step=0.01, label="Top-p (nucleus)", info="1 = off")
                with gr.Row():
                    seed = gr.Number(value=-1, label="Seed", info="-1 = random; the same seed repeats a sample",
                                     precision=0)  # the handler explains a seed out of range; Gradio's check would not
                    colour = gr.Checkbox(value=True, label="Colour by probability")
            with gr.Row():
                button = gr.Button("Generate", variant="primary", scale=3)
                # the Transformer writes 500 characters in seconds here, at 2,000 characters of context far longer
                stop = gr.Button("Stop", scale=1, min_width=80)
            message = message_box()
        with gr.Column(scale=3):
            # on a laptop's first screen, and above the text, where the text written does not push them away (under
            # the Generate button they were at y=935 of 900; under the text, 500 characters took them off the screen)
            examples = gr.Examples(EXAMPLES, inputs=[prompt], label="Example prompts")
            output = gr.HTML(PLACEHOLDER, label="Generated text")
            stats = gr.Markdown()
            with gr.Accordion("Plain text", open=False):
                plain = gr.Textbox(show_label=False, lines=8, buttons=["copy"])
    with gr.Accordion("Which model? All of them side by side", open=False):
        gr.Markdown(WHICH_MODEL)
        rows, note = comparison_rows()
        # nine columns do not fit a phone: say that the table swipes (a newcomer saw two and a half columns and no more)
        gr.HTML(f'<div class="swipe-hint">swipe the table sideways for all {len(COLUMNS)} columns →</div>')
        gr.Dataframe(rows, headers=COLUMNS, interactive=False, wrap=True, label=measured_on(),
                     elem_classes=["compare-table"])
        gr.Markdown(note)
        titled_plot("**Validation loss while training** (faint: the loss on training batches)",
                    value=training_curves(models))
    inputs = [prompt, model_name, temperature, top_k, top_p, length, seed, colour]
    outputs = [output, plain, stats]
    # four at once, not the app's default two: a generation's work runs in a worker process (a core each), and most of
    # the time its slot is held it waits on Gradio passing its updates to the page (bench/load_test.py: 20 clients'
    # median fell from 2.6 s to 1.1 s)
    handler = bind_models(generate_text, models)
    # No progress overlay: the line under the text counts the characters from the first update on, and Gradio 6.31's
    # page marked a run that a new model cancelled before its first update with a red "Error" on the text (a model
    # picked within ~0.3 s of Generate: 4 of 15 tries in Chromium; 2 of 30 with the first update sent at once)
    writing = wire([button.click, prompt.submit], handler, inputs, outputs, message, api_name="generate",
                   concurrency_limit=4, show_progress="hidden")
    # an example prompt is written on at once; a second one chosen while the first is written runs after it
    # ("always_last": the default, "once", dropped it, and the first prompt's text stayed under the second prompt)
    writing += wire([examples.load_input_event.then], handler, inputs, outputs, message, api_name=None,
                    concurrency_id="generate", concurrency_limit=4, trigger_mode="always_last", show_progress="hidden")
    # Stop keeps what was written (its count, "312 of 500 characters", and speed so far in the line under it)
    stop.click(None, None, None, cancels=writing, api_name=False, queue=False)
    # another model stops the text being written and empties it: it would read as the new model's
    clear_on([model_name.change], [*outputs, message], placeholders={output: PLACEHOLDER}, cancels=writing)
    bring_into_view(button, output)
    # on a phone the text is written a screen below the example just tapped: a newcomer saw the prompt fill and
    # took the page for idle (a no-op where the text is already on the screen, as on a laptop)
    bring_into_view_after([examples.load_input_event], output)
    for slider in (temperature, length, top_k, top_p):
        say_when_clamped(slider)
