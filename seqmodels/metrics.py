"""Corpus scores: sacrebleu BLEU and chrF for translation; COCO BLEU-1..4 and CIDEr-D for captions."""
from __future__ import annotations

import contextlib
import io
from typing import Iterable

import torch

from .tokenizers import caption_words


def translation_scores(hyps: list[str], refs: list[list[str]]) -> dict:
    """sacrebleu corpus BLEU and chrF; ``refs`` holds each hypothesis's references (any number each)."""
    from sacrebleu.metrics import BLEU, CHRF

    width = max(len(r) for r in refs)
    streams = [[r[i] if i < len(r) else None for r in refs] for i in range(width)]
    bleu, chrf = BLEU(), CHRF()
    return {"bleu": round(bleu.corpus_score(hyps, streams).score, 2),
            "chrf": round(chrf.corpus_score(hyps, streams).score, 2), "bleu_signature": str(bleu.get_signature())}


def caption_scores(hyps: dict[str, str], refs: dict[str, list[str]]) -> dict:
    """BLEU-1..4 and CIDEr-D as the COCO caption evaluation computes them (pycocoevalcap), x100.

    Text is lower-cased and stripped of punctuation first, as COCO's PTB tokenizer step does (that step
    needs Java; ``caption_words`` does the same job in Python).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    keys = [k for k in hyps if k in refs]
    if not keys:
        raise ValueError("no hypothesis has references")
    gts = {k: [" ".join(caption_words(r)) for r in refs[k]] for k in keys}
    res = {k: [" ".join(caption_words(hyps[k])) or "empty"] for k in keys}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocoevalcap prints its counts
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        cider, _ = Cider().compute_score(gts, res)
    # plain floats: CIDEr comes as a numpy scalar, which a run's resume state could then not be read back with
    # (torch.load(weights_only=True) refuses numpy objects: --resume and export_last of self-critical runs failed)
    return {**{f"bleu{i + 1}": round(100 * float(b), 2) for i, b in enumerate(bleu)}, "cider": round(100 * float(cider), 2),
            "n": len(keys)}


def greedy_caption_scores(captioner, batches: Iterable[torch.Tensor], refs: list[list[str]],
                          max_words: int | None = None) -> dict:
    """Caption each batch's images greedily, in order (``captioner``: a ``seqmodels.image_captioner.ImageCaptioner``),
    and score the i-th caption against ``refs[i]``: ``caption_scores``' figures and the share of the captions
    that are ``distinct`` (the training tasks' guard against one safe sentence for many photos)."""
    options = {} if max_words is None else {"max_words": max_words}
    hyps = {}
    for batch in batches:
        for caption in captioner.caption_batch(batch, beam_size=1, **options):
            hyps[str(len(hyps))] = caption.text
    scores = caption_scores(hyps, {str(i): r for i, r in enumerate(refs)})
    return {**scores, "distinct": len(set(hyps.values())) / max(1, len(hyps))}
