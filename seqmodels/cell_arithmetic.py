"""One step of a recurrent cell written out with its real numbers: what goes in, each gate, what comes out.

``cell_arithmetic(model, ids, t, layer)`` returns every quantity the cell computes on character ``t`` of
``ids``, in the order it computes them, for every unit of one layer: the part of each gate's pre-activation
that comes from the input x_t and the part that comes from the previous state h_(t-1), the sigmoid or tanh,
the cell update and h_t. The "Inside the RNN" tab shows a few units of it (CNN Explainer's "click a unit,
see its arithmetic"); the nonlinear step itself is ``cell_update`` (classic cells) or ``linear_cell_gates``
(minGRU, RG-LRU), the very functions the fast decoder runs, so the numbers are those generation uses.
The tests check them against ``nn.LSTMCell``, ``nn.GRUCell`` and ``nn.RNNCell``. Nothing to run here.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .charlm import CharLM, cell_update
from .linear_rnn import LinearRNNLM, linear_cell_gates


@dataclass
class Quantity:
    symbol: str  # as a textbook writes it: "f_t = σ(…)"
    meaning: str  # a few words for a learner
    values: torch.Tensor  # (H,): one value per unit of the layer
    kind: str = "value"  # "gate" (in 0..1), "input" (what the step reads) or "value"


@dataclass
class StepArithmetic:
    cell: str
    layer: int  # 0-based
    t: int  # the character read at this step
    quantities: list[Quantity]  # in the order the cell computes them

    def __getitem__(self, symbol: str) -> torch.Tensor:
        return next(q.values for q in self.quantities if q.symbol == symbol)


_LSTM_GATES = [("i", "input gate: how much of the candidate to write", "σ"),
               ("f", "forget gate: how much of the old memory to keep", "σ"),
               ("g", "candidate: new content for the memory", "tanh"),
               ("o", "output gate: how much of the memory to show", "σ")]  # PyTorch's order of the four blocks
_GRU_GATES = [("r", "reset gate: how much of h_(t−1) the candidate may read"),
              ("z", "update gate: how much of h_(t−1) to keep")]


def _split(gi: torch.Tensor, gh: torch.Tensor, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(zip(gi.chunk(count), gh.chunk(count)))


def _classic(cell: str, x: torch.Tensor, h_prev: torch.Tensor, c_prev: torch.Tensor | None,
             w_ih, w_hh, b_ih, b_hh) -> list[Quantity]:
    """The quantities of one step of nn.RNN / nn.LSTM / nn.GRU for one layer; x (E,), h_prev and c_prev (H,)."""
    gi, gh = F.linear(x, w_ih, b_ih), F.linear(h_prev, w_hh, b_hh)  # (G*H,) each, PyTorch's gate order
    h, c, gates = cell_update(cell, gi[None], gh[None], h_prev[None], None if c_prev is None else c_prev[None])
    h, gates = h[0], {name: g[0] for name, g in gates.items()}
    q = [Quantity("h_(t−1)", "the state after the previous character", h_prev, "input")]
    if cell == "rnn":
        return q + [Quantity("W_ih x_t + b_ih", "what the character brings", gi, "value"),
                    Quantity("W_hh h_(t−1) + b_hh", "what the previous state brings", gh, "value"),
                    Quantity("h_t = tanh(sum)", "the new state: the old one is overwritten", h)]
    if cell == "lstm":
        q.append(Quantity("c_(t−1)", "the memory after the previous character", c_prev, "input"))
        names = {"i": "input", "f": "forget", "g": "candidate", "o": "output"}
        for (k, meaning, squash), (a, b) in zip(_LSTM_GATES, _split(gi, gh, 4)):
            q += [Quantity(f"W_i{k} x_t + b_i{k}", f"{k}: from the character", a),
                  Quantity(f"W_h{k} h_(t−1) + b_h{k}", f"{k}: from the previous state", b),
                  Quantity(f"{k}_t = {squash}(sum)", meaning, gates[names[k]], "gate" if squash == "σ" else "value")]
        f, i, g = gates["forget"], gates["input"], gates["candidate"]
        return q + [Quantity("f_t · c_(t−1)", "old memory kept", f * c_prev),
                    Quantity("i_t · g_t", "new memory written", i * g),
                    Quantity("c_t", "the new memory: kept + written", c[0]),
                    Quantity("h_t = o_t · tanh(c_t)", "the new state: part of the memory shown", h)]
    (ir, hr), (iz, hz), (i_n, h_n) = _split(gi, gh, 3)
    names = {"r": "reset", "z": "update"}
    for (k, meaning), (a, b) in zip(_GRU_GATES, [(ir, hr), (iz, hz)]):
        q += [Quantity(f"W_i{k} x_t + b_i{k}", f"{k}: from the character", a),
              Quantity(f"W_h{k} h_(t−1) + b_h{k}", f"{k}: from the previous state", b),
              Quantity(f"{k}_t = σ(sum)", meaning, gates[names[k]], "gate")]
    r, n = gates["reset"], gates["candidate"]
    return q + [Quantity("W_in x_t + b_in", "candidate: from the character", i_n),
                Quantity("r_t · (W_hn h_(t−1) + b_hn)", "candidate: from the previous state, after the reset gate",
                         r * h_n),
                Quantity("n_t = tanh(sum)", "candidate: the proposed new state", n),
                Quantity("h_t = (1 − z_t) n_t + z_t h_(t−1)", "the new state: candidate and old state mixed", h)]


def _linear(model: LinearRNNLM, ids: list[int], t: int, layer: int) -> list[Quantity]:
    """The quantities of one step of a minGRU or RG-LRU layer at character t."""
    record: list[dict] = []
    model(torch.tensor([ids[:t + 1]], dtype=torch.long, device=model.embedding.weight.device), record=record)
    r = {k: v[0] for k, v in record[layer].items()}  # (t+1, ...) each
    u, pre = r["cell_input"][t].float(), r["pre"][t].float()
    h_prev = r["hidden"][t - 1] if t > 0 else torch.zeros_like(u)  # a text starts from the zero state
    mix = model.blocks[layer].mix
    log_decay = F.logsigmoid(mix.decay_logit) if model.config.cell == "rglru" else None
    a, b, gates = linear_cell_gates(model.config.cell, pre, u, log_decay)
    h = torch.addcmul(b, a, h_prev)  # the fast decoder's step
    q = [Quantity("x_t", "the cell's input: the character after the block's norm and convolution", u, "input"),
         Quantity("h_(t−1)", "the state after the previous character", h_prev, "input")]
    if model.config.cell == "mingru":
        z_pre, cand = pre.chunk(2)
        q += [Quantity("W_z x_t + b_z", "update gate, before the sigmoid: it reads only x_t", z_pre),
              Quantity("z_t = σ(…)", "update gate: how much of the candidate to write", gates["update"], "gate"),
              Quantity("h̃_t = W_h x_t + b_h", "candidate, from x_t alone", cand),
              Quantity("(1 − z_t) h_(t−1)", "old state kept", a * h_prev),
              Quantity("z_t h̃_t", "new content written", b)]
    elif model.config.cell == "rglru":
        r_pre, i_pre = pre.chunk(2)
        q += [Quantity("W_r x_t + b_r", "recurrence gate, before the sigmoid", r_pre),
              Quantity("r_t = σ(…)", "recurrence gate: near 1 shortens the memory", gates["recurrence"], "gate"),
              Quantity("W_i x_t + b_i", "input gate, before the sigmoid", i_pre),
              Quantity("i_t = σ(…)", "input gate: how much of x_t to let in", gates["input"], "gate"),
              Quantity("a_t = σ(Λ)^(8 r_t)", "decay: share of the old state kept", a, "gate"),
              Quantity("a_t h_(t−1)", "old state kept", a * h_prev),
              Quantity("√(1 − a_t²) (i_t x_t)", "new content written", b)]
    else:
        raise ValueError(f"no arithmetic view for the {model.config.cell} cell")
    return q + [Quantity("h_t", "the new state: kept + written", h)]


@torch.no_grad()
def cell_arithmetic(model, ids: list[int], t: int, layer: int = 0) -> StepArithmetic:
    """Every quantity of ``layer``'s cell (0-based) while it reads character ``t`` of ``ids``, for all units."""
    if not 0 <= t < len(ids):
        raise ValueError(f"the character index must be between 0 and {len(ids) - 1}")
    if not 0 <= layer < model.config.num_layers:
        raise ValueError(f"the layer must be between 0 and {model.config.num_layers - 1}")
    if isinstance(model, LinearRNNLM):
        return StepArithmetic(model.config.cell, layer, t, _linear(model, ids, t, layer))
    if not isinstance(model, CharLM):
        raise ValueError("a Transformer has no recurrent cell: pick a recurrent model")
    cfg = model.config
    idx = torch.tensor([ids[:t + 1]], dtype=torch.long, device=model.head.weight.device)
    # the states before and after step t, every layer, from the model's own forward (nn.LSTM/GRU/RNN)
    before = model(idx[:, :t]).state if t > 0 else model.init_state(1, idx.device)
    after = model(idx).state
    x = model.embedding(idx[0, t]) if layer == 0 else after[0][layer - 1, 0]  # this layer's input at step t
    c_prev = before[1][layer, 0] if cfg.cell == "lstm" else None
    weights = [getattr(model.rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return StepArithmetic(cfg.cell, layer, t, _classic(cfg.cell, x, before[0][layer, 0], c_prev, *weights))
