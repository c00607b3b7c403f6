"""The Image captioning tab: a caption for a photo, its n-best list, and where the model looked for each word.

``caption_image`` is a plain handler (testable without a browser); ``build_tab`` lays out the tab and
wires it with ``api_name="caption"``. Run the whole app with ``python app.py``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image

from seqmodels.checkpoint import load_named
from seqmodels.decoding import beam_search, greedy_search
from seqmodels.images import MAX_PIXELS, ImageError, load_for_model

from .textgen import _check_number

CHECKPOINTS = {"Show, Attend and Tell (from-scratch CNN)": "caption-flickr8k"}
EXAMPLES_DIR = Path(__file__).resolve().parent / "assets" / "examples"
MAX_BEAM = 10
MAX_WORDS = 30


@dataclass
class CaptionModel:
    label: str
    folder: Path
    model: object
    tokenizer: object
    metrics: dict


def load_models(root: str | Path = "checkpoints") -> tuple[dict[str, CaptionModel], list[str]]:
    models = {}
    loaded, problems = load_named(root, CHECKPOINTS, "captioner")
    for label, (folder, model, tokenizer, config) in loaded.items():
        size = model.config.image_size
        with torch.no_grad():  # the first call pays for lazy initialisation, not a user
            beam_search(model, torch.zeros(1, 3, size, size, dtype=torch.uint8), beam_size=2, max_len=3)
        models[label] = CaptionModel(label, folder, model, tokenizer, config.get("metrics", {}))
    return models, problems


LOADED: dict[str, CaptionModel] = {}  # filled by app.py at start-up, once


class UploadedImage(gr.Image):
    """gr.Image whose own file reading turns a bad upload into a message instead of a server error."""

    is_template = True  # rendered by the frontend as a plain Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as e:  # Pillow's UnidentifiedImageError, DecompressionBombError, OSError...
            raise gr.Error(f"This file cannot be read as an image ({type(e).__name__}).") from None


def overlay(image: Image.Image, attention: torch.Tensor, grid: tuple[int, int]) -> Image.Image:
    """The image with one word's attention (N,) over the grid laid on it as a heat map."""
    h, w = grid
    att = attention.float().view(h, w).numpy()
    att = att / att.max() if att.max() > 0 else att
    heat = Image.fromarray((att * 255).astype(np.uint8)).resize(image.size, Image.BICUBIC)
    coloured = colormaps["inferno"](np.asarray(heat) / 255.0)[..., :3]
    mixed = 0.45 * np.asarray(image, dtype=np.float32) / 255.0 + 0.55 * coloured
    return Image.fromarray((mixed.clip(0, 1) * 255).astype(np.uint8))


def caption_image(image, beam_size: float = 3, model_name: str | None = None,
                  models: dict[str, CaptionModel] | None = None):
    """Caption one image (a file path, bytes or PIL image): (caption, n-best rows, [(heat map, word)], notes)."""
    models = LOADED if models is None else models
    if not models:
        raise gr.Error("no captioning model was found; see the README to train one")
    model_name = next(iter(models)) if model_name is None else model_name
    if model_name not in models:
        raise gr.Error(f"unknown model {model_name!r}; available: {', '.join(models)}")
    if image is None or (isinstance(image, str) and not image):
        raise gr.Error("Upload an image first (or take one with the webcam, or paste one).")
    beam = int(_check_number("beam size", beam_size, 1, MAX_BEAM))
    cm = models[model_name]
    t0 = time.perf_counter()
    try:
        tensor, square, notes = load_for_model(image, cm.model.config.image_size)
    except ImageError as e:
        raise gr.Error(f"This image cannot be used: {e}.") from None
    with torch.no_grad():
        if beam == 1:
            hyps = [greedy_search(cm.model, tensor[None], max_len=MAX_WORDS)]
        else:
            hyps = beam_search(cm.model, tensor[None], beam_size=beam, max_len=MAX_WORDS)
    ms = (time.perf_counter() - t0) * 1000
    best = hyps[0][0]
    caption = cm.tokenizer.decode(best.tokens)
    rows = [[i + 1, cm.tokenizer.decode(h.tokens), round(h.normalized, 3), round(h.score, 3)] for i, h in enumerate(hyps[0])]
    grid = cm.model.grid_shape
    words = cm.tokenizer.pieces(best.tokens) + (["</s>"] if best.finished else [])
    gallery = [(overlay(square, best.attention[i], grid), w.lstrip("▁")) for i, w in enumerate(words)]
    search = "greedy search" if beam == 1 else f"beam search, beam {beam}"
    text = "\n\n".join([f"{ms:.0f} ms (read, resize, encode, {search}) · attention grid {grid[0]} x {grid[1]}",
                        *[f"Note: {n}" for n in notes]])
    return caption, rows, gallery, text


EXPLAIN = f"""
**Show, Attend and Tell.** A convolutional network turns the photo into a grid of feature vectors,
one per region. An LSTM then writes the caption word by word; before each word it **attends**: it
scores every region against its current state and takes a weighted average of their features, so it
can look at the dog when it writes "dog" and at the grass when it writes "grass". The heat maps below
show those weights for each word of the best caption (bright = looked there). The CNN here was trained
from scratch on the 6,000 training photos of Flickr8k, without ImageNet pre-training, so expect
captions of the kind Flickr8k has (people, dogs, sports, streets) to work best. Images up to
{MAX_PIXELS // 1_000_000} million pixels and 10 MB.
"""


def build_tab(models: dict[str, CaptionModel], problems: list[str] | None = None) -> None:
    gr.Markdown(EXPLAIN)
    for p in problems or []:
        gr.Markdown(f"⚠️ {p}")
    choices = list(models) or ["(no model found)"]
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    with gr.Row():
        with gr.Column(scale=2):
            image = UploadedImage(type="filepath", sources=["upload", "webcam", "clipboard"], label="Image")
            with gr.Row():
                beam = gr.Slider(1, MAX_BEAM, value=3, step=1, label="Beam size", info="1 = greedy")
                model_name = gr.Radio(choices, value=choices[0], label="Model")
            button = gr.Button("Caption", variant="primary")
            if examples:
                gr.Examples([[e] for e in examples], inputs=[image], label="Examples (not from Flickr8k)")
        with gr.Column(scale=3):
            caption = gr.Textbox(label="Caption", interactive=False, buttons=["copy"])
            notes = gr.Markdown()
            nbest = gr.Dataframe(headers=["rank", "caption", "score (length-normalised)", "log-probability"],
                                 label="n-best list", interactive=False)
    gallery = gr.Gallery(label="Where the model looked for each word", columns=6, height="auto")
    inputs, outputs = [image, beam, model_name], [caption, nbest, gallery, notes]
    button.click(caption_image, inputs, outputs, api_name="caption")
