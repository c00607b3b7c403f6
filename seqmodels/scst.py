"""Self-critical sequence training (Rennie et al. 2017): fine-tune a captioner on the score it is judged by.

Cross-entropy teaches the decoder the next word of a reference given the reference's previous words; at
test time it reads its own words and is judged on whole captions. SCST closes that gap with REINFORCE:
sample k captions per image, score each against the image's references (CIDEr-D, the usual reward, or
sentence BLEU-4, or their sum), and raise the log-probability of the samples that beat the mean of the
image's other k - 1 samples (Luo 2020's baseline: no extra greedy decode, and it is unbiased). The encoder
is frozen and its grids cached (or, with its top blocks fine-tuned, the output of the frozen ones below), so a
step costs decoder time, or little more; on a CPU a few minutes are more than an epoch of the training images.

    reward = make_reward("cider", train_references)           # n-gram weights from the training captions
    model = SelfCritical(captioner, reward, samples=5)
    loss = model(features, image_ids).loss                      # the shared training loop calls this

A reward of n-gram overlap cannot tell "on the beach" from "in the beach": both share "the beach" with
the references, and self-critical runs here learnt such phrases (README). ``xe_weight`` adds the
cross-entropy of one reference caption per image to the loss, so the decoder keeps the references'
grammar while the reward moves it.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn

from .checkpoint import CheckpointSpec
from .data.captions import teacher_forcing
from .decoding import sample_sequences
from .image_captioner import ImageCaptioner
from .metrics import greedy_caption_scores
from .tokenizers import EOS_ID, PAD_ID

Vector = tuple[list[dict[tuple, float]], list[float], int]  # tf-idf per n-gram order, their norms, a length


def ngram_counts(tokens: list, n: int = 4) -> list[Counter]:
    """Counts of the 1- to n-grams of a token list, one Counter per order."""
    return [Counter(tuple(tokens[i:i + k]) for i in range(len(tokens) - k + 1)) for k in range(1, n + 1)]


class CiderD:
    """CIDEr-D (Vedantam et al. 2015) of token lists, with n-gram weights from a fixed reference corpus.

    The same formula as the COCO evaluation (pycocoevalcap's Cider: tf-idf of 1- to 4-grams, clipped
    counts, a Gaussian penalty of sigma 6 on the length difference, x10), but the document frequencies
    come from the corpus given here (the training captions) instead of from the batch being scored, so a
    sample's reward does not depend on which other images share its batch. The references' vectors are
    computed once.
    """

    def __init__(self, references: list[list[list[int]]], sigma: float = 6.0, n: int = 4):
        if not references:
            raise ValueError("CIDEr-D needs reference captions")
        self.n, self.sigma = n, sigma
        self.df: Counter = Counter()
        for refs in references:  # in how many images' references each n-gram occurs
            self.df.update({g for r in refs for counts in ngram_counts(r, n) for g in counts})
        self.log_docs = math.log(len(references))
        self.refs = [[self.vector(r) for r in refs] for refs in references]

    def vector(self, tokens: list) -> Vector:
        vec = [{g: tf * (self.log_docs - math.log(max(1.0, self.df[g]))) for g, tf in counts.items()}
               for counts in ngram_counts(tokens, self.n)]
        norms = [math.sqrt(sum(v * v for v in d.values())) for d in vec]
        return vec, norms, max(len(tokens) - 1, 0)  # pycocoevalcap's length: the number of bigrams

    def score(self, tokens: list, image: int) -> float:
        """CIDEr-D of one candidate against the references of image number ``image``."""
        vec, norms, length = self.vector(tokens)
        total = 0.0
        for ref_vec, ref_norms, ref_length in self.refs[image]:
            penalty = math.exp(-((length - ref_length) ** 2) / (2 * self.sigma ** 2))
            for k in range(self.n):
                ref = ref_vec[k]
                dot = sum(min(v, ref.get(g, 0.0)) * ref.get(g, 0.0) for g, v in vec[k].items())
                if norms[k] and ref_norms[k]:
                    dot /= norms[k] * ref_norms[k]
                total += dot * penalty
        return 10.0 * total / (self.n * len(self.refs[image]))


class SentenceBleu:
    """Sentence BLEU-4 of token lists against an image's references, as pycocoevalcap scores one sentence
    (clipped n-gram precisions, the brevity penalty against the closest reference length), except that an
    order with no match counts 0.1 matches (Chen and Cherry 2014's method 1) so that a near miss still
    earns more than nothing."""

    def __init__(self, references: list[list[list[int]]], n: int = 4):
        if not references:
            raise ValueError("BLEU needs reference captions")
        self.n = n
        self.refs = []
        for refs in references:  # per image: each n-gram's largest count in one reference, and the lengths
            clip: Counter = Counter()
            for r in refs:
                for counts in ngram_counts(r, n):
                    clip |= counts
            self.refs.append((clip, [len(r) for r in refs]))

    def score(self, tokens: list, image: int) -> float:
        if not tokens:
            return 0.0
        clip, lengths = self.refs[image]
        log_precision = 0.0
        for k, counts in enumerate(ngram_counts(tokens, self.n)):
            total = len(tokens) - k
            if total <= 0:
                return 0.0
            match = sum(min(c, clip[g]) for g, c in counts.items())
            log_precision += math.log((match or 0.1) / total) / self.n
        closest = min(lengths, key=lambda r: (abs(r - len(tokens)), r))
        return math.exp(min(0.0, 1.0 - closest / len(tokens)) + log_precision)


class Sum:
    """Rewards added together (e.g. CIDEr-D + BLEU-4)."""

    def __init__(self, *rewards):
        self.rewards = rewards

    def score(self, tokens: list, image: int) -> float:
        return sum(r.score(tokens, image) for r in self.rewards)


REWARDS = ("cider", "bleu", "cider+bleu")


def make_reward(name: str, references: list[list[list[int]]]):
    """The reward called ``name`` (one of REWARDS) over the given references (token lists, </s> included)."""
    kinds = {"cider": CiderD, "bleu": SentenceBleu}
    parts = name.split("+")
    if not parts or any(p not in kinds for p in parts):
        raise ValueError(f"reward must be one of {', '.join(REWARDS)}, not {name!r}")
    rewards = [kinds[p](references) for p in parts]
    return rewards[0] if len(rewards) == 1 else Sum(*rewards)


def with_end(tokens: list[int]) -> list[int]:
    """A caption's ids with </s>: scoring the end as a word penalises samples that stop mid-phrase
    ("a dog runs through the"), which plain CIDEr-D cannot see."""
    return [*tokens, EOS_ID]


class SelfCriticalOutput(NamedTuple):
    loss: torch.Tensor
    reward: torch.Tensor  # the mean reward of the batch's samples


class SelfCritical(nn.Module):
    """A captioner wrapped so that ``model(features, image_ids).loss`` is the SCST loss (the training loop's contract)."""

    def __init__(self, captioner: nn.Module, reward, samples: int = 5, max_len: int = 25, dropout: bool = False,
                 xe_weight: float = 0.0):
        """``dropout``: keep the captioner's dropout on while sampling. Off by default, so that the samples, and the
        rewards that judge them, come from the decoder the app runs (with dropout 0.5 each sample is a different
        thinned network's caption, and the gradient then improves those). ``xe_weight``: the weight of the
        reference captions' cross-entropy in the loss (see the module docstring); the batches must then carry
        ``tokens_in`` and ``tokens_out``."""
        super().__init__()
        if samples < 2:
            raise ValueError("self-critical training needs at least 2 samples per image (each is judged against the others)")
        if xe_weight < 0:
            raise ValueError("xe_weight must be >= 0")
        self.captioner, self.reward, self.samples, self.max_len = captioner, reward, samples, max_len
        self.dropout, self.xe_weight = dropout, xe_weight

    def train(self, mode: bool = True) -> "SelfCritical":
        super().train(mode)
        if not self.dropout:
            self.captioner.eval()  # gradients still flow; dropout is off (the encoder's batch norm is frozen anyway)
        return self

    def forward(self, features: torch.Tensor, image_ids: torch.Tensor, tokens_in: torch.Tensor | None = None,
                tokens_out: torch.Tensor | None = None) -> SelfCriticalOutput:
        """features: cached grids (B, N, C), or what ``Captioner.cacheable`` gave; image_ids (B,) rows of the
        reward's references; tokens_in/out (B, T): one reference caption per image, teacher-forced when
        ``xe_weight`` > 0."""
        m, k = self.captioner, self.samples
        features = m.grid_of(features)  # once: the cross-entropy term below reads the same grid
        ctx, state = m.encode_features(features)
        rows = torch.arange(features.size(0), device=features.device).repeat_interleave(k)
        tokens, logp, mask = sample_sequences(m, m.select_context(ctx, rows), m.select_state(state, rows), self.max_len)
        ids = image_ids.tolist()
        rewards = torch.tensor([self.reward.score(with_end(_words(seq)), ids[r])
                                for seq, r in zip(tokens.tolist(), rows.tolist())]).view(-1, k)
        baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)  # the mean of the image's other samples
        advantage = (rewards - baseline).view(-1, 1).to(logp.device)
        loss = -(advantage * logp * mask).sum() / mask.sum().clamp(min=1)
        if self.xe_weight:
            if tokens_in is None or tokens_out is None:
                raise ValueError("xe_weight needs reference captions in the batch (tokens_in, tokens_out)")
            loss = loss + self.xe_weight * m(features=features, tokens_in=tokens_in, tokens_out=tokens_out).loss
        return SelfCriticalOutput(loss, rewards.mean())


def _words(seq: list[int]) -> list[int]:
    """A sampled row's word ids: up to </s>, without it and the padding after it."""
    return seq[:seq.index(EOS_ID)] if EOS_ID in seq else [t for t in seq if t != PAD_ID]


class SelfCriticalTask:
    """Training batches of cached grid features; evaluation captions the validation images greedily.

    The best checkpoint is chosen by validation CIDEr (``select_metric``), the teacher-forced loss no longer
    measuring what this training optimises, but only among steps whose captions stay varied: a step where
    fewer than ``min_distinct`` of the validation images get a caption of their own scores -1 (a reward
    can be gamed by one safe sentence for many photos; the README shows a run that did).
    """

    select_metric, select_mode = "val_select", "max"

    def __init__(self, train_features: torch.Tensor, val_features: torch.Tensor, val_refs: list[list[str]],
                 checkpoint: CheckpointSpec, batch_size: int, max_len: int = 30,
                 min_distinct: float = 0.0, train_caps: list[list[list[int]]] | None = None):
        """``train_caps``: each training image's caption ids; given, every batch also carries one of them per
        image, drawn at random, for ``SelfCritical``'s cross-entropy term."""
        self.train_features, self.val_features, self.val_refs = train_features, val_features, val_refs
        self.checkpoint, self.batch_size, self.max_len = checkpoint, batch_size, max_len
        self.min_distinct, self.train_caps = min_distinct, train_caps

    def get_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(len(self.train_features), (self.batch_size,), generator=generator)
        batch = {"features": self.train_features[idx], "image_ids": idx}
        if self.train_caps is not None:
            caps = [self.train_caps[i] for i in idx.tolist()]
            caps = [own[int(torch.randint(len(own), (1,), generator=generator))][:self.max_len] for own in caps]
            batch["tokens_in"], batch["tokens_out"] = teacher_forcing(caps)
        return batch

    def count_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["image_ids"].numel()  # images per step: the loop's rate figure is then images/s

    @torch.no_grad()
    def evaluate(self, model: SelfCritical, batch: int = 200) -> dict[str, float]:
        device = next(model.parameters()).device
        scores = greedy_caption_scores(ImageCaptioner(model.captioner, self.checkpoint.tokenizer),
                                       (self.val_features[i:i + batch].to(device)
                                        for i in range(0, len(self.val_features), batch)),
                                       self.val_refs, max_words=self.max_len)
        return {"val_bleu4": scores["bleu4"], "val_cider": scores["cider"], "val_bleu_n": scores["n"],
                "val_distinct": round(scores["distinct"], 4),
                "val_select": scores["cider"] if scores["distinct"] >= self.min_distinct else -1.0}

    def save(self, model: SelfCritical, folder: Path, metrics: dict) -> None:
        self.checkpoint.write(folder, model.captioner, metrics)  # the bare captioner, as any captioning checkpoint
