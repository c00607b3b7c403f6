"""What happens inside a character language model, computed from the model's own weights.

- ``unroll``: hidden state, cell state (LSTM) and gate values at every step, for every layer, recomputed
  with ``cell_update`` (the arithmetic the fast decoder runs) and checked in the tests against
  ``nn.LSTM``/``nn.GRU``/``nn.RNN`` as the model runs them;
- ``gradient_flow``: the norm of d(loss at the last step) / d(hidden state at step t), by autograd on
  the real model: how much each earlier step can still be "heard" when the model learns (the
  vanishing-gradient problem of Bengio et al. 1994, Pascanu et al. 2013);
- ``input_influence``: the norm of d(loss of one prediction) / d(each earlier character's embedding), the
  "connectivity" of Distill's "Memorization in RNNs" (Madsen 2019): what each prediction still reads;
- ``layer_states``: every layer's states over a long text with PyTorch's own fast kernels;
- ``text_features`` and ``top_correlated_units``: find units whose activation tracks something simple
  in the text (Karpathy, Johnson and Fei-Fei 2015, "Visualizing and understanding recurrent networks");
- ``span_units`` and ``units_together``: the units most active over a span of text, and where else they
  are active together (LSTMVis, Strobelt et al. 2018).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .charlm import CELLS, CharLM, cell_update


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


def _unroll(model: CharLM, ids: torch.Tensor, keep_gates: bool):
    """Layer by layer: all input projections of a layer in one product, then the steps in order."""
    cfg = model.config
    x = model.embedding(ids)  # (T, E)
    hidden, cells, gates = [], [], []
    for layer in range(cfg.num_layers):
        w_ih, w_hh, b_ih, b_hh = _layer_weights(model, layer)
        gi_all = F.linear(x, w_ih, b_ih)  # (T, G*H)
        h = x.new_zeros(1, cfg.hidden_size)
        c = x.new_zeros(1, cfg.hidden_size) if cfg.cell == "lstm" else None
        hs, cs, gs = [], [], {}
        for t in range(ids.size(0)):
            h, c, g = cell_update(cfg.cell, gi_all[t:t + 1], F.linear(h, w_hh, b_hh), h, c)
            hs.append(h)
            if c is not None:
                cs.append(c)
            if keep_gates:
                for name, value in g.items():
                    gs.setdefault(name, []).append(value)
        hidden.append(hs)
        cells.append(cs)
        gates.append({name: torch.cat(v) for name, v in gs.items()})
        x = torch.cat(hs)  # (T, H): the next layer reads this layer's states (dropout is off in eval)
    logits = model.head(x)
    return hidden, cells, gates, logits


@torch.no_grad()
def unroll(model, ids: list[int]) -> Unrolled:
    """Every layer's states and gates over ``ids``, for any character model (``seqmodels.charmodels``).

    The classic cells are recomputed step by step with ``cell_update``; the linear recurrences and the
    Transformer record them during their own forward (their gates come from the input alone, so the
    parallel form computes the same values as generation; the Transformer has no gates, and its "hidden
    state" is each block's output, the residual stream).
    """
    if not isinstance(model, CharLM):
        record: list[dict] = []
        out = model(torch.tensor([ids], dtype=torch.long, device=model.head.weight.device), record=record)
        return Unrolled(hidden=[r["hidden"][0] for r in record], cell=None, logits=out.logits[0],
                        gates=[{k: v[0] for k, v in r.items() if k not in NOT_GATES} for r in record])
    idx = torch.tensor(ids, dtype=torch.long, device=model.head.weight.device)
    hidden, cells, gates, logits = _unroll(model, idx, keep_gates=True)
    return Unrolled(
        hidden=[torch.cat(hs) for hs in hidden],
        cell=[torch.cat(cs) for cs in cells] if model.config.cell == "lstm" else None,
        gates=gates,
        logits=logits,
    )


def gradient_flow(model: CharLM, ids: list[int]) -> tuple[torch.Tensor, float]:
    """Norm of d(loss at the last step)/d(h_t) for every step t, all layers together; and that loss.

    The model reads ids[:-1] and is scored on predicting ids[-1]. Returns norms (T,) with T = len(ids) - 1,
    where norms[t] belongs to the state after reading ids[t] (so the last entry is the nearest step).
    """
    if len(ids) < 2:
        raise ValueError("the gradient flow needs at least two characters")
    was_training = model.training
    model.eval()
    idx = torch.tensor(ids[:-1], dtype=torch.long, device=model.head.weight.device)
    with torch.enable_grad():
        hidden, _, _, logits = _unroll(model, idx, keep_gates=False)
        target = torch.tensor([ids[-1]], device=logits.device)
        loss = F.cross_entropy(logits[-1:], target)
        flat = [h for layer in hidden for h in layer]  # layer-major: T states per layer
        grads = torch.autograd.grad(loss, flat)
    model.train(was_training)
    T = idx.size(0)
    squares = torch.stack([g.pow(2).sum() for g in grads]).view(len(hidden), T).sum(0)  # (T,)
    return squares.sqrt().detach(), loss.item()


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

    was_training = model.training
    model.eval()
    handle = model.embedding.register_forward_hook(leaf)
    try:
        with torch.enable_grad():
            idx = torch.tensor([ids[:t]], dtype=torch.long, device=model.embedding.weight.device)
            logits = model(idx).logits[0, -1:]  # (1, V): the prediction for character t
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp16 up to fp32, fp64 kept
            loss = F.cross_entropy(logits, torch.tensor([ids[t]], device=logits.device))
            grad = torch.autograd.grad(loss, captured["x"])[0]
    finally:
        handle.remove()
        model.train(was_training)
    return grad.reshape(t, -1).norm(dim=1).detach(), loss.item()  # (1, t, E) or time-major (t, 1, H)


@torch.no_grad()
def layer_states(model, ids: list[int]) -> list[torch.Tensor]:
    """Every layer's states (T, H) over ``ids``: the same values as ``unroll(...).hidden``, faster on long texts.

    ``nn.LSTM`` returns only its last layer's outputs, so each layer of a classic model runs as a one-layer
    module of its own that shares that layer's weights (PyTorch's fused kernel, not a Python loop over steps).
    """
    if not isinstance(model, CharLM):
        return unroll(model, ids).hidden
    cfg = model.config
    x = model.embedding(torch.tensor([ids], dtype=torch.long, device=model.head.weight.device))  # (1, T, E)
    states = []
    for layer in range(cfg.num_layers):
        one = CELLS[cfg.cell](x.size(-1), cfg.hidden_size, 1, batch_first=True, device="meta")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(one, f"{name}_l0", getattr(model.rnn, f"{name}_l{layer}"))
        x = one(x)[0]  # (1, T, H)
        states.append(x[0])
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
