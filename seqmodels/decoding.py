"""One decoding module for every generator in the project.

A generator is anything with the two methods of the ``Stepper`` contract:

    start(prompt_ids) -> (logits (1, V), state)    # read the condition: a prompt, a sentence, an image
    step(tokens (B,), state) -> (logits (B, V), state)

``CharLM`` implements it with the same forward it trains with, ``FastCharLM`` with pre-packed weights
for single-stream CPU decoding; the seq2seq and captioning decoders implement the same two methods,
so sampling, greedy search and streaming below serve them all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple, Protocol

import torch


class Stepper(Protocol):
    def start(self, prompt_ids: list[int]) -> tuple[torch.Tensor, Any]: ...

    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...


@dataclass
class SamplingSettings:
    max_new_tokens: int = 500
    temperature: float = 1.0  # 0 means greedy: always the most likely token
    top_k: int = 0  # keep the k most likely tokens; 0 keeps all
    top_p: float = 1.0  # nucleus: the smallest set whose probability reaches p; 1 keeps all, 0 keeps one
    seed: int | None = None  # the same seed, prompt and settings give the same text

    def __post_init__(self):
        if self.max_new_tokens < 0:
            raise ValueError("max_new_tokens must be >= 0")
        if not self.temperature >= 0:  # also rejects NaN
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError(f"top_p must be between 0 and 1, got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class Token(NamedTuple):
    id: int
    prob: float  # the probability the model gave this token, before temperature and filtering


def filter_logits(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """Apply temperature, top-k and top-p to logits (B, V); removed tokens get -inf."""
    # Shift so the best logit is 0, then scale by 1/T capped at 1e30: a tiny temperature sends the others
    # to -inf (the greedy limit) instead of making inf - inf or 0/0 (1e-300 is 0 in float32) = NaN.
    scale = min(1.0 / settings.temperature, 1e30)
    logits = (logits - logits.amax(dim=-1, keepdim=True)) * scale
    vocab = logits.size(-1)
    if 0 < settings.top_k < vocab:
        kth = torch.topk(logits, settings.top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if settings.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach p; the first token always stays
        drop_sorted = (cum - torch.softmax(sorted_logits, dim=-1)) >= settings.top_p
        drop_sorted[..., 0] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def choose(logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator | None,
           probs: torch.Tensor | None = None) -> torch.Tensor:
    """Pick the next token for each row of logits (B, V) -> (B,). ``probs``: softmax(logits), if known."""
    if settings.greedy:
        return logits.argmax(dim=-1)
    if settings.temperature == 1.0 and settings.top_k == 0 and settings.top_p == 1.0:
        probs = torch.softmax(logits, dim=-1) if probs is None else probs
    else:
        probs = torch.softmax(filter_logits(logits, settings), dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def make_generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def generate(model: Stepper, prompt_ids: list[int], settings: SamplingSettings) -> Iterator[Token]:
    """Yield new tokens one at a time, as they are produced (for streaming)."""
    if not prompt_ids:
        raise ValueError("generation needs at least one prompt token")
    generator = make_generator(settings.seed)
    logits, state = model.start(prompt_ids)
    for i in range(settings.max_new_tokens):
        logits = logits.float()
        probs = torch.softmax(logits, dim=-1)  # the model's own belief, reported with each token
        token = choose(logits, settings, generator, probs)  # (1,)
        token_id = int(token[0])
        yield Token(token_id, probs[0, token_id].item())
        if i + 1 < settings.max_new_tokens:  # no step for a token nobody will read
            logits, state = model.step(token, state)


def greedy(model: Stepper, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    """The most likely continuation, token by token."""
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=0.0)
    return [t.id for t in generate(model, prompt_ids, settings)]


def sample(model: Stepper, prompt_ids: list[int], settings: SamplingSettings) -> list[int]:
    return [t.id for t in generate(model, prompt_ids, settings)]
