"""The Image captioning tab: a caption for a photo, its n-best list, and where the model looked for each word.

``caption_image`` is a plain handler (testable without a browser); ``build_tab`` lays out the tab and
wires it with ``api_name="caption"``. Run the whole app with ``python app.py``.
"""
from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go
import torch
from PIL import Image

from seqmodels.checkpoint import load_named
from seqmodels.decoding import MAX_BEAM
from seqmodels.image_captioner import REPEAT_PENALTY, CaptionError, ImageCaptioner
from seqmodels.images import MAX_PIXELS, fit_square
from seqmodels.workers import ModelWorkers, serving

from .checks import check_number
from .style import NBEST_WIDTHS, colour_scale, figure, nbest_scores, plotly_text, titled_plot
from .wiring import (bind_models, bring_into_view, bring_into_view_after, clear_on, message_box, rerun_when_given,
                     say_when_clamped, wire)

# the picker's order: the pretrained encoder first (the better captioner), the from-scratch one to compare
CHECKPOINTS = {"EfficientNet-Lite0 encoder (ImageNet-pretrained)": "caption-flickr8k",
               "Small CNN encoder (trained from scratch)": "caption-flickr8k-scratch"}
EXAMPLES_DIR = Path(__file__).resolve().parent / "assets" / "examples"
# (photo, label, what a right caption says: one word of each set; None: an example that shows a limit, and its label
# says so). Public-domain and CC0 photos (CREDITS.md); none of sport in action could be had offline. The shipped-model
# test checks each right caption, as the tab makes it (int8, beam 3)
EXAMPLES = [
    (EXAMPLES_DIR / "children_on_beach.jpg", "children at the sea",
     [{"people", "children", "kids", "boys", "girls", "boy", "girl"}, {"water", "beach", "ocean", "sand", "waves"}]),
    (EXAMPLES_DIR / "man_with_camera.jpg", "a man filming", [{"man"}, {"camera"}]),
    (EXAMPLES_DIR / "dog_and_bicycle.jpg", "a dog on a porch: it sees the dog, and invents what it does", [{"dog"}]),
    (EXAMPLES_DIR / "dune_hikers.jpg", "a limit: hikers too small in the frame", None),
    (EXAMPLES_DIR / "coffee.jpg", "a limit: a cup of coffee, outside what it learned", None),
]
# an example that shows a limit, or a half-right caption (its label says what goes wrong, after a colon), says so under
# its result as well: the examples' label line is easy to miss
LIMITS = {path.name: label for path, label, right in EXAMPLES if right is None or ": " in label}
SHOWN_SIDE = 480  # the photo under the attention is sent at most this wide or tall
# articles, verbs "to be", prepositions, counts ("two", "a group of"): their attention says little (the model looks
# anywhere for "a"), so the attention slider starts on the first other word
FUNCTION_WORDS = {"a", "an", "the", "is", "are", "of", "in", "on", "with", "and", "at", "to", "its", "his", "her",
                  "their", "two", "three", "four", "five", "some", "several", "group", "</s>"}


def load_models(root: str | Path = "checkpoints", workers: ModelWorkers | None = None
                ) -> tuple[dict[str, ImageCaptioner], list[str]]:
    """A captioner per checkpoint found under ``root`` (by its label in the model picker), and the problems found.
    With ``workers`` (not started yet), the captions are written in those processes once they are up."""
    loaded, problems = load_named(root, CHECKPOINTS, "captioner")
    models = {}
    for label, (folder, model, tokenizer, config) in loaded.items():
        models[label] = serving(model, tokenizer, config)
        models[label].unsure_below = config["metrics"].get("unsure_below")  # None: never calibrated, no such note
        if workers is not None:
            models[label] = workers.serve(models[label], folder)
    return models, problems


UNREADABLE = object()  # what UploadedImage hands caption_image for a file that is not an image


class UploadedImage(gr.Image):
    """gr.Image that hands the handler ``UNREADABLE`` for a file Pillow cannot read, instead of failing.

    Gradio reads the upload before the handler runs; an error raised there would bypass ``wire`` (a red "Error" on
    every output, the message only in a corner toast, a traceback in the log), so ``caption_image`` raises it.
    """

    is_template = True  # rendered by the frontend as a plain Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # Pillow's UnidentifiedImageError, DecompressionBombError, OSError...
            return UNREADABLE



def first_content_word(words: list[str]) -> int:
    """The index of the first word that names something ("children" in "a group of children ..."), else 0."""
    return next((i for i, word in enumerate(words) if word not in FUNCTION_WORDS), 0)


