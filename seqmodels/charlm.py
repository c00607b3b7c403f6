"""Character-level language model: embedding -> RNN | LSTM | GRU -> linear head.

One class covers the three cells (as pytorch/examples' word_language_model does), so the
"Inside the RNN" views and the model table compare like with like. Recurrent state is explicit:
it goes in and comes out of ``forward`` and ``step``, and is never stored on the module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dropout import Dropout

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

# State is always a tuple of (num_layers, B, H) tensors: (h,) for RNN and GRU, (h, c) for LSTM.
# One shape for all cells lets decoding code select or reorder states without knowing the cell.
State = tuple[torch.Tensor, ...]


@dataclass
class CharLMConfig:
    vocab_size: int = 65  # set from the tokenizer; 65 is Tiny Shakespeare's
    cell: str = "lstm"  # rnn | lstm | gru
    embedding_dim: int = 64  # small: a character carries little information on its own
    hidden_size: int = 512  # char-rnn's default size; ~3.3M parameters for a 2-layer LSTM
    num_layers: int = 2  # a second layer buys ~0.05 nats/char on Tiny Shakespeare for 2x the time
    dropout: float = 0.2  # between layers and before the head; 1 MB of text overfits a 3M model fast

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if self.num_layers < 1 or self.hidden_size < 1 or self.vocab_size < 1:
            raise ValueError("num_layers, hidden_size and vocab_size must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


def unseen_note(text: str, unknown: list[str]) -> str:
    """What was dropped of ``text``: every dropped character counted, each kind shown once ("dropped 6 characters"
    for 13 dropped read as a miscount)."""
    unseen = set(unknown)
    dropped = sum(ch in unseen for ch in text)
    shown = "".join(unknown[:20]) + ("…" if len(unknown) > 20 else "")
    kinds = f" ({len(unknown)} different)" if len(unknown) not in (1, dropped) else ""
    return (f"dropped {dropped} character{'s' if dropped != 1 else ''}{kinds} the model never saw in training: "
            f"{shown!r}")


def cell_update(cell: str, gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor,
                c: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor], Dict[str, torch.Tensor]]:
    """One time step of PyTorch's RNN, LSTM or GRU cell, from its two projections.

    gi = W_ih x + b_ih and gh = W_hh h + b_hh, each (B, gates * H) in PyTorch's gate order; for the RNN
    and LSTM only their sum matters, so callers may fold both biases into either. Returns
    (h, c, gates) with gates by name, (B, H) each: the fast decoder and the "Inside the RNN" views
    both compute with this function, so what the views show is what generation runs. It is written in
    the subset of Python that TorchScript compiles, for the fast decoder's compiled step.
    """
    gates: Dict[str, torch.Tensor] = {}
    if cell == "lstm":
        assert c is not None
        pre = gi + gh
        H = pre.size(1) // 4
        # one sigmoid over all four blocks (the candidate's is unused) costs less than four small calls,
        # and decoding a character is a chain of such small calls
        s = torch.sigmoid(pre)
        i, f, o = s[:, :H], s[:, H:2 * H], s[:, 3 * H:]  # input, forget, output gates
        g = torch.tanh(pre[:, 2 * H:3 * H])  # the cell candidate
        c = torch.addcmul(f * c, i, g)  # forget some of the old memory, write some of the new
        h = o * torch.tanh(c)  # show part of the memory to the next layer and the next step
        gates["input"], gates["forget"], gates["candidate"], gates["output"] = i, f, g, o
        return h, c, gates
    if cell == "gru":
        H = gi.size(1) // 3
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])  # reset: how much of the old state the candidate may read
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])  # update: how much of the old state to keep
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        gates["reset"], gates["update"], gates["candidate"] = r, z, n
        return n + z * (h - n), None, gates  # = (1 - z) * n + z * h
    return torch.tanh(gi + gh), None, gates


class LMOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, V)
    loss: torch.Tensor | None  # mean cross-entropy in nats per character, None without targets
    state: State


def next_char_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats per character of logits (..., V) against targets (...)."""
    # float(): under bf16 autocast the softmax still runs in fp32
    return F.cross_entropy(logits.float().flatten(0, -2), targets.flatten())


