"""The Translation tab: English to French with a seq2seq model, its n-best list and its attention map.

``translate`` is a plain handler that takes the loaded models (testable without a browser): it hands the text to
``Translator.translate_passage`` (sentences, emoji and URLs are the library's business) and formats the result;
``attention_figure`` turns the attention into a Plotly figure the browser draws. ``build_tab`` lays out the tab for
the models it is given and wires them with ``api_name="translate"``. Run the whole app with ``python app.py``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go

from seqmodels import TranslationError, Translator
from seqmodels.checkpoint import load_named
from seqmodels.decoding import MAX_BEAM
from seqmodels.tokenizers import WordTokenizer
from seqmodels.translator import MAX_SOURCE_CHARS, Translation
from seqmodels.workers import ModelWorkers, serving

from .checks import check_number
from .style import NBEST_WIDTHS, colour_scale, figure, nbest_scores, plotly_text, titled_plot
from .wiring import (bind_models, bring_into_view, bring_into_view_after, clear_on, message_box, rerun_when_given,
                     say_when_clamped, wire)

# label shown in the UI -> checkpoint folder name
CHECKPOINTS = {
    "Ours: SentencePiece, biGRU, attention": "translate-en-fr",
    "PyTorch tutorial preset (word-level, GRU 128)": "translate-en-fr-tutorial",
}

# (English, the label the example list shows, French words a right translation has; None: shown to fail). Every
# one is checked with the shipped model as the tab runs it (int8, beam 5) by tests/test_shipped_models.py
EXAMPLES = [
    ("I'm very tired, so I'm going to bed early tonight.", None, ["fatigué", "coucher", "tôt", "ce soir"]),
    ("Where is the nearest station?", None, ["gare", "la plus proche"]),
    ("She speaks French very well.", None, ["parle", "très bien", "français"]),
    ("The cat is sleeping on the sofa.", None, ["chat", "dort", "canapé"]),
    ("Do you want to go to the movies tomorrow?", None, ["cinéma", "demain"]),
    ("I forgot my keys at home. Can you help me, please? Thank you 🙏",
     "A paste: three sentences and an emoji",
     ["oublié", "clés", "maison", "aider", "merci", "🙏"]),
    ("Let's go to the cinema tomorrow.",
     "A limit: “cinema”, a word it never saw", None),  # in none of the 167,130 English sentences of its data
]
# an example that shows a limit says so under its result too, as the captioning tab's do: the label is easy to miss
LIMITS = {english: label[0].lower() + label[1:] for english, label, right in EXAMPLES if right is None}
# a long sentence's map squeezes its rows (hover and zoom still read them) rather than growing down the page, as
# the picture of a long paste once did (2,362 px)
MAX_PLOT_HEIGHT = 560  # px
ROW_HEIGHT = 22  # px per French subword, below that
MENU_HEIGHT = 40  # px above the map for the sentence menu
# Tatoeba's English sentences (the shipped models' training data): the median has 6 words, 99% have 14 or fewer
TYPICAL_WORDS, LONG_SENTENCE_WORDS = 6, 15
MENU_CHARS = 22  # a sentence's start in the map's menu: the menu must fit a phone's width


@dataclass
class TranslationModel:
    label: str
    folder: Path
    translator: Translator
    metrics: dict
    unit: str = "subwords"  # what it reads and writes: SentencePiece subwords, or whole words (the tutorial's model)


def load_models(root: str | Path = "checkpoints", workers: ModelWorkers | None = None
                ) -> tuple[dict[str, TranslationModel], list[str]]:
    """Load every translation checkpoint found under ``root``; return (models by label, problems found). With
    ``workers`` (not started yet), the translations run in those processes once they are up."""
    models = {}
    loaded, problems = load_named(root, CHECKPOINTS, "seq2seq")
    for label, (folder, model, tokenizer, config) in loaded.items():
        translator = serving(model, tokenizer, config)
        unit = "words" if isinstance(translator.source_tok, WordTokenizer) else "subwords"
        if workers is not None:
            translator = workers.serve(translator, folder)
        models[label] = TranslationModel(label, folder, translator, config.get("metrics", {}), unit)
    return models, problems



def _labels(pieces: list[str], unit: str) -> list[str]:
    """The map's names for a sentence's pieces: a word model's words lose the start-of-word mark, which only tells
    SentencePiece's pieces apart (the legend explains it for subwords; on words a newcomer found it unexplained)."""
    return [plotly_text(p.lstrip("▁") if unit == "words" else p) for p in pieces]


