"""What happens inside a character language model, computed from the model's own weights.

- ``unroll``: hidden state, cell state (LSTM) and gate values at every step, for every layer: the states from
  PyTorch's fused kernel, the gates recomputed from them with ``cell_update`` (the arithmetic the fast decoder
  runs), checked in the tests against ``nn.LSTM``/``nn.GRU``/``nn.RNN`` and against ``cell_update`` step by step;
- ``gradient_flow``: the norm of d(loss at the last step) / d(hidden state at step t), by backpropagation
  through time written out for the real model (equal to autograd's, by test; for a linear recurrence, autograd
  through each layer's output and the recurrence run backwards): how much each earlier step can still be "heard"
  when the model learns (the vanishing-gradient problem of Bengio et al. 1994, Pascanu et al. 2013);
- ``input_influence``: the norm of d(loss of one prediction) / d(each earlier character's embedding), the
  "connectivity" of Distill's "Memorization in RNNs" (Madsen 2019): what each prediction still reads;
- ``layer_states``: every layer's states over a long text with PyTorch's own fast kernels;
- ``text_features`` and ``top_correlated_units``: find units whose activation tracks something simple
  in the text (Karpathy, Johnson and Fei-Fei 2015, "Visualizing and understanding recurrent networks");
- ``span_units`` and ``units_together``: the units most active over a span of text, and where else they
  are active together (LSTMVis, Strobelt et al. 2018).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .charlm import CELLS, CharLM, cell_update
from .scan import linear_scan


NOT_GATES = {"hidden", "cell_input", "pre"}  # what a linear recurrence records besides its gates


@dataclass
class Unrolled:
    hidden: list[torch.Tensor]  # per layer, (T, H): the state after reading each character
    cell: list[torch.Tensor] | None  # LSTM only, per layer, (T, H)
    gates: list[dict[str, torch.Tensor]]  # per layer: gate name -> (T, H)
    logits: torch.Tensor  # (T, V): the prediction for the character after each one


def _layer_weights(model: CharLM, layer: int):
    rnn = model.rnn
    return tuple(getattr(rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _layer_forward(model: CharLM, layer: int, x: torch.Tensor) -> torch.Tensor:
    """One layer's states (T, H) over its inputs ``x`` (T, E or H), by PyTorch's fused kernel.

    ``nn.LSTM`` returns only its last layer's outputs, so the layer runs as a one-layer module of its own that
    shares that layer's weights (one layer: no dropout, whatever the mode). The kernel runs the steps without
    holding Python's lock, which a Python loop over the steps held throughout (what a busy server waited on).
    """
    one = CELLS[model.config.cell](x.size(-1), model.config.hidden_size, 1, batch_first=True, device="meta")
    for name, weight in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), _layer_weights(model, layer)):
        setattr(one, f"{name}_l0", weight)
    return one(x[None])[0][0]


def _lstm_cell_states(forget: torch.Tensor, written: torch.Tensor) -> torch.Tensor:
    """c_t = f_t * c_(t-1) + i_t * g_t for every step (T, H), from c_0 = 0; ``written`` is i_t * g_t.

    The one part of the unrolling left to a pass over the steps, one fused op of H numbers each. (Solving
    h_t = o_t * tanh(c_t) for c_t would need atanh, which loses the digits of a saturated unit.)
    """
    cell = torch.empty_like(written)
    c = written.new_zeros(written.size(1))
    for f, w, out in zip(forget.unbind(), written.unbind(), cell.unbind()):
        c = torch.addcmul(w, f, c, out=out)
    return cell


def _unroll(model: CharLM, ids: torch.Tensor) -> Unrolled:
    """Layer by layer: the states from PyTorch's kernel, then every step's gates at once from h_(t-1)."""
    cfg = model.config
    x = model.embedding(ids)  # (T, E)
    hidden, cells, gates = [], [], []
    for layer in range(cfg.num_layers):
        h = _layer_forward(model, layer, x)  # (T, H)
        g = {}
        if cfg.cell != "rnn":  # a plain RNN has no gates
            w_ih, w_hh, b_ih, b_hh = _layer_weights(model, layer)
            h_prev = torch.cat([h.new_zeros(1, cfg.hidden_size), h[:-1]])  # (T, H): h_(t-1), zero before the first
            # the T steps as one batch of cell_update: given both projections its gates need nothing else (an LSTM's
            # c_(t-1) enters only the c_t and h_t it returns, which the zeros here make wrong and are dropped)
            c_unknown = torch.zeros_like(h) if cfg.cell == "lstm" else None
            _, _, g = cell_update(cfg.cell, F.linear(x, w_ih, b_ih), F.linear(h_prev, w_hh, b_hh), h_prev, c_unknown)
        if cfg.cell == "lstm":
            cells.append(_lstm_cell_states(g["forget"], g["input"] * g["candidate"]))
        hidden.append(h)
        gates.append(g)
        x = h  # the next layer reads this layer's states (dropout is off in eval)
    return Unrolled(hidden=hidden, cell=cells if cfg.cell == "lstm" else None, gates=gates, logits=model.head(x))


@torch.no_grad()
def unroll(model, ids: list[int]) -> Unrolled:
    """Every layer's states and gates over ``ids``, for any character model (``seqmodels.charmodels``).

    The classic cells' states come from PyTorch's kernel and their gates from ``cell_update``; the linear
    recurrences and the Transformer record them during their own forward (their gates come from the input alone,
    so the parallel form computes the same values as generation; the Transformer has no gates, and its "hidden
    state" is each block's output, the residual stream).
    """
    if not isinstance(model, CharLM):
        record: list[dict] = []
        out = model(torch.tensor([ids], dtype=torch.long, device=model.head.weight.device), record=record)
        return Unrolled(hidden=[r["hidden"][0] for r in record], cell=None, logits=out.logits[0],
                        gates=[{k: v[0] for k, v in r.items() if k not in NOT_GATES} for r in record])
    return _unroll(model, torch.tensor(ids, dtype=torch.long, device=model.head.weight.device))


# The three loops below are the part of backpropagation through time that must go step by step, from the last
# step: each step is one matrix-vector product with W_hh and one to three products of vectors, on rows that are
# unbound once beforehand (indexing a row inside the loop was a call of its own, and most of the loop's overhead).

def _lstm_steps(w_t: torch.Tensor, from_above: torch.Tensor, to_c: torch.Tensor, from_c: torch.Tensor,
                to_o: torch.Tensor, f_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d loss/d h_t (T, H), d loss/d pre_t (T, 4H)) of an LSTM layer; the arguments as named in the caller."""
    T, H = from_above.shape
    dh = from_above.new_zeros(T + 1, H)  # row t: d loss/d h_t; row T stays zero (nothing after the last step)
    dc = from_above.new_zeros(T + 1, H)
    dpre = from_above.new_zeros(T + 1, 4, H)  # d loss/d (gi + gh) in PyTorch's order i, f, g, o
    dh_, dc_, dpre_ = dh.unbind(0), dc.unbind(0), dpre.view(T + 1, 4 * H).unbind(0)
    dpre_ifg, dpre_o = dpre[:, :3].unbind(0), dpre[:, 3].unbind(0)
    above, to_c_, from_c_, to_o_, f_next_ = (x.unbind(0) for x in (from_above, to_c, from_c, to_o, f_next))
    for t in range(T - 1, -1, -1):
        torch.addmv(above[t], w_t, dpre_[t + 1], out=dh_[t])
        torch.addcmul(dh_[t] * to_c_[t], dc_[t + 1], f_next_[t], out=dc_[t])
        torch.mul(dc_[t], from_c_[t], out=dpre_ifg[t])
        torch.mul(dh_[t], to_o_[t], out=dpre_o[t])
    return dh[:T], dpre[:T].view(T, 4 * H)


def _gru_steps(w_t: torch.Tensor, from_above: torch.Tensor, to_gh: torch.Tensor,
               z_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d loss/d h_t (T, H), d loss/d gh_t (T, 3, H)) of a GRU layer; the arguments as named in the caller."""
    T, H = from_above.shape
    dh = from_above.new_zeros(T + 1, H)
    dgh = from_above.new_zeros(T + 1, 3, H)
    dh_, dgh_, dgh_flat = dh.unbind(0), dgh.unbind(0), dgh.view(T + 1, 3 * H).unbind(0)
    above, to_gh_, z_next_ = from_above.unbind(0), to_gh.unbind(0), z_next.unbind(0)
    for t in range(T - 1, -1, -1):
        torch.addcmul(above[t], dh_[t + 1], z_next_[t], out=dh_[t])
        dh_[t].addmv_(w_t, dgh_flat[t + 1])
        torch.mul(dh_[t], to_gh_[t], out=dgh_[t])
    return dh[:T], dgh[:T]


def _rnn_steps(w_t: torch.Tensor, from_above: torch.Tensor, slope: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d loss/d h_t (T, H), d loss/d pre_t (T, H)) of a plain RNN layer; ``slope`` is tanh' at every step."""
    T, H = from_above.shape
    dh = from_above.new_zeros(T + 1, H)
    dpre = from_above.new_zeros(T + 1, H)
    dh_, dpre_, above, slope_ = dh.unbind(0), dpre.unbind(0), from_above.unbind(0), slope.unbind(0)
    for t in range(T - 1, -1, -1):
        torch.addmv(above[t], w_t, dpre_[t + 1], out=dh_[t])
        torch.mul(dh_[t], slope_[t], out=dpre_[t])
    return dh[:T], dpre[:T]




def _backward_through_time(cell: str, w_hh: torch.Tensor, b_hh: torch.Tensor, hidden: torch.Tensor,
                           cell_state: torch.Tensor | None, gates: dict[str, torch.Tensor],
                           from_above: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Backpropagation through time over one layer, written out: (d loss/d h_t (T, H), d loss/d gi_t (T, G*H)).

    ``hidden`` (T, H), ``cell_state`` (LSTM) and ``gates`` are the layer's forward values, ``from_above`` (T, H) the
    part of d loss/d h_t that arrives through the layer above (or the head); gi_t = W_ih x_t + b_ih, so the layer
    below gets d loss/d gi @ W_ih. Everything that does not depend on the incoming gradient is computed here for all
    steps at once; the loop over the steps (``_lstm_steps``, ``_gru_steps``, ``_rnn_steps``) is left with two to four
    calls per step. Most of its time is the matrix-vector product, which reads all of W_hh at every step (4 MB for
    the shipped LSTM): compiling the loops with TorchScript saved only 4-10% more, so they stay plain Python. The
    same arithmetic autograd runs on the unrolled graph (a test compares them), without the ~20 graph nodes per step
    and character that made autograd's pass take most of a second.
    """
    T, H = hidden.shape
    h_prev = torch.cat([hidden.new_zeros(1, H), hidden[:-1]])  # (T, H): h_(t-1), zero before the first step
    w_t = w_hh.t()  # (H, G*H): d(W_hh h)/dh applied to a vector
    if cell == "lstm":
        i, f, g, o = gates["input"], gates["forget"], gates["candidate"], gates["output"]
        c_prev = torch.cat([hidden.new_zeros(1, H), cell_state[:-1]])
        tanh_c = torch.tanh(cell_state)
        to_c = o * (1 - tanh_c ** 2)  # d h_t/d c_t
        from_c = torch.stack([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g ** 2)], dim=1)  # (T, 3, H): d c_t/d pre
        to_o = tanh_c * o * (1 - o)  # d h_t/d (output gate's pre-activation)
        f_next = torch.cat([f[1:], hidden.new_zeros(1, H)])  # f_(t+1): how much of c_t the next step keeps
        return _lstm_steps(w_t, from_above, to_c, from_c, to_o, f_next)
    if cell == "gru":
        r, z, n = gates["reset"], gates["update"], gates["candidate"]
        gh_n = F.linear(h_prev, w_hh[2 * H:], b_hh[2 * H:])  # W_hn h_(t-1) + b_hn, which the reset gate scales
        to_n = (1 - z) * (1 - n ** 2)  # d h_t/d (candidate's pre-activation)
        to_z = (h_prev - n) * z * (1 - z)
        to_r = to_n * gh_n * r * (1 - r)
        to_gh = torch.stack([to_r, to_z, to_n * r], dim=1)  # (T, 3, H): d h_t/d gh_t, gh = W_hh h_(t-1) + b_hh
        z_next = torch.cat([z[1:], hidden.new_zeros(1, H)])  # z_(t+1): how much of h_t the next step keeps as is
        dh, _ = _gru_steps(w_t, from_above, to_gh, z_next)
        dgi = dh[:, None] * torch.stack([to_r, to_z, to_n], dim=1)  # (T, 3, H): gi's candidate part is not reset
        return dh, dgi.view(T, 3 * H)
    return _rnn_steps(w_t, from_above, 1 - hidden ** 2)  # tanh' = 1 - h^2


@contextmanager
def _probed(model, modules, hook, pre: bool = False):
    """``model`` in eval mode with gradients on, and ``hook`` on each of ``modules`` for the forward passes this
    thread runs: the app reads one shared model for several requests at once, and a plain hook saw (and swapped)
    every thread's tensors."""
    me, was_training = threading.get_ident(), model.training

    def mine(*args):
        return hook(*args) if threading.get_ident() == me else None

    handles = [m.register_forward_pre_hook(mine) if pre else m.register_forward_hook(mine) for m in modules]
    model.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


# what multiplies the state's gradient on its way back one step, h_t = a_t h_(t-1) + b_t, from a recorded layer
LINEAR_DECAY = {"mingru": lambda r: 1 - r["update"], "minlstm": lambda r: r["forget"], "rglru": lambda r: r["decay"]}


def _linear_gradient_flow(model, ids: list[int]) -> tuple[torch.Tensor, float]:
    """``gradient_flow`` for a gated linear recurrence (``LinearRNNLM``), from autograd and one scan backwards.

    Autograd gives d loss/d h_t through what reads the layer's states (its output projection, and so the layers
    above and the later characters); the path through the layer's own later states is linear, d h_(t+1)/d h_t =
    a_(t+1), so the total derivative is g_t + a_(t+1) * (total at t+1): the same recurrence run backwards.
    """
    idx = torch.tensor([ids[:-1]], dtype=torch.long, device=model.head.weight.device)
    states, record = [], []
    with _probed(model, [block.mix.out for block in model.blocks], lambda module, args: states.append(args[0]), True):
        logits = model(idx, record=record).logits[0, -1:]  # record: the torch path, gates by name
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp16 up to fp32, fp64 kept
        loss = F.cross_entropy(logits, torch.tensor([ids[-1]], device=logits.device))
        partial = torch.autograd.grad(loss, states)  # each (T, 1, H): through the layer's output only
    squares = 0
    for through_output, layer in zip(partial, record):
        a = LINEAR_DECAY[model.config.cell](layer)[0].float()  # (T, H); the recurrences run in fp32
        # backwards in time: flip, and step t+1's decay multiplies the total arriving from t+1
        a_back = torch.cat([a[1:], torch.zeros_like(a[:1])]).flip(0)[:, None]
        total = linear_scan(a_back, through_output.float().flip(0), torch.zeros_like(a[:1])).flip(0)
        squares = squares + total.double().pow(2).sum((1, 2))  # see gradient_flow: fp32 squares underflow
    return squares.sqrt().float().detach(), loss.item()


@torch.no_grad()
def gradient_flow(model: CharLM, ids: list[int]) -> tuple[torch.Tensor, float]:
    """Norm of d(loss at the last step)/d(h_t) for every step t, all layers together; and that loss.

    The model reads ids[:-1] and is scored on predicting ids[-1]. Returns norms (T,) with T = len(ids) - 1,
    where norms[t] belongs to the state after reading ids[t] (so the last entry is the nearest step).
    d loss/d h_t is the total derivative autograd would give for h_t of the unrolled network (through the next
    step and through the layer above), computed by ``_backward_through_time`` layer by layer, from the top.
    """
    if len(ids) < 2:
        raise ValueError("the gradient flow needs at least two characters")
    if not isinstance(model, CharLM):
        if getattr(model.config, "cell", None) not in LINEAR_DECAY:
            raise ValueError("a Transformer has no recurrent state to send the gradient back through")
        return _linear_gradient_flow(model, ids)
    was_training = model.training
    model.eval()
    cfg = model.config
    idx = torch.tensor(ids[:-1], dtype=torch.long, device=model.head.weight.device)
    run = _unroll(model, idx)
    model.train(was_training)
    logits = run.logits
    loss = F.cross_entropy(logits[-1:], torch.tensor([ids[-1]], device=logits.device))
    dlogits = logits[-1].softmax(-1)
    dlogits[ids[-1]] -= 1  # d loss/d logits of a cross-entropy: softmax minus the one-hot target
    T = idx.size(0)
    from_above = logits.new_zeros(T, cfg.hidden_size)
    from_above[-1] = dlogits @ model.head.weight  # only the last step's state feeds the scored prediction
    # the squares in fp64: a gradient below 3.7e-23, squared in fp32, is below its smallest number (1.4e-45), and
    # the norm read exactly 0 long before the gradient itself did
    squares = logits.new_zeros(T, dtype=torch.float64)
    for layer in reversed(range(cfg.num_layers)):
        w_ih, w_hh, _, b_hh = _layer_weights(model, layer)
        dh, dgi = _backward_through_time(cfg.cell, w_hh, b_hh, run.hidden[layer],
                                         run.cell[layer] if cfg.cell == "lstm" else None, run.gates[layer], from_above)
        squares += dh.double().pow(2).sum(1)
        from_above = dgi @ w_ih  # (T, H or E): what reaches the layer below's states through this layer's input
    return squares.sqrt().to(torch.promote_types(logits.dtype, torch.float32)), loss.item()  # fp64 kept, fp16 up


def text_features(text: str) -> dict[str, torch.Tensor]:
    """Simple per-character properties of ``text`` (T,), for finding units that track them."""
    feats: dict[str, list[float]] = {name: [] for name in (
        "inside quotes", "position in line", "speaker name line", "inside a word", "space", "vowel",
        "uppercase", "punctuation", "end of line")}
    lines = text.split("\n")
    speaker_lines = [ln.strip().endswith(":") and ln.strip()[:-1].replace(" ", "").isalpha() for ln in lines]
    in_quote, line_no, col = False, 0, 0
    for ch in text:
        if ch in "\"“”":
            in_quote = not in_quote
        feats["inside quotes"].append(float(in_quote))
        feats["position in line"].append(float(col))
        feats["speaker name line"].append(float(speaker_lines[line_no]))
        feats["inside a word"].append(float(ch.isalpha() or ch == "'"))
        feats["space"].append(float(ch == " "))
        feats["vowel"].append(float(ch.lower() in "aeiou"))
        feats["uppercase"].append(float(ch.isupper()))
        feats["punctuation"].append(float(ch in ".,;:!?-"))
        feats["end of line"].append(float(ch == "\n"))
        if ch == "\n":
            line_no, col = line_no + 1, 0
        else:
            col += 1
    return {name: torch.tensor(v) for name, v in feats.items()}


def top_correlated_units(hidden: torch.Tensor, feature: torch.Tensor, k: int = 5) -> list[tuple[int, float]]:
    """The k units of ``hidden`` (T, H) whose activation has the largest |Pearson r| with ``feature`` (T,)."""
    h = hidden - hidden.mean(0)
    f = feature.to(hidden) - feature.to(hidden).mean()
    denom = h.norm(dim=0) * f.norm()
    if f.norm() == 0:  # a constant feature correlates with nothing
        return []
    r = (h * f[:, None]).sum(0) / denom.clamp_min(1e-12)  # (H,)
    order = r.abs().argsort(descending=True)[:k]
    return [(int(u), float(r[u])) for u in order]


def input_influence(model, ids: list[int], t: int) -> tuple[torch.Tensor, float]:
    """Norm of d(loss of predicting ids[t] from ids[:t]) / d(embedding of ids[s]) for s < t, and that loss.

    Any character model: the embedding's output is swapped for a leaf tensor by a forward hook, so autograd
    computes only the path from the inputs to this one prediction, not the weights' gradients.
    Returns norms (t,), norms[s] for the character ids[s].
    """
    if not 1 <= t < len(ids):
        raise ValueError(f"t must be between 1 and {len(ids) - 1}")
    captured = {}

    def leaf(module, args, output):
        captured["x"] = output.detach().requires_grad_()
        return captured["x"]

    with _probed(model, [model.embedding], leaf):
        idx = torch.tensor([ids[:t]], dtype=torch.long, device=model.embedding.weight.device)
        logits = model(idx).logits[0, -1:]  # (1, V): the prediction for character t
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp16 up to fp32, fp64 kept
        loss = F.cross_entropy(logits, torch.tensor([ids[t]], device=logits.device))
        grad = torch.autograd.grad(loss, captured["x"])[0]
    return grad.reshape(t, -1).norm(dim=1).detach(), loss.item()  # (1, t, E) or time-major (t, 1, H)


@torch.no_grad()
def layer_states(model, ids: list[int]) -> list[torch.Tensor]:
    """Every layer's states (T, H) over ``ids``: the same values as ``unroll(...).hidden``, faster on long texts.

    A classic model's layers run through ``_layer_forward`` alone, without the gates and cell states.
    """
    if not isinstance(model, CharLM):
        return unroll(model, ids).hidden
    x = model.embedding(torch.tensor(ids, dtype=torch.long, device=model.head.weight.device))  # (T, E)
    states = []
    for layer in range(model.config.num_layers):
        x = _layer_forward(model, layer, x)  # (T, H)
        states.append(x)
    return states


def _standardised(hidden: torch.Tensor) -> torch.Tensor:
    """Each unit's activation (T, H) in standard deviations from its own mean over the text."""
    return (hidden - hidden.mean(0)) / hidden.std(0).clamp_min(1e-6)


def span_units(hidden: torch.Tensor, start: int, end: int, k: int = 4) -> list[tuple[int, float]]:
    """The k units of ``hidden`` (T, H) most active over steps [start, end) compared with the whole text.

    A unit's score is its mean over the span in standard deviations from its mean over the text; a negative
    score is a unit that is strongly *off* over the span (for a unit, off is as much a signal as on).
    """
    if not 0 <= start < end <= hidden.size(0):
        raise ValueError(f"the span must lie inside the text: 0 <= start < end <= {hidden.size(0)}")
    if hidden.size(0) < 2:
        raise ValueError("the text needs at least two characters")
    score = _standardised(hidden)[start:end].mean(0)  # (H,)
    order = score.abs().argsort(descending=True)[:k]
    return [(int(u), float(score[u])) for u in order]


def units_together(hidden: torch.Tensor, units: list[tuple[int, float]]) -> torch.Tensor:
    """(T,): how strongly ``units`` (from ``span_units``) are active together at each step of ``hidden`` (T, H).

    Each unit's activation in standard deviations from its own mean over this text, signed as over the span;
    the weakest of them is the value, so it is high only where every unit is active at once.
    """
    index = torch.tensor([u for u, _ in units])
    sign = torch.tensor([1.0 if s >= 0 else -1.0 for _, s in units])
    return (_standardised(hidden)[:, index] * sign).min(dim=1).values
