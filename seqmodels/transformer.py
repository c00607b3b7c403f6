"""A small causal Transformer character model (nanoGPT-style): the reference the recurrent models are judged by.

Pre-norm blocks of multi-head self-attention and an MLP, rotary position embeddings (RoPE, Su et al.
2021) and a sliding attention window of ``context`` characters. RoPE makes attention depend only on how
far apart two characters are, so a window slides along any length of text: generation and
``stream_loss`` carry a key/value cache of the last ``context - 1`` characters, the Transformer's
"recurrent state", and a character read through the cache gets the same logits as in one full pass.

The state is (keys, values), each (num_layers, B, heads, cached, head_dim), batch on dimension 1 as
for the recurrent models. Unlike an RNN's state it grows with the text, up to the window.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .charlm import CharModel, LMOutput, State, next_char_loss
from .dropout import Dropout
from .linear_rnn import MLP


@dataclass
class TransformerConfig:
    vocab_size: int = 65  # set from the tokenizer
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    context: int = 256  # attention window in characters; training sequences are this long
    mlp_ratio: int = 4
    dropout: float = 0.0  # on the residual branches and in the MLP; the shipped model uses 0.1

    def __post_init__(self):
        if min(self.vocab_size, self.hidden_size, self.num_layers, self.num_heads, self.mlp_ratio) < 1 or self.context < 2:
            raise ValueError("vocab_size, hidden_size, num_layers, num_heads and mlp_ratio must be positive, context at least 2")
        if self.hidden_size % (2 * self.num_heads):
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of 2 x num_heads ({self.num_heads}) for RoPE")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


def rotate(x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """RoPE on x (B, heads, T, D) for positions offset .. offset+T-1: pairs of channels turn by position x frequency."""
    T, D = x.size(-2), x.size(-1)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, D, 2, device=x.device, dtype=torch.float32) / D))  # (D/2,)
    angle = torch.arange(offset, offset + T, device=x.device, dtype=torch.float32)[:, None] * inv_freq  # (T, D/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class SelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.heads, self.window = config.num_heads, config.context
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor):
        """x (B, T, C); caches (B, heads, S, D) of unrotated keys and values -> (y, new caches)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, T, D)
        S = k_cache.size(2)
        keys = torch.cat([k_cache.to(k.dtype), k], dim=2)  # (B, h, S+T, D)
        values = torch.cat([v_cache.to(v.dtype), v], dim=2)
        # positions restart at 0 at the cache's oldest key: only distances matter, so no position grows without bound
        q, k_rot = rotate(q, S), rotate(keys)
        # no dropout on the attention weights (nanoGPT has it): given dropout_p, the CPU's attention leaves its
        # fused kernel for one that builds the whole T x T matrix, and training ran 40% slower (3,628 against
        # 5,970 chars/s for the shipped shape). Dropout stays on the residual branches and in the MLP (7%).
        if S == 0 and T <= self.window:
            y = F.scaled_dot_product_attention(q, k_rot, values, is_causal=True)
        else:
            qpos = torch.arange(S, S + T, device=x.device)[:, None]
            kpos = torch.arange(S + T, device=x.device)[None, :]
            allowed = (kpos <= qpos) & (qpos - kpos < self.window)  # causal, and at most `window` keys back
            y = F.scaled_dot_product_attention(q, k_rot, values, attn_mask=allowed)
        keep = self.window - 1  # the next character attends to itself plus this many before it
        y = self.out(y.transpose(1, 2).reshape(B, T, C))
        return y, keys[:, :, -keep:].float(), values[:, :, -keep:].float()


class TransformerBlock(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(config.hidden_size), nn.LayerNorm(config.hidden_size)
        self.attn = SelfAttention(config)
        self.mlp = MLP(config.hidden_size, config.mlp_ratio, config.dropout)
        self.drop = Dropout(config.dropout)

    def forward(self, x, k_cache, v_cache):
        y, k, v = self.attn(self.norm1(x), k_cache, v_cache)
        x = x + self.drop(y)
        return x + self.mlp(self.norm2(x)), k, v


class TransformerLM(CharModel):
    """Predicts the next character by attending to the last ``context`` characters; ``step`` adds one
    character's key and value to the cache."""

    model_type = "transformer-lm"
    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self._stack(config, TransformerBlock)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        c = self.config
        empty = torch.zeros(c.num_layers, batch_size, c.num_heads, 0, c.hidden_size // c.num_heads, device=device)
        return empty, empty.clone()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: State | None = None,
                record: list[dict] | None = None) -> LMOutput:
        """idx (B, T); targets (B, T); state: the key/value cache of a previous call; ``record`` gets each
        layer's output (the residual stream) for the "Inside" views."""
        if state is None:
            state = self.init_state(idx.size(0), idx.device)
        x = self.drop(self.embedding(idx))  # (B, T, C)
        ks, vs = [], []
        for layer, block in enumerate(self.blocks):
            x, k, v = block(x, state[0][layer], state[1][layer])
            ks.append(k)
            vs.append(v)
            if record is not None:
                record.append({"hidden": x.float()})
        logits = self._readout(x)  # (B, T, V)
        loss = next_char_loss(logits, targets) if targets is not None else None
        return LMOutput(logits, loss, (torch.stack(ks), torch.stack(vs)))