def _map_view(sentence: Translation, total: int, unit: str) -> dict:
    """The axes and height of one sentence's map (Plotly layout keys), so the menu can switch between sentences."""
    rows, columns = len(sentence.target_pieces), len(sentence.source_pieces)
    font = 11 if max(rows, columns) <= 25 else 9
    menu = MENU_HEIGHT if total > 1 else 0
    return {"xaxis.tickvals": list(range(columns)), "xaxis.ticktext": _labels(sentence.source_pieces, unit),
            "yaxis.tickvals": list(range(rows)), "yaxis.ticktext": _labels(sentence.target_pieces, unit),
            "xaxis.tickfont.size": font, "yaxis.tickfont.size": font,
            "height": min(MAX_PLOT_HEIGHT, max(240, menu + 140 + ROW_HEIGHT * rows))}


def attention_figure(sentences: list[Translation], unit: str = "subwords") -> go.Figure:
    """The attention of each translated sentence: French subwords down, English subwords across, each row one output
    subword's weights (they sum to 1). Several sentences get a menu that shows one at a time. The browser draws it,
    and hovering a cell names its two subwords and the weight. ``unit``: what the model reads, "subwords" or
    "words" (the tutorial's model), for the axes' titles."""
    maps = []
    for i, sentence in enumerate(sentences):
        weights = sentence.attention.numpy()  # (target, source), float32: Plotly sends numpy arrays as binary
        # the axes are numbered (a subword can occur twice in a sentence), so each cell carries its pair's names
        source = _labels(sentence.source_pieces, unit)  # once, not once a row
        pairs = [[f"{t} ← {s}" for s in source] for t in _labels(sentence.target_pieces, unit)]
        maps.append({
            "type": "heatmap", "z": weights, "text": pairs, "zmin": 0, "zmax": 1, "colorscale": colour_scale("Viridis"),
            "visible": i == 0, "name": f"sentence {i + 1}",
            "hovertemplate": "French ← English: <b>%{text}</b><br>weight %{z:.2f}<extra></extra>",
            # thin, three ticks, no title (hover says "weight"), lying under the map at the right: standing beside
            # it, it took 45 of a phone's 326 px, and the English labels of a 24-subword sentence overlapped
            "colorbar": {"orientation": "h", "thickness": 8, "len": 120, "lenmode": "pixels", "x": 1, "xanchor": "right",
                         "yref": "container", "y": 0, "yanchor": "bottom", "tickvals": [0, 0.5, 1], "ypad": 4}})
    views = [_map_view(s, len(sentences), unit) for s in sentences]
    layout = {
        # room at the right for the upright modebar, which would otherwise lie over the map's last columns
        "margin": {"l": 8, "r": 32, "t": (MENU_HEIGHT if len(sentences) > 1 else 0) + 8, "b": 8},
        # level labels where they fit (a laptop, a short sentence), upright where they would overlap (a phone gives a
        # column 8-10 px); at -60 degrees they needed twice a column's width, and always upright read badly on a laptop
        "xaxis": {"title": {"text": f"English {unit}"}, "autotickangles": [0, -90], "automargin": True},
        "yaxis": {"title": {"text": f"French {unit}"}, "autorange": "reversed", "automargin": True},
        "plot_bgcolor": "white",
        # upright at the right, and only the picture and reset buttons (dragging zooms): lying along the top it
        # covered the sentence menu on a phone
        "modebar": {"orientation": "v", "remove": ["zoom", "pan", "zoomIn", "zoomOut", "autoScale", "select", "lasso"]}}
    if sentences:
        _set_paths(layout, views[0])
    if len(sentences) > 1:
        buttons = [{"label": plotly_text(f"{i + 1} of {len(sentences)}: {_shortened(s.source)}"),
                    "method": "update",
                    "args": [{"visible": [j == i for j in range(len(sentences))]}, views[i]]}
                   for i, s in enumerate(sentences)]
        layout["updatemenus"] = [{"buttons": buttons, "direction": "down", "x": 0, "xanchor": "left", "y": 1,
                                  "yanchor": "bottom", "pad": {"b": 8}, "showactive": True, "font": {"size": 12}}]
    return figure(maps, layout)


