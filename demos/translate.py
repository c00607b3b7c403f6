"""The Translation tab: English to French with a seq2seq model, its n-best list and its attention map.

``translate`` is a plain handler that takes the loaded models (testable without a browser); ``build_tab``
lays out the tab for the models it is given and wires them with ``api_name="translate"``. Run the whole
app with ``python app.py``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from matplotlib.figure import Figure  # not pyplot: figures made in handler threads must not share state

from seqmodels import TranslationError, Translator
from seqmodels.checkpoint import load_named
from seqmodels.decoding import MAX_BEAM
from seqmodels.translator import MAX_SOURCE_CHARS

from .checks import check_number
from .wiring import bind_models

# label shown in the UI -> checkpoint folder name
CHECKPOINTS = {
    "Ours: SentencePiece, biGRU, attention": "translate-en-fr",
    "PyTorch tutorial preset (word-level, GRU 128)": "translate-en-fr-tutorial",
}

EXAMPLES = [
    ["I'm very tired, so I'm going to bed early tonight."],
    ["Where is the nearest train station?"],
    ["She has been learning French for three years."],
    ["The cat is sleeping on the sofa."],
    ["Do you want to come with us to the cinema tomorrow?"],
]


@dataclass
class TranslationModel:
    label: str
    folder: Path
    translator: Translator
    metrics: dict


def load_models(root: str | Path = "checkpoints") -> tuple[dict[str, TranslationModel], list[str]]:
    """Load every translation checkpoint found under ``root``; return (models by label, problems found)."""
    models = {}
    loaded, problems = load_named(root, CHECKPOINTS, "seq2seq")
    for label, (folder, model, tokenizer, config) in loaded.items():
        translator = Translator(model, tokenizer, quantize=True)  # int8: see bench/translate_speed.py
        translator.translate(["Hello."], beam_size=2)  # the first call pays for lazy initialisation, not a user
        models[label] = TranslationModel(label, folder, translator, config.get("metrics", {}))
    return models, problems


def attention_figure(source_pieces: list[str], target_pieces: list[str], attention) -> Figure:
    """Target subwords down, source subwords across; each row is one output word's attention (sums to 1)."""
    S, T = len(source_pieces), len(target_pieces)
    fig = Figure(figsize=(min(2.5 + 0.42 * S, 14), min(1.6 + 0.32 * T, 14)), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(attention.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(S), source_pieces, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(T), target_pieces, fontsize=9)
    ax.set_xlabel("source (English subwords)")
    ax.set_ylabel("output (French subwords)")
    fig.colorbar(im, ax=ax, shrink=0.8, label="attention weight")
    return fig


def translate(text: str, beam_size: float = 5, model_name: str | None = None, *,
              models: dict[str, TranslationModel]):
    """Translate one English text: (French, n-best rows, attention figure, notes)."""
    if not models:
        raise gr.Error("no translation model was found; see the README to train one")
    if model_name is None:
        model_name = next(iter(models))
    if model_name not in models:
        raise gr.Error(f"unknown model {model_name!r}; available: {', '.join(models)}")
    beam = int(check_number("beam size", beam_size, 1, MAX_BEAM))
    t0 = time.perf_counter()
    try:
        result = models[model_name].translator.translate(["" if text is None else str(text)], beam_size=beam)[0]
    except TranslationError as e:
        raise gr.Error(str(e)) from None
    ms = (time.perf_counter() - t0) * 1000
    rows = [[i + 1, c.text, round(c.normalized, 3), round(c.score, 3)] for i, c in enumerate(result.candidates)]
    search = "greedy search" if beam == 1 else f"beam search, beam {beam}"
    notes = "\n\n".join([f"{ms:.0f} ms · {search} · {len(result.source_pieces)} source subwords",
                         *[f"Note: {n}" for n in result.notes]])
    return result.text, rows, attention_figure(result.source_pieces, result.target_pieces, result.attention), notes


EXPLAIN = f"""
An **encoder-decoder** (sequence-to-sequence) network translates in two halves. The encoder, a
bidirectional GRU, reads the English sentence in subword pieces, forwards and backwards, and keeps one
vector per piece. The decoder, another GRU, writes French one piece at a time; before each piece it
**attends**: it scores every English piece against its own state and takes a weighted average of
them (the weights are the rows of the map below). Bright cells show where it looked while writing
each word. **Beam search** keeps the best few partial translations at each step instead of only the
most likely word, and ranks finished ones by log-probability divided by a length penalty; the table
lists them. Up to {MAX_SOURCE_CHARS} characters are translated; the model learnt from short Tatoeba
sentences, so it does best on everyday sentences.
"""


def build_tab(models: dict[str, TranslationModel], problems: list[str] | None = None) -> None:
    """Lay out the Translation tab inside the current gr.Blocks and wire its event to ``models``."""
    gr.Markdown(EXPLAIN)
    for p in problems or []:
        gr.Markdown(f"⚠️ {p}")
    choices = [(f"{name} (val BLEU {m.metrics['val_bleu']:.1f}, greedy)" if "val_bleu" in m.metrics else name, name)
               for name, m in models.items()] or [("(no model found)", "(no model found)")]
    with gr.Row():
        with gr.Column(scale=2):
            text = gr.Textbox(label="English", lines=3, max_length=MAX_SOURCE_CHARS * 2,
                              placeholder="Type an English sentence")
            with gr.Row():
                beam = gr.Slider(1, MAX_BEAM, value=5, step=1, label="Beam size", info="1 = greedy")
                model_name = gr.Radio(choices, value=choices[0][1], label="Model")
            button = gr.Button("Translate", variant="primary")
            gr.Examples(EXAMPLES, inputs=[text], label="Examples")
        with gr.Column(scale=3):
            french = gr.Textbox(label="French", lines=3, interactive=False, buttons=["copy"])
            notes = gr.Markdown()
            nbest = gr.Dataframe(headers=["rank", "candidate", "score (length-normalised)", "log-probability"],
                                 label="n-best list", interactive=False)
    plot = gr.Plot(label="Attention: where the decoder looked for each French subword")
    inputs, outputs = [text, beam, model_name], [french, nbest, plot, notes]
    handler = bind_models(translate, models)
    button.click(handler, inputs, outputs, api_name="translate")
    text.submit(handler, inputs, outputs, api_name=False)