def attention_figure(photo: Image.Image, attention: torch.Tensor, words: list[str], grid: tuple[int, int],
                     fit: str) -> go.Figure:
    """Where the model looked for each word: the photo, and over it one word's attention (a slider picks the word).

    The slider starts on the first content word, not on "a". The browser draws it; hovering (or tapping) a region
    gives its share of that word's attention. A squashing model saw the whole photo, so its grid is stretched over the
    photo as the user gave it (any aspect ratio); a cropping model saw the centre square, which is what it is drawn
    on. The photo travels once, as a JPEG.
    """
    if fit == "crop":
        photo = fit_square(photo, min(photo.size), "crop")
    photo = photo.convert("RGB")
    photo.thumbnail((SHOWN_SIDE, SHOWN_SIDE), Image.BICUBIC)
    width, height = photo.size
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=85)
    h, w = grid
    start = first_content_word(words)
    jpeg = base64.b64encode(buffer.getvalue()).decode("ascii")
    layers = [{"type": "image", "source": "data:image/jpeg;base64," + jpeg, "hoverinfo": "skip"}]
    for i, word in enumerate(words):
        weights = attention[i].float().view(h, w).numpy()
        layers.append({
            "type": "heatmap", "z": weights / max(float(weights.max()), 1e-12), "customdata": weights, "zmin": 0,
            "zmax": 1, "x0": width / w / 2, "dx": width / w, "y0": height / h / 2, "dy": height / h, "zsmooth": "best",
            "opacity": 0.55, "colorscale": colour_scale("Inferno"), "showscale": False, "visible": i == start,
            "name": plotly_text(word),
            "hovertemplate": f"<b>{plotly_text(word)}</b>: %{{customdata:.0%}} of its attention here<extra></extra>"})
    steps = [{"label": plotly_text(word), "method": "update",
              "args": [{"visible": [True] + [j == i for j in range(len(words))]}]} for i, word in enumerate(words)]
    return figure(layers, {
        # the slider and its word above the photo, the photo right under them: a phone draws the photo narrower than
        # the figure's fixed height allows for, and the spare height then falls below the photo, not between the two
        "height": height + 90, "margin": {"l": 4, "r": 4, "t": 86, "b": 4}, "plot_bgcolor": "white",
        "xaxis": {"visible": False, "range": [0, width], "constrain": "domain"},
        "yaxis": {"visible": False, "range": [height, 0], "scaleanchor": "x", "constrain": "domain",
                  "constraintoward": "top"},
        # the word in large type; the slider's own labels stay unprinted, since a caption's twelve words would
        # overlap on a phone
        "sliders": [{"steps": steps, "active": start, "x": 0, "len": 0.93,  # clear of the modebar
                     "y": 1, "yanchor": "bottom", "pad": {"t": 0, "b": 6},
                     "currentvalue": {"prefix": "word: ", "font": {"size": 16, "color": "#222"}, "xanchor": "left"},
                     "font": {"color": "rgba(0,0,0,0)"}, "ticklen": 3}],
        # lying along the top, above the slider's track: upright at the right, its last button lay over the photo's
        # corner on a phone
        "modebar": {"orientation": "h",
                    "remove": ["zoom", "pan", "zoomIn", "zoomOut", "autoScale", "select", "lasso"]}})


def caption_image(image, beam_size: float = 3, model_name: str | None = None, *,
                  models: dict[str, ImageCaptioner]):
    """Caption one image (a file path, bytes or PIL image): (caption, n-best rows, attention figure, notes)."""
    if not models:
        raise gr.Error("no captioning model was found; see the README to train one")
    model_name = next(iter(models)) if model_name is None else model_name
    if model_name not in models:
        raise gr.Error(f"unknown model {model_name!r}; available: {', '.join(models)}")
    if not has_image(image):
        raise gr.Error("Upload an image first (or take one with the webcam, or paste one).")
    if image is UNREADABLE:
        raise gr.Error("This file cannot be read as an image: upload a photo (JPEG, PNG, GIF, WebP, BMP or TIFF).")
    beam = int(check_number("beam size", beam_size, 1, MAX_BEAM))
    captioner = models[model_name]
    t0 = time.perf_counter()
    try:
        result = captioner.caption_photos([image], beam_size=beam)[0]
    except CaptionError as e:
        raise gr.Error(str(e)) from None
    ms = (time.perf_counter() - t0) * 1000
    rows = [[i + 1, c.text, *scores] for i, (c, scores) in enumerate(zip(result.candidates,
                                                                        nbest_scores(result.candidates)))]
    grid, fit = captioner.grid, captioner.config.fit
    fig = attention_figure(result.photo, result.attention, result.words, grid, fit)
    search = "greedy search" if beam == 1 else f"beam search, beam {beam}"
    notes = [*result.notes]
    if fit == "crop" and result.photo.width != result.photo.height:  # a newcomer took the crop for a squashed photo
        notes.append("this model reads only the centre square of the photo, which is what the map below shows")
    if captioner.unsure_below is not None and result.confidence < captioner.unsure_below:
        # a photo unlike Flickr8k's often gets a fluent, wrong caption: a newcomer took such captions at their word
        notes.append(f"the model is less sure of this caption (log-probability {result.confidence:.2f} a word) than of 19 "
                     "in 20 Flickr8k photos it was checked on: the photo may show something it never learned")
    if isinstance(image, (str, Path)) and Path(image).name in LIMITS:  # Gradio keeps an example's file name
        notes.append(f"this example shows {LIMITS[Path(image).name]}")
    text = "\n\n".join([f"{ms:.0f} ms (read, resize, encode, {search}) · attention grid {grid[0]} x {grid[1]}",
                         *[f"Note: {n}" for n in notes]])
    return result.text, rows, fig, text


