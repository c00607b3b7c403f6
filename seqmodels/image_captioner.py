"""Caption photos with a captioning checkpoint: image checks, the model's view of the photo, search, readable results.

The CLI (`python -m train.caption caption` and `evaluate`), the validation BLEU during training, self-critical
training's evaluation, the speed bench and the Image captioning tab all call ``ImageCaptioner``, so they read
photos the same way and decode the same way (as ``Translator`` does for translation).

    captioner = ImageCaptioner(model, tokenizer)
    result = captioner.caption_photos(["dog.jpg"], beam_size=3)[0]
    result.text, result.words, result.attention   # attention: one row per word over the (h, w) grid
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from .decoding import MAX_BEAM, Candidate, Hypothesis, search
from .images import ImageError, load_for_model
from .int8 import int8_copy

MAX_CAPTION_WORDS = 30  # a caption is cut here: Flickr8k's longest are about 35 words, most under 15
# The search's defaults, chosen on Flickr8k dev (beam 3, the shipped captioner; the model card has the grid).
# Beam search made captions like "looking at the camera at the camera": banning repeated word pairs lifted CIDEr
# 48.79 -> 50.00, length normalisation 1.5 then 50.61 (1.0: 50.00, 2.0: 50.00), and a penalty of 0.5 nats per
# earlier use of a word 50.96 (0.3: 50.91, 0.7: 50.98, 1.0: 50.32, 2.0: 47.30), the camera photo's caption
# becoming "a man is standing in front of a camera"
NO_REPEAT_NGRAM = 2  # no caption says the same n words twice (0: allowed)
REPEAT_PENALTY = 0.5  # nats off a word's log-probability for each time the caption has already used it
CAPTION_ALPHA = 1.5  # length normalisation (GNMT's alpha, see seqmodels.decoding.length_penalty)


class CaptionError(ValueError):
    """A photo or a setting that cannot be used; the message says why, in words a user can act on."""



@dataclass
class Caption:
    text: str  # the best caption
    words: list[str]  # one label per attention row: the caption's words, then </s> when the model ended it
    attention: torch.Tensor  # (len(words), h * w): where the model looked before each word
    candidates: list[Candidate]  # the n-best list, best first
    photo: Image.Image | None = None  # the photo as read (upright RGB, any aspect ratio); None for tensor input
    notes: list[str] = field(default_factory=list)  # what was changed in the input (animation, transparency)
    # the best caption's mean log-probability per token (word piece, </s> included), in nats: how sure the model is
    confidence: float = 0.0


class ImageCaptioner:
    # a confidence below this (the checkpoint's metrics.unsure_below, set on dev by `train.caption evaluate
    # --calibrate-unsure`) is less sure than 19 in 20 development photos: the app says so; None: no such note
    unsure_below: float | None = None

    def __init__(self, model, tokenizer, quantize: bool = False):
        """``model`` in eval mode (as ``load_model`` returns it, or as the training loop evaluates it);
        ``quantize``: search with an int8 copy of its decoder (``int8_copy``), as the app does."""
        self.model, self.tokenizer = (int8_copy(model).eval() if quantize else model), tokenizer
        self.config = model.config
        self.grid = model.grid_shape  # (h, w) of the attention grid; measured once (it runs the encoder)

    def read(self, image) -> tuple[torch.Tensor, Image.Image, list[str]]:
        """One photo (path, bytes or PIL image) -> (the model's uint8 square (3, S, S), the photo, notes)."""
        try:
            return load_for_model(image, self.config.image_size, self.config.fit)
        except ImageError as e:
            raise CaptionError(f"This image cannot be used: {e}.") from None

    @torch.no_grad()
    def caption_batch(self, inputs: torch.Tensor, beam_size: int = 3, alpha: float = CAPTION_ALPHA,
                      max_words: int = MAX_CAPTION_WORDS, no_repeat_ngram: int = NO_REPEAT_NGRAM,
                      repeat_penalty: float = REPEAT_PENALTY) -> list[Caption]:
        """Captions for uint8 squares (B, 3, S, S) or cached grids (B, h*w, C), in one batched search."""
        if not 1 <= beam_size <= MAX_BEAM:
            raise CaptionError(f"beam size must be between 1 and {MAX_BEAM}")
        if not 1 <= max_words <= MAX_CAPTION_WORDS:
            raise CaptionError(f"a caption has between 1 and {MAX_CAPTION_WORDS} words")
        if no_repeat_ngram < 0 or repeat_penalty < 0:
            raise CaptionError("no_repeat_ngram and repeat_penalty are 0 (off) or positive")
        nbests = search(self.model, inputs, beam_size=beam_size, max_len=max_words, alpha=alpha,
                        no_repeat_ngram=no_repeat_ngram, repeat_penalty=repeat_penalty)
        return [self._result(hyps) for hyps in nbests]

    def caption_photos(self, images: list, beam_size: int = 3, alpha: float = CAPTION_ALPHA,
                       max_words: int = MAX_CAPTION_WORDS, no_repeat_ngram: int = NO_REPEAT_NGRAM,
                       repeat_penalty: float = REPEAT_PENALTY) -> list[Caption]:
        """Captions for photos (paths, bytes or PIL images); CaptionError names what is wrong with a bad one."""
        read = [self.read(image) for image in images]
        if not read:
            return []
        results = self.caption_batch(torch.stack([tensor for tensor, _, _ in read]), beam_size, alpha, max_words,
                                     no_repeat_ngram, repeat_penalty)
        for result, (_, photo, notes) in zip(results, read):
            result.photo, result.notes = photo, notes
        return results

    def _result(self, hyps: list[Hypothesis]) -> Caption:
        best = hyps[0]
        # the tokenizer's pieces carry SentencePiece's word marker; a person reads the words
        words = [p.lstrip("▁") for p in self.tokenizer.pieces(best.tokens)] + (["</s>"] if best.finished else [])
        return Caption(text=self.tokenizer.decode(best.tokens), words=words, attention=best.attention.float(),
                       candidates=[Candidate(self.tokenizer.decode(h.tokens), h.score, h.normalized) for h in hyps],
                       confidence=best.score / max(len(words), 1))