def _set_paths(layout: dict, view: dict) -> None:
    """Set each "xaxis.tickfont.size" of ``view`` at its place in ``layout``'s nested dicts: the menu's buttons hand
    Plotly.js such paths, which change only what they name, while a figure's own layout is nested."""
    for path, value in view.items():
        *parents, key = path.split(".")
        node = layout
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value


def _shortened(text: str) -> str:
    return text if len(text) <= MENU_CHARS else text[:MENU_CHARS - 1].rstrip() + "…"


def translate(text: str, beam_size: float = 5, model_name: str | None = None, *,
              models: dict[str, TranslationModel]):
    """Translate English text, one sentence at a time: (French, n-best rows, attention figure, notes)."""
    if not models:
        raise gr.Error("no translation model was found; see the README to train one")
    if model_name is None:
        model_name = next(iter(models))
    if model_name not in models:
        raise gr.Error(f"unknown model {model_name!r}; available: {', '.join(models)}")
    beam = int(check_number("beam size", beam_size, 1, MAX_BEAM))
    t0 = time.perf_counter()
    try:
        result = models[model_name].translator.translate_passage("" if text is None else str(text), beam_size=beam)
    except TranslationError as e:
        raise gr.Error(str(e)) from None
    ms = (time.perf_counter() - t0) * 1000
    rows = [[k, i + 1, c.text, *scores] for k, sentence in enumerate(result.sentences, 1)
            for i, (c, scores) in enumerate(zip(sentence.candidates, nbest_scores(sentence.candidates)))]
    # the table's header says score = log-prob / length penalty; greedy search applies neither it nor the stopping
    # cost, and the same French at beam 5 showed another log-prob and score with nothing to say why
    search = ("greedy search (no length penalty or stopping cost: score = log-prob)" if beam == 1
              else f"beam search, beam {beam}")
    n = len(result.sentences)
    pieces = sum(len(s.source_pieces) for s in result.sentences)
    unit = models[model_name].unit
    long = [k for k, sentence in enumerate(result.sentences, 1) if len(sentence.source.split()) > LONG_SENTENCE_WORDS]
    if long:  # a newcomer's 29-word sentence lost its grandmother, village and river, and nothing said why
        which = "This sentence" if n == 1 else f"Sentence{'s' if len(long) > 1 else ''} {', '.join(map(str, long))}"
        long_note = (f"{which} {'has' if len(long) == 1 else 'have'} over {LONG_SENTENCE_WORDS} words; the models learned "
                     f"from Tatoeba's short sentences ({TYPICAL_WORDS} words is typical), so expect mistakes and gaps.")
    limit = [f"this example shows {LIMITS[text]}"] if text in LIMITS else []
    notes = [*result.notes, *([long_note] if long else []), *limit]
    notes = "\n\n".join([f"{ms:.0f} ms · {search} · {n} sentence{'s' if n > 1 else ''} · {pieces} source {unit}",
                         # the notes show as Markdown, which took "<unk>" for a tag and dropped the rest of the note
                         *[f"Note: {note}".replace("<", "&lt;") for note in notes]])
    return result.text, rows, attention_figure(result.sentences, unit), notes


EXPLAIN = f"""
An **encoder-decoder** (sequence-to-sequence) network translates in two halves. The encoder, a
bidirectional GRU, reads the English sentence in subword pieces, forwards and backwards, and keeps one
vector per piece. The decoder, another GRU, writes French one piece at a time; before each piece it
**attends**: it scores every English piece against its own state and takes a weighted average of
them (the weights are the rows of the map below). Bright cells show where it looked while writing
each word. **Beam search** keeps the best few partial translations at each step instead of only the
most likely word, and ranks finished ones by log-probability divided by a length penalty; ending costs
more while English pieces are still unread, so it does not stop half-way. The table lists them. The
model learnt from short Tatoeba sentences, so it does best on everyday sentences (a lone word or
greeting is rare there: "Hello!" comes out right, "Goodbye!" wrong); longer text (up to
{MAX_SOURCE_CHARS:,} characters) is translated one sentence at a time, and emoji, symbols and web addresses are
kept as written, since the model never saw any.
"""