EXPLAIN = f"""
**Show, Attend and Tell.** An encoder turns your photo into a grid of features: by default EfficientNet-Lite0,
pretrained on ImageNet's 1.3 million photos (the small CNN in the model picker learned from Flickr8k alone). An LSTM
that learned from Flickr8k's 6,000 captioned photos of people, dogs, sport and streets writes the caption, looking at
the grid before each word (the heat maps below: bright = looked there).
<small>Images up to {MAX_PIXELS // 1_000_000} million pixels and 10 MB.</small>
"""


def build_tab(models: dict[str, ImageCaptioner], problems: list[str] | None = None) -> None:
    gr.Markdown(EXPLAIN)
    for p in problems or []:
        gr.Markdown(f"⚠️ {p}")
    choices = list(models) or ["(no model found)"]
    with gr.Row():
        with gr.Column(scale=2):
            image = UploadedImage(type="filepath", sources=["upload", "webcam", "clipboard"], label="Image")
            # under the photo, on a laptop's first screen (under the settings it was at y=964 of 900); a new photo or
            # model is captioned without it, so it is there for a changed beam or a second look
            button = gr.Button("Caption", variant="primary")
            message = message_box()  # under the button: lower down, its scrolling into view took the photo away
            # thumbnails rather than labels, so one sees the photo before choosing it; the label says what each is.
            # Under the photo, on the first screen: below the results, a newcomer saw an empty upload box and no
            # examples. A chosen example is captioned at once and the page scrolls to the caption (below)
            gr.Examples([[str(path)] for path, _, _ in EXAMPLES], inputs=[image], label="Examples (public domain or "
                        "CC0), left to right: " + "; ".join(label for _, label, _ in EXAMPLES))
            with gr.Row():
                beam = gr.Slider(1, MAX_BEAM, value=3, step=1, label="Beam size", info="1 = greedy")
                say_when_clamped(beam)  # beam 0 typed runs as 1: say so
                # min_width: a phone puts it under the slider (beside it, its labels wrapped to 7 lines)
                model_name = gr.Radio(choices, value=choices[0], label="Model",
                                      info="the from-scratch CNN shows what ImageNet pretraining buys", min_width=280)
        with gr.Column(scale=3):
            caption = gr.Textbox(label="Caption", interactive=False, buttons=["copy"])
            notes = gr.Markdown()
            # wrapped text and narrow score columns: on a phone a cut caption hid how the candidates differ
            nbest = gr.Dataframe(headers=["rank", "caption", "score", "log-prob"],
                                 label=f"n-best list (log-prob: less {REPEAT_PENALTY:g} for each repeated word; "
                                       "score: log-prob / length penalty, the ranking)",
                                 interactive=False, wrap=True, column_widths=NBEST_WIDTHS["caption"],
                                 elem_classes=["nbest", "nbest-caption"])
    # a newcomer wondered why the slider began on its third word: say where it opens (first_content_word)
    attention = titled_plot("**Where the model looked for each word**: the slider above the photo opens on the first "
                            "word that is not \"a\", \"the\" or the like; move it from word to word, and hover or tap a "
                            "region for its share of the attention (`</s>`: where it looked when it decided to stop)",
                            elem_id="caption-attention")
    inputs, outputs = [image, beam, model_name], [caption, nbest, attention, notes]
    handler = bind_models(caption_image, models)
    wire([button.click], handler, inputs, outputs, message, api_name="caption")
    # a new photo (uploaded, pasted or an example) or another model is captioned at once: the caption of the last
    # photo must not stay beside the new one (a newcomer read the beach's caption under a cup of coffee)
    made = wire([image.change, model_name.change], rerun_when_given(handler, has_image, outputs), inputs, outputs,
                message, api_name=None, concurrency_id="caption")
    clear_on([image.clear], [*outputs, message])
    bring_into_view(button, caption)
    bring_into_view_after(made, caption)  # on a phone the caption comes far below the photo just chosen


def has_image(image, *_) -> bool:
    """Whether the image box holds something to caption (it gives None, or "" once emptied)."""
    return image is not None and image != ""
