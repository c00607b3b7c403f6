"""Attention over a memory of vectors, shared by the translation and captioning decoders.

The memory is the encoder's output: one vector per source subword (translation) or per image region
(captioning). A query (the decoder's state) is scored against every memory vector, the scores are
softmaxed over the real positions (``Context.mask``), and the context is the weighted average:

    additive  v . tanh(W_q q + W_k m)    (Bahdanau et al. 2014; Show, Attend and Tell)
    general   q . W m                      (Luong et al. 2015)
    dot       q . m                        (Luong et al. 2015)
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

ATTENTIONS = ("additive", "general", "dot")


class Context(NamedTuple):
    """What the decoder reads at every step; fixed for a source sentence or an image."""

    memory: torch.Tensor  # (B, S, M) encoder outputs: S subwords or image regions
    keys: torch.Tensor  # (B, S, K) the memory projected once for the score function
    mask: torch.Tensor  # (B, S) True at real source positions


class Attention(nn.Module):
    """Scores one query per target step against every memory vector; returns contexts and weights."""

    def __init__(self, kind: str, query_size: int, memory_size: int, dim: int | None = None):
        super().__init__()
        self.kind = kind
        if kind == "additive":  # dim: the size of the hidden layer that scores (query, memory) pairs
            dim = dim or query_size
            self.key_proj = nn.Linear(memory_size, dim, bias=False)
            self.query_proj = nn.Linear(query_size, dim)
            self.v = nn.Linear(dim, 1, bias=False)
        elif kind == "general":
            self.key_proj = nn.Linear(memory_size, query_size, bias=False)
        elif query_size != memory_size:
            raise ValueError("dot attention needs the decoder and memory sizes to match")

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        # done once per sentence, not once per step
        return memory if self.kind == "dot" else self.key_proj(memory)

    def forward(self, query: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
        # query (B, T, H) -> context (B, T, M), weights (B, T, S)
        if self.kind == "additive":
            energy = torch.tanh(self.query_proj(query)[:, :, None] + ctx.keys[:, None])  # (B, T, S, H)
            scores = self.v(energy).squeeze(-1)  # (B, T, S)
        else:
            scores = query @ ctx.keys.transpose(1, 2)  # (B, T, S)
        scores = scores.float().masked_fill(~ctx.mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return (weights.to(ctx.memory.dtype) @ ctx.memory), weights
