"""Character language models on gated linear recurrences: minGRU, minLSTM and Hawk's RG-LRU.

The classic cells' gates read the previous hidden state, so step t cannot start before step t-1 ends.
These cells' gates read only the current input (Feng et al. 2024, "Were RNNs All We Needed?"; De et al.
2024, Hawk), so the recurrence becomes element-wise and linear in h:

    minGRU   z = sigmoid(W_z x),  h~ = W_h x                      h_t = (1 - z) h_(t-1) + z h~
    minLSTM  f, i = sigmoid(W_f x), sigmoid(W_i x), h~ = W_h x     h_t = f' h_(t-1) + i' h~  (f', i' = f, i / (f + i))
    RG-LRU   r, i = sigmoid(W_r x), sigmoid(W_i x), a = sigmoid(L)^(8 r)   h_t = a h_(t-1) + sqrt(1 - a^2) (i x)

Training computes every gate for all B*T characters in one matrix product and then runs only the cheap
element-wise recurrence over time (``seqmodels.scan``); generation runs the same code one character at a time.
Each layer is a pre-norm residual block as in Hawk: a short causal convolution (local character n-grams),
the recurrence (mixing over time), then an MLP (mixing within a character).

The recurrent state is explicit, a tuple of two tensors with the batch on dimension 1, as for ``CharLM``:
h (num_layers, B, H) and the convolution's last inputs (num_layers, B, conv_width - 1, H).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .charlm import CharModel, LMOutput, State, next_char_loss
from .dropout import Dropout
from .native import fused
from .scan import linear_scan

LINEAR_CELLS = {"mingru": 2, "minlstm": 3, "rglru": 2}  # cell -> gate projections it computes from x
RG_LRU_C = 8.0  # Hawk's fixed exponent scale: a = sigmoid(L)^(c r), so r in (0, 1) can shorten the memory 8-fold


@dataclass
class LinearRNNConfig:
    vocab_size: int = 65  # set from the tokenizer
    cell: str = "mingru"  # mingru | minlstm | rglru
    hidden_size: int = 320  # the residual stream and the recurrence have the same width; 3 x 320 ~ 2.8M parameters
    num_layers: int = 3  # the shipped minGRU is 8 x 208 (3.2M): at the same size, depth lowered the loss most
    conv_width: int = 4  # Hawk's temporal convolution; 1 turns it off
    mlp_ratio: int = 3  # the MLP's inner width, in multiples of hidden_size
    dropout: float = 0.0  # 0 for short runs; a 26-minute run reads Tiny Shakespeare ~15 times and wants 0.2 (the shipped recipe)

    def __post_init__(self):
        if self.cell not in LINEAR_CELLS:
            raise ValueError(f"cell must be one of {', '.join(LINEAR_CELLS)}, not {self.cell!r}")
        if min(self.vocab_size, self.hidden_size, self.num_layers, self.conv_width, self.mlp_ratio) < 1:
            raise ValueError("vocab_size, hidden_size, num_layers, conv_width and mlp_ratio must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


def linear_cell_gates(cell: str, pre: torch.Tensor, x: torch.Tensor,
                      log_decay: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, torch.Tensor]]:
    """(a, b, gates by name) of h_t = a_t h_(t-1) + b_t from the gate pre-activations ``pre`` (..., k*H).

    ``x`` is the cell's input (..., H) (the RG-LRU gates it into the state); ``log_decay`` is the RG-LRU's
    log sigmoid(L) (H,). Shared by training, generation and the "Inside the RNN" views, and written in the
    subset of Python that TorchScript compiles, for the fast decoder's compiled step.
    """
    pre = pre.float()
    if cell == "mingru":
        z_pre, cand = pre.chunk(2, dim=-1)
        z = torch.sigmoid(z_pre)  # update gate: how much of the candidate to write
        return 1 - z, z * cand, {"update": z, "candidate": cand}
    if cell == "minlstm":
        f_pre, i_pre, cand = pre.chunk(3, dim=-1)
        f, i = torch.sigmoid(f_pre), torch.sigmoid(i_pre)
        total = f + i  # normalised so that forget + input = 1: the state stays on the scale of the candidates
        return f / total, (i / total) * cand, {"forget": f / total, "input": i / total, "candidate": cand}
    r_pre, i_pre = pre.chunk(2, dim=-1)
    r, i = torch.sigmoid(r_pre), torch.sigmoid(i_pre)
    assert log_decay is not None
    log_a = 8.0 * r * log_decay  # (..., H), <= 0; 8 is RG_LRU_C (TorchScript reads no globals)
    a = torch.exp(log_a)
    # sqrt(1 - a^2) keeps the state's scale when a is near 1; -expm1(2 log a) = 1 - a^2 without cancellation
    b = torch.sqrt((-torch.expm1(2 * log_a)).clamp_min(1e-12)) * (i * x.float())
    return a, b, {"recurrence": r, "input": i, "decay": a}


def linear_cell_step(cell: str, pre: torch.Tensor, x: torch.Tensor, log_decay: Optional[torch.Tensor],
                     h: torch.Tensor) -> torch.Tensor:
    """One character's h_t = a_t h_(t-1) + b_t, for the fast decoder's compiled step (``seqmodels.fastgen``).

    The minGRU's update is one ``lerp``, h + z (h~ - h), where ``linear_cell_gates`` would take four
    element-wise operations to build a and b first; at one character per call each operation is a
    dispatch, and dispatches are most of a step's time. The other cells go through ``linear_cell_gates``.
    """
    if cell == "mingru":
        z_pre, cand = pre.float().chunk(2, dim=-1)
        return torch.lerp(h, cand, torch.sigmoid(z_pre))
    a, b, _ = linear_cell_gates(cell, pre, x, log_decay)
    return torch.addcmul(b, a, h)


class LinearRecurrence(nn.Module):
    """Causal convolution, then one gated linear recurrence, then a projection back to the stream.

    Works time-major, (T, B, H): the scan then reads and writes one contiguous (B, H) block per step with no
    copies, and the depthwise convolution is k shifted multiply-adds (cheaper here than a conv1d and its transposes).
    """

    def __init__(self, config: LinearRNNConfig):
        super().__init__()
        H, self.cell, self.k = config.hidden_size, config.cell, config.conv_width
        # depthwise: each channel its own filter over the last k characters; starts as the identity
        self.conv = nn.Parameter(torch.cat([torch.zeros(self.k - 1, H), torch.ones(1, H)]))  # (k, H), oldest first
        self.gates = nn.Linear(H, LINEAR_CELLS[config.cell] * H)
        self.out = nn.Linear(H, H)
        if config.cell == "rglru":
            # sigmoid(L)^8 between 0.9^8 and 0.999^8 at init: memories from tens to thousands of characters (Hawk)
            a = torch.empty(H).uniform_(0.9 ** 2, 0.999 ** 2).sqrt()
            self.decay_logit = nn.Parameter(torch.log(a / (1 - a)))

    def forward(self, x: torch.Tensor, h0: torch.Tensor, conv0: torch.Tensor, record: dict | None = None):
        """x (T, B, H); h0 (B, H); conv0 (k-1, B, H) -> (y (T, B, H), h_T (B, H), conv_T (k-1, B, H))."""
        T = x.size(0)
        # the C kernels do the same arithmetic in one pass a direction (seqmodels.native.fused); the views'
        # record wants every gate by name, so it takes the torch path
        use_c = (record is None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)
                 and fused.library() is not None)
        if use_c:
            u = fused.causal_conv(x, conv0, self.conv, fp32=self.cell == "rglru")
        else:
            padded = torch.cat([conv0.to(x.dtype), x])  # (k-1+T, B, H): the previous chunk's last inputs first
            u = sum(self.conv[j].to(x.dtype) * padded[j:j + T] for j in range(self.k))  # (T, B, H)
        log_decay = F.logsigmoid(self.decay_logit) if self.cell == "rglru" else None
        pre = self.gates(u)  # (T, B, k*H)
        if use_c and self.cell == "mingru":
            h = fused.mingru_scan(pre, h0)
        else:
            a, b, gates = linear_cell_gates(self.cell, pre, u, log_decay)
            h = linear_scan(a, b, h0)  # (T, B, H), fp32
        if record is not None:  # the cell's input and pre-activations too, for the step-by-step arithmetic view
            record.update(gates, hidden=h, cell_input=u, pre=pre)
        last = torch.cat([conv0.to(x.dtype), x[max(T - (self.k - 1), 0):]])  # the next chunk's conv0
        return self.out(h.to(x.dtype)), h[-1], last[last.size(0) - (self.k - 1):]


class MLP(nn.Module):
    def __init__(self, width: int, ratio: int, dropout: float):
        super().__init__()
        self.up, self.down = nn.Linear(width, ratio * width), nn.Linear(ratio * width, width)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.down(F.gelu(self.up(x))))


class LinearRNNBlock(nn.Module):
    def __init__(self, config: LinearRNNConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(config.hidden_size), nn.LayerNorm(config.hidden_size)
        self.mix = LinearRecurrence(config)
        self.mlp = MLP(config.hidden_size, config.mlp_ratio, config.dropout)
        self.drop = Dropout(config.dropout)

    def forward(self, x, h0, conv0, record=None):
        y, h, conv = self.mix(self.norm1(x), h0, conv0, record)
        x = x + self.drop(y)
        return x + self.mlp(self.norm2(x)), h, conv


class LinearRNNLM(CharModel):
    """Predicts the next character with a stack of gated linear recurrences (see the module docstring)."""

    model_type = "linear-rnn-lm"
    config_class = LinearRNNConfig

    def __init__(self, config: LinearRNNConfig):
        super().__init__()
        self.config = config
        self._stack(config, LinearRNNBlock)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        c = self.config
        h = torch.zeros(c.num_layers, batch_size, c.hidden_size, device=device)
        conv = torch.zeros(c.num_layers, batch_size, c.conv_width - 1, c.hidden_size, device=device)
        return h, conv

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: State | None = None,
                record: list[dict] | None = None) -> LMOutput:
        """idx (B, T); targets (B, T); state from a previous call; ``record``: a list that gets each layer's
        gates, hidden states, cell input and gate pre-activations (for the "Inside the RNN" views)."""
        if state is None:
            state = self.init_state(idx.size(0), idx.device)
        x = self.drop(self.embedding(idx.t()))  # (T, B, H): time-major inside, see LinearRecurrence
        hs, convs = [], []
        for layer, block in enumerate(self.blocks):
            layer_record = {} if record is not None else None
            x, h, conv = block(x, state[0][layer], state[1][layer].transpose(0, 1), layer_record)
            hs.append(h)
            convs.append(conv.float().transpose(0, 1))  # (B, k-1, H)
            if record is not None:
                record.append({k: v.transpose(0, 1) for k, v in layer_record.items()})  # (B, T, H) each
        logits = self._readout(x)  # (T, B, V)
        loss = next_char_loss(logits, targets.t()) if targets is not None else None
        return LMOutput(logits.transpose(0, 1), loss, (torch.stack(hs), torch.stack(convs)))