class CharModel(nn.Module):
    """What every character model shares (``seqmodels.charmodels``): the decoding contract of
    ``seqmodels.decoding`` on top of its ``forward(idx, targets, state) -> LMOutput``, and for the stacked
    models (linear recurrences, Transformer) their embedding -> blocks -> norm -> head."""

    def _stack(self, config, block: type) -> None:
        """Embedding, ``config.num_layers`` blocks of ``block(config)``, final norm, dropout and head."""
        self.embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.hidden_size)
        self.drop = Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def _readout(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.norm(x)))

    @torch.no_grad()
    def start(self, prompt_ids: list[int]) -> tuple[torch.Tensor, State]:
        """Read the whole prompt in one call; return the logits for the next character (1, V)."""
        device = self.embedding.weight.device  # the embedding's: an int8 copy's head has no plain weight
        out = self(torch.tensor([prompt_ids], dtype=torch.long, device=device))
        return out.logits[:, -1], out.state

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens (B,) -> logits (B, V) for the character after them, and the new state."""
        out = self(tokens[:, None], state=state)
        return out.logits[:, 0], out.state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class CharLM(CharModel):
    """Predicts the next character from the characters so far.

    A recurrent cell reads one character embedding per time step and updates a hidden state,
    its memory of everything read so far; the head turns that state into scores for the next character.
    """

    model_type = "charlm"
    config_class = CharLMConfig

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.rnn = CELLS[config.cell](
            config.embedding_dim,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        c = self.config
        # the weights' dtype, so that a model cast with .double() (the gradient checks) runs without a state
        zeros = torch.zeros(c.num_layers, batch_size, c.hidden_size, device=device, dtype=self.head.weight.dtype)
        return (zeros, zeros.clone()) if c.cell == "lstm" else (zeros,)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: State | None = None
    ) -> LMOutput:
        """idx (B, T) character ids; targets (B, T) next-character ids; state from a previous call."""
        if state is None:
            state = self.init_state(idx.size(0), idx.device)
        x = self.embedding(idx)  # (B, T, E)
        out, new_state = self.rnn(x, state if self.config.cell == "lstm" else state[0])  # (B, T, H)
        if not isinstance(new_state, tuple):
            new_state = (new_state,)
        logits = self.head(self.drop(out))  # (B, T, V)
        loss = next_char_loss(logits, targets) if targets is not None else None
        return LMOutput(logits, loss, new_state)

MAX_PROMPT_CHARS = 2000  # longer prompts are refused: reading them costs time and adds little context


class PromptError(ValueError):
    """A prompt that cannot be used; the message is meant for the user."""


def encode_prompt(tokenizer, prompt: str, max_chars: int = MAX_PROMPT_CHARS) -> tuple[list[int], list[str]]:
    """Prompt text -> (ids, notes). Unknown characters are dropped and named in the notes.

    An empty prompt (or one made only of unknown characters) starts from a newline, the way a play
    or a paragraph starts, or from the first character of the vocabulary when there is no newline.
    """
    if len(prompt) > max_chars:
        raise PromptError(f"the prompt is {len(prompt):,} characters long; the limit is {max_chars:,}")
    enc = tokenizer.encode(prompt)
    notes = []
    if enc.unknown:
        notes.append(unseen_note(prompt, enc.unknown))
        if all(c.lower() != c and c.lower() in tokenizer for c in enc.unknown):  # a model of lower-case text (names)
            notes.append(f"its training text has no capitals: try {prompt.lower()!r}")
    ids = enc.ids
    if not ids:
        start = "\n" if "\n" in tokenizer else tokenizer.chars[0]
        notes.append("empty prompt: " + ("starting on a new line" if start == "\n" else f"starting from {start!r}"))
        ids = tokenizer.encode(start).ids
    return ids, notes