def build_tab(models: dict[str, TranslationModel], problems: list[str] | None = None) -> None:
    """Lay out the Translation tab inside the current gr.Blocks and wire its event to ``models``."""
    gr.Markdown(EXPLAIN)
    for p in problems or []:
        gr.Markdown(f"⚠️ {p}")
    # the BLEU a checkpoint records is measured with greedy decoding on validation sentences; said so, or it reads as
    # if the model decodes greedily here, beside a beam of 5
    choices = [(f"{name} (validation BLEU {m.metrics['val_bleu']:.1f}, scored with greedy search)"
                if "val_bleu" in m.metrics else name, name)
               for name, m in models.items()] or [("(no model found)", "(no model found)")]
    with gr.Row():
        with gr.Column(scale=2):
            # no max_length: the browser would cut a long paste without a word; the handler cuts it at a
            # sentence end and says so
            text = gr.Textbox(label="English", lines=3, placeholder="Type an English sentence, or paste a few",
                              info=f"up to {MAX_SOURCE_CHARS:,} characters; longer text is cut, and the note says where")
            # the button under the box, then the examples (each translated when chosen), then the settings, as in
            # Image captioning: below the attention map a newcomer met an empty box and no examples on a laptop's
            # first screen (y=1480)
            button = gr.Button("Translate", variant="primary")
            message = message_box()
            examples = gr.Examples([[english] for english, _, _ in EXAMPLES], inputs=[text], label="Examples",
                                   example_labels=[label or english for english, label, _ in EXAMPLES])
            with gr.Row():
                beam = gr.Slider(1, MAX_BEAM, value=5, step=1, label="Beam size", info="1 = greedy")
                say_when_clamped(beam)  # beam 0 typed runs as 1: say so
                # min_width: a phone puts it under the slider (beside it, its labels wrapped to 7 lines)
                model_name = gr.Radio(choices, value=choices[0][1], label="Model",
                                      info="BLEU (0 to 100): overlap with human translations", min_width=280)
        with gr.Column(scale=3):
            french = gr.Textbox(label="French", lines=3, interactive=False, buttons=["copy"])
            notes = gr.Markdown()
            # short headers and wrapped text: five columns must fit beside the input on a laptop, and a phone must
            # show each candidate whole (cut, they looked alike)
            nbest = gr.Dataframe(headers=["#", "rank", "candidate", "score", "log-prob"],
                                 label="n-best list per sentence (#: the sentence's number in your text; "
                                       "log-prob: less a cost for stopping before the whole sentence is read; "
                                       "score: log-prob / length penalty, the ranking)",
                                 interactive=False, max_height=320, wrap=True,
                                 column_widths=NBEST_WIDTHS["translate"], elem_classes=["nbest", "nbest-translate"])
    plot = titled_plot("**Attention: where the decoder looked for each French subword** (word, for the tutorial's "
                       "model). Hover a cell for its weight; for a paste, the menu above the map picks the sentence. "
                       "The low bar **▁** marks the start of a word: SentencePiece splits rare words into pieces, and "
                       "a piece without one continues the word before it.")
    inputs, outputs = [text, beam, model_name], [french, nbest, plot, notes]
    handler = bind_models(translate, models)
    # an example is translated when chosen, and another model retranslates the text: the French of the last
    # sentence must not stay beside a new one; typing empties it until Translate is pressed
    wire([button.click, text.submit], handler, inputs, outputs, message, api_name="translate")
    wire([examples.load_input_event.then], handler, inputs, outputs, message, api_name=None,
         concurrency_id="translate", trigger_mode="always_last")  # a second example chosen meanwhile runs after
    wire([model_name.change], rerun_when_given(handler, lambda english, *_: bool(english.strip()), outputs), inputs,
         outputs, message, api_name=None, concurrency_id="translate")
    clear_on([text.input], [*outputs, message])
    bring_into_view(button, french)
    bring_into_view_after([examples.load_input_event], french)  # on a phone the French is a screen below the examples
