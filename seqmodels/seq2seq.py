"""Encoder-decoder with attention for translation (Bahdanau et al. 2014; Luong et al. 2015).

    encoder: embedding -> bidirectional GRU/LSTM over the packed source -> memory (B, S, M), one vector per subword
    decoder: embedding -> GRU/LSTM -> attention over the memory -> readout -> logits over target subwords

Two decoder layouts share one ``decode`` function, used by training (all target steps at once, teacher
forcing) and by search (one step at a time), so the two cannot drift apart:

- ``context_feeding=False`` (Luong): the RNN reads only the previous word; its output h_t queries the
  memory and [h_t; c_t] makes the prediction. The RNN runs over the whole target in one call, which is
  what makes training fast on a CPU.
- ``context_feeding=True`` (Bahdanau, as in the PyTorch tutorial): the previous state h_{t-1} queries the
  memory and the context c_t is fed into the RNN with the previous word, so the RNN must be stepped.

Attention scores: ``additive`` v·tanh(W_q q + W_k m) (Bahdanau), ``general`` q·W m and ``dot`` q·m
(Luong). Padded source positions are masked out of attention, and padded target positions out of the
loss (the PyTorch tutorial let both in).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .attention import ATTENTIONS, Attention, Context
from .decoding import searchable_log_probs
from .tokenizers import BOS_ID, EOS_ID, PAD_ID

@dataclass
class Seq2SeqConfig:
    src_vocab_size: int = 8000
    tgt_vocab_size: int = 8000
    shared_vocab: bool = True  # one SentencePiece model for both languages: one embedding table serves both
    cell: str = "gru"  # gru | lstm, for encoder and decoder
    embedding_dim: int = 256
    hidden_size: int = 512  # decoder; each encoder direction has hidden_size // 2 when bidirectional
    encoder_layers: int = 2
    decoder_layers: int = 1
    bidirectional: bool = True
    attention: str = "general"  # additive | general | dot
    context_feeding: bool = False  # True: Bahdanau's layout (context into the RNN), stepped in Python
    readout_context: bool = True  # predict from [h; context] (Luong) rather than from h alone (the tutorial)
    tie_embeddings: bool = True  # the output layer reuses the target embedding (Press & Wolf 2017): fewer weights
    dropout: float = 0.2
    label_smoothing: float = 0.1  # Szegedy et al. 2016; it helps BLEU although it raises the loss

    def __post_init__(self):
        if self.cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be gru or lstm, not {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, not {self.attention!r}")
        if self.bidirectional and self.hidden_size % 2:
            raise ValueError("a bidirectional encoder splits hidden_size in two: make it even")
        if self.shared_vocab and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError("shared_vocab needs src_vocab_size == tgt_vocab_size")
        for name in ("embedding_dim", "hidden_size", "encoder_layers", "decoder_layers", "src_vocab_size", "tgt_vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError("dropout and label_smoothing must be in [0, 1)")

    @property
    def encoder_hidden(self) -> int:
        return self.hidden_size // 2 if self.bidirectional else self.hidden_size


class Seq2SeqOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, V)
    loss: torch.Tensor | None  # mean over real target tokens
    attention: torch.Tensor  # (B, T, S)


# the decoder state is the RNN state: h (L, B, H) for a GRU, (h, c) for an LSTM
State = tuple[torch.Tensor, ...]


class Seq2Seq(nn.Module):
    """Bidirectional RNN encoder, attentional RNN decoder; state passed in and out explicitly."""

    model_type = "seq2seq"
    config_class = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        rnn = nn.GRU if c.cell == "gru" else nn.LSTM
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.src_embed = self.tgt_embed if c.shared_vocab else nn.Embedding(c.src_vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.encoder = rnn(c.embedding_dim, c.encoder_hidden, c.encoder_layers, batch_first=True,
                           bidirectional=c.bidirectional, dropout=c.dropout if c.encoder_layers > 1 else 0.0)
        # the decoder starts from the encoder's final states (both directions), mapped to its own size
        n_states = 2 if c.cell == "lstm" else 1
        self.bridge = nn.Linear(c.hidden_size, c.hidden_size * c.decoder_layers * n_states)
        dec_in = c.embedding_dim + (c.hidden_size if c.context_feeding else 0)
        self.decoder = rnn(dec_in, c.hidden_size, c.decoder_layers, batch_first=True,
                           dropout=c.dropout if c.decoder_layers > 1 else 0.0)
        self.attention = Attention(c.attention, c.hidden_size, c.hidden_size)
        if c.readout_context:
            self.readout = nn.Linear(2 * c.hidden_size, c.embedding_dim)
            out_in = c.embedding_dim
        else:
            self.readout = None
            out_in = c.hidden_size
        self.out = nn.Linear(out_in, c.tgt_vocab_size)
        if c.tie_embeddings:
            if out_in != c.embedding_dim:
                raise ValueError("tie_embeddings needs the readout size to equal embedding_dim (use readout_context)")
            self.out.weight = self.tgt_embed.weight
        self.drop = nn.Dropout(c.dropout)

    # ------------------------------------------------------------------ encoder

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[Context, State]:
        """src (B, S) padded with PAD_ID, src_len (B,) -> the decoder's context and initial state."""
        c = self.config
        emb = self.drop(self.src_embed(src))  # (B, S, E)
        # packing: the RNN never reads padding, and its final state is the last real word's, not a pad's
        packed = pack_padded_sequence(emb, src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, S, H)
        mask = torch.arange(src.size(1), device=src.device)[None, :] < src_len.to(src.device)[:, None]
        h_n = final[0] if isinstance(final, tuple) else final  # (layers * directions, B, H_enc)
        B, L, H = src.size(0), c.decoder_layers, c.hidden_size
        top = h_n.view(c.encoder_layers, 2 if c.bidirectional else 1, B, c.encoder_hidden)[-1]  # top layer
        top = top.transpose(0, 1).reshape(B, H)  # (B, H): forward and backward summaries side by side
        n_states = 2 if c.cell == "lstm" else 1
        start = torch.tanh(self.bridge(top)).view(B, n_states, L, H).permute(1, 2, 0, 3).contiguous()
        return Context(memory, self.attention.keys(memory), mask), tuple(start)

    # ------------------------------------------------------------------ decoder

    def _rnn_state(self, state: State):
        return state[0] if self.config.cell == "gru" else (state[0], state[1])

    def decode(self, tgt_in: torch.Tensor, state: State, ctx: Context) -> tuple[torch.Tensor, State, torch.Tensor]:
        """Run the decoder over tgt_in (B, T) from ``state``: logits (B, T, V), new state, attention (B, T, S).

        Training calls it once with the whole shifted target; search calls it with T = 1 per step.
        """
        emb = self.drop(self.tgt_embed(tgt_in))  # (B, T, E)
        if not self.config.context_feeding:
            out, new = self.decoder(emb, self._rnn_state(state))  # (B, T, H)
            context, weights = self.attention(out, ctx)
        else:
            outs, contexts, all_weights = [], [], []
            new = self._rnn_state(state)
            for t in range(emb.size(1)):
                h_top = (new[0] if isinstance(new, tuple) else new)[-1][:, None]  # (B, 1, H): h_{t-1}
                context_t, w = self.attention(h_top, ctx)
                out_t, new = self.decoder(torch.cat([emb[:, t:t + 1], context_t], dim=-1), new)
                outs.append(out_t), contexts.append(context_t), all_weights.append(w)
            out, context, weights = torch.cat(outs, 1), torch.cat(contexts, 1), torch.cat(all_weights, 1)
        if self.readout is not None:
            hidden = torch.tanh(self.readout(self.drop(torch.cat([out, context], dim=-1))))  # (B, T, E)
        else:
            hidden = out
        logits = self.out(self.drop(hidden))
        new_state = new if isinstance(new, tuple) else (new,)
        return logits, new_state, weights

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor,
                tgt_out: torch.Tensor | None = None) -> Seq2SeqOutput:
        """Teacher forcing: tgt_in is <s> y1..yn, tgt_out is y1..yn </s>, both padded with PAD_ID."""
        ctx, state = self.encode(src, src_len)
        logits, _, weights = self.decode(tgt_in, state, ctx)
        loss = None
        if tgt_out is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), tgt_out.flatten(), ignore_index=PAD_ID,
                                   label_smoothing=self.config.label_smoothing)
        return Seq2SeqOutput(logits, loss, weights)

    # ------------------------------------------------------------------ the search contract

    bos_id, eos_id = BOS_ID, EOS_ID

    def begin(self, sources: list[list[int]]) -> tuple[Context, State]:
        """Encode a batch of token-id lists (any lengths) for search."""
        device = self.tgt_embed.weight.device
        lengths = torch.tensor([len(s) for s in sources])
        if (lengths < 1).any():
            raise ValueError("every source needs at least one token")
        src = torch.full((len(sources), int(lengths.max())), PAD_ID, dtype=torch.long)
        for i, s in enumerate(sources):
            src[i, :len(s)] = torch.tensor(s)
        return self.encode(src.to(device), lengths.to(device))

    def step_log_probs(self, tokens: torch.Tensor, state: State, ctx: Context) -> tuple[torch.Tensor, State, torch.Tensor]:
        """tokens (N,) -> log-probabilities (N, V), new state, attention (N, S)."""
        logits, state, weights = self.decode(tokens[:, None], state, ctx)
        return searchable_log_probs(logits[:, 0]), state, weights[:, 0]

    @staticmethod
    def select_state(state: State, index: torch.Tensor) -> State:
        return tuple(s.index_select(1, index) for s in state)  # (L, N, H): batch is dim 1

    @staticmethod
    def select_context(ctx: Context, index: torch.Tensor) -> Context:
        return Context(*(t.index_select(0, index) for t in ctx))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
