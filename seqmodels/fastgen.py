"""Fast single-stream decoding of the character models on the CPU (``fast_stepper`` picks the path).

Stepping ``nn.LSTM`` with one character at a time is slow on the CPU: every call goes through the
general multi-layer RNN kernel, which re-packs its weights, for a (1, 1, E) input. ``FastCharLM`` does
the same arithmetic cell by cell, with the weights packed once:

- layer 0's input projection is folded into the embedding: ``embedding @ W_ih0.T + biases`` is a
  (V, gates*H) table, so reading a character costs one row lookup instead of a matrix product;
- the two biases of every layer are summed once (for the GRU the hidden "new gate" bias stays apart,
  because the reset gate multiplies it);
- optionally, the matrices are quantised to int8 (per output channel, dynamic activations), which
  quarters the bytes read per character; ``bench/generate_speed.py`` measures both and the loss change;
- the int8 step is compiled with TorchScript: one character costs some 40 small tensor calls, and the
  Python interpreter's overhead per call was half the time (measured: 2.2x faster steps).

It implements the same ``start``/``step`` contract as ``CharLM`` (see ``seqmodels.decoding``) and keeps
the same state layout, so states move freely between the two. ``FastLinearRNN`` does the same for the
linear recurrences, and ``FastTransformer`` for the Transformer, whose cache it keeps in a ring instead.
"""
from __future__ import annotations

import warnings
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .charlm import CharLM, State, cell_update
from .int8 import int8_copy
from .linear_rnn import LinearRNNLM, linear_cell_step
from .native import native_step
from .transformer import TransformerLM


def _pack_int8(weight: torch.Tensor, bias: torch.Tensor | None):
    """fbgemm's packed int8 weight, one scale per output row (symmetric: zero points are 0)."""
    scale = weight.abs().amax(dim=1).clamp_min(1e-8) / 127.0
    zero = torch.zeros(weight.size(0), dtype=torch.long)
    with warnings.catch_warnings():
        # torch marks quantized tensors deprecated; the packed kernels are still its fastest CPU matvec,
        # and the caller falls back to fp32 when they are gone
        warnings.simplefilter("ignore", UserWarning)
        qw = torch.quantize_per_channel(weight, scale, zero, axis=0, dtype=torch.qint8)
        return torch.ops.quantized.linear_prepack(qw, bias)


class _Linear:
    """y = x @ W.T + b, in fp32 or with an int8 per-channel fbgemm-packed weight."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, quantize: bool):
        self.weight = weight.float().contiguous()
        self.bias = bias.float().contiguous() if bias is not None else None
        self.quantized = False
        if quantize and "fbgemm" in torch.backends.quantized.supported_engines:
            try:
                self.packed = _pack_int8(self.weight, self.bias)
                self.quantized = True
                self.weight = self.bias = None  # the packed copy replaces them
            except (AttributeError, RuntimeError):  # a torch without the quantized ops: stay in fp32
                pass

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.quantized:
            return torch.ops.quantized.linear_dynamic(x, self.packed, True)  # reduce_range for fbgemm
        return F.linear(x, self.weight, self.bias)


def _int8_step_eager(cell: str, tokens: torch.Tensor, hs: torch.Tensor, cs: Optional[torch.Tensor], table: torch.Tensor,
               ih: List[torch.classes.quantized.LinearPackedParamsBase],
               hh: List[torch.classes.quantized.LinearPackedParamsBase],
               head: torch.classes.quantized.LinearPackedParamsBase) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """FastCharLM.step with every matrix in int8, compiled; ih[l - 1] is layer l's input matrix."""
    new_h: List[torch.Tensor] = []
    new_c: List[torch.Tensor] = []
    x = table[tokens]  # layer 0's input projection, biases included
    for layer in range(hs.size(0)):
        gi = x if layer == 0 else torch.ops.quantized.linear_dynamic(x, ih[layer - 1], True)
        gh = torch.ops.quantized.linear_dynamic(hs[layer], hh[layer], True)
        c_in: Optional[torch.Tensor] = None
        if cs is not None:
            c_in = cs[layer]
        h, c, _ = cell_update(cell, gi, gh, hs[layer], c_in)
        new_h.append(h)
        if c is not None:
            new_c.append(c)
        x = h
    logits = torch.ops.quantized.linear_dynamic(x, head, True)
    return logits, torch.stack(new_h), torch.stack(new_c) if len(new_c) > 0 else None


def _compile(fn):
    """TorchScript ``fn``; if this torch can no longer script it, run it as plain Python (slower, same result)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, not gone; see the docstring
            return torch.jit.script(fn)
    except Exception:  # noqa: BLE001 - any scripting failure means the same fallback
        return fn


_int8_step = _compile(_int8_step_eager)


class FastCharLM:
    """A CharLM repacked for decoding; inference only, batch of any size, CPU or GPU."""

    def __init__(self, model: CharLM, quantize: bool = False):
        cfg = model.config
        self.config = cfg
        self.cell = cfg.cell
        rnn = model.rnn
        with torch.no_grad():
            b0 = rnn.bias_ih_l0.detach().clone()
            if self.cell != "gru":
                b0 += rnn.bias_hh_l0.detach()
            # (V, E) @ (E, G*H) -> (V, G*H): layer 0's input projection for every character at once
            self.table = (model.embedding.weight @ rnn.weight_ih_l0.T + b0).float().contiguous()
            self.ih: list[_Linear | None] = [None]  # layer 0 uses the table
            self.hh: list[_Linear] = []
            for layer in range(cfg.num_layers):
                w_ih = getattr(rnn, f"weight_ih_l{layer}").detach()
                w_hh = getattr(rnn, f"weight_hh_l{layer}").detach()
                b_ih = getattr(rnn, f"bias_ih_l{layer}").detach()
                b_hh = getattr(rnn, f"bias_hh_l{layer}").detach()
                if self.cell == "gru":
                    # GRU: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), so b_hh stays with W_hh
                    in_bias, hh_bias = b_ih, b_hh
                else:
                    in_bias, hh_bias = b_ih + b_hh, None
                if layer > 0:
                    self.ih.append(_Linear(w_ih, in_bias, quantize))
                self.hh.append(_Linear(w_hh, hh_bias, quantize))
            self.head = _Linear(model.head.weight.detach(), model.head.bias.detach(), quantize)
        # the compiled int8 step needs every matrix packed (fbgemm present and the ops available)
        self.compiled = all(m.quantized for m in [*self.ih[1:], *self.hh, self.head])
        if self.compiled:
            self._packed = ([m.packed for m in self.ih[1:]], [m.packed for m in self.hh], self.head.packed)
        self._source = model  # the prompt is read with the model's own forward (one call for all of it)

    def start(self, prompt_ids: list[int]) -> tuple[torch.Tensor, State]:
        return self._source.start(prompt_ids)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens (B,) -> logits (B, V), new state; the same arithmetic as nn.LSTM/GRU/RNN."""
        if self.compiled:
            logits, hs, cs = _int8_step(self.cell, tokens, state[0], state[1] if self.cell == "lstm" else None,
                                        self.table, *self._packed)
            return logits, ((hs, cs) if cs is not None else (hs,))
        # The same layer loop as _int8_step_eager, over _Linear objects: TorchScript cannot take a list of
        # callables, so the compiled int8 loop and this fp32 (or fallback) loop stay two short functions.
        hs = state[0]  # (L, B, H)
        cs = state[1] if self.cell == "lstm" else None
        new_h, new_c = [], []
        x = None
        for layer, (ih, hh) in enumerate(zip(self.ih, self.hh)):
            gi = self.table[tokens] if layer == 0 else ih(x)  # (B, G*H), input biases included
            h = hs[layer]
            gh = hh(h)  # (B, G*H)
            h, c, _ = cell_update(self.cell, gi, gh, h, cs[layer] if cs is not None else None)
            if c is not None:
                new_c.append(c)
            new_h.append(h)
            x = h
        logits = self.head(x)
        hs = torch.stack(new_h)
        return logits, ((hs, torch.stack(new_c)) if self.cell == "lstm" else (hs,))


def _apply(x: torch.Tensor, i: int, weights: List[torch.Tensor], biases: List[torch.Tensor],
           packed: List[torch.classes.quantized.LinearPackedParamsBase]) -> torch.Tensor:
    """Linear number ``i``: int8 (fbgemm) when packed, else fp32."""
    if len(packed) > 0:
        return torch.ops.quantized.linear_dynamic(x, packed[i], True)
    return F.linear(x, weights[i], biases[i])


def _linear_rnn_step_eager(cell: str, tokens: torch.Tensor, hs: torch.Tensor, convs: torch.Tensor,
                           embedding: torch.Tensor, norms: List[torch.Tensor], conv: List[torch.Tensor],
                           log_decay: List[torch.Tensor], weights: List[torch.Tensor], biases: List[torch.Tensor],
                           packed: List[torch.classes.quantized.LinearPackedParamsBase],
                           gelu: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FastLinearRNN.step, compiled. Linears: per layer gates, out, up, down, then the head (int8 where
    ``packed`` holds them); norms: per layer (w1, b1, w2, b2), then the final norm's (w, b); log_decay: per
    layer for the RG-LRU, else empty; ``gelu``: F.gelu's ``approximate`` ("none" or "tanh")."""
    H = embedding.size(1)
    x = embedding[tokens]  # (B, H)
    new_h: List[torch.Tensor] = []
    new_conv: List[torch.Tensor] = []
    for layer in range(hs.size(0)):
        n = F.layer_norm(x, [H], norms[4 * layer], norms[4 * layer + 1])
        window = torch.cat([convs[layer], n.unsqueeze(1)], dim=1)  # (B, k, H), oldest first
        u = (window * conv[layer]).sum(dim=1)
        decay: Optional[torch.Tensor] = None
        if len(log_decay) > 0:
            decay = log_decay[layer]
        h = linear_cell_step(cell, _apply(u, 4 * layer, weights, biases, packed), u, decay, hs[layer])
        x = x + _apply(h, 4 * layer + 1, weights, biases, packed)
        m = F.layer_norm(x, [H], norms[4 * layer + 2], norms[4 * layer + 3])
        up = _apply(m, 4 * layer + 2, weights, biases, packed)
        x = x + _apply(F.gelu(up, approximate=gelu), 4 * layer + 3, weights, biases, packed)
        new_h.append(h)
        new_conv.append(window[:, 1:])
    x = F.layer_norm(x, [H], norms[-2], norms[-1])
    return _apply(x, 4 * hs.size(0), weights, biases, packed), torch.stack(new_h), torch.stack(new_conv)


_linear_rnn_step = _compile(_linear_rnn_step_eager)


def _block_weights(model, mixer, quantize: bool) -> tuple[bool, list, list, list, list, str]:
    """What a compiled step of a pre-norm block stack reads: (quantized, norm weights and biases, Linear weights,
    biases, int8 packs, GELU form). Linears per block: ``mixer(block)``'s two, the MLP's up and down, then the
    head; int8 only if every one packs, and then the MLP's GELU in its tanh form (see ``FastLinearRNN``)."""
    linears = [m for block in model.blocks for m in (*mixer(block), block.mlp.up, block.mlp.down)] + [model.head]
    norms = [n for block in model.blocks for n in (block.norm1, block.norm2)] + [model.norm]
    with torch.no_grad():
        packed = [_Linear(m.weight.detach(), m.bias.detach(), quantize) for m in linears]
        quantized = quantize and all(m.quantized for m in packed)
        return (quantized, [t.detach().float() for n in norms for t in (n.weight, n.bias)],
                [m.weight.detach().float().contiguous() for m in linears],
                [m.bias.detach().float().contiguous() for m in linears],
                [m.packed for m in packed] if quantized else [], "tanh" if quantized else "none")


class FastLinearRNN:
    """A LinearRNNLM repacked for decoding one character at a time (inference only, any batch size).

    One step of a linear recurrence needs no scan: h = a * h + b. This class runs that step as one
    TorchScript function (``_linear_rnn_step``) over weights gathered once (int8 with ``quantize``), the
    convolution as one multiply-add over its window, with no autograd machinery; the model's own step goes
    through the training code, built for T characters. The prompt is read by the model's parallel form,
    and the state layout is the model's.

    With int8 weights the MLP's GELU is its tanh form: aten's exact (erf) GELU took 10-30 us on one
    character's 624 numbers, the tanh form 3-5 us, and eight layers run eight of them per character. The two
    differ by under 0.001 per unit, far below what int8 weights already change; ``bench/generate_speed.py``
    measures the loss of the path as shipped. fp32 weights keep the exact GELU: that path reproduces the
    model's own forward.

    With int8 weights, where the machine has a C compiler and AVX2 or AVX-512 VNNI, the step is one C call
    instead (``seqmodels.native``: about 4x faster for the shipped minGRU); ``kernel`` says which step runs.
    """

    def __init__(self, model: LinearRNNLM, quantize: bool = False):
        self.config = cfg = model.config
        self._source = model
        quantized, norms, *linears = _block_weights(model, lambda block: (block.mix.gates, block.mix.out), quantize)
        with torch.no_grad():
            self._args = (
                model.embedding.weight.detach().float().contiguous(), norms,
                [block.mix.conv.detach().float() for block in model.blocks],
                [F.logsigmoid(block.mix.decay_logit.detach()) for block in model.blocks] if cfg.cell == "rglru" else [],
                *linears,
            )
        self._native = native_step(model) if quantized else None
        self.kernel = self._native.kernel if self._native is not None else ("TorchScript" if quantized else "fp32")

    def start(self, prompt_ids: list[int]) -> tuple[torch.Tensor, State]:
        return self._source.start(prompt_ids)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens (B,) -> logits (B, V), new state; the arithmetic of LinearRNNLM.forward for one character."""
        if self._native is not None:
            logits, hs, convs = self._native(tokens, state[0], state[1])
            return logits, (hs, convs)
        logits, hs, convs = _linear_rnn_step(self.config.cell, tokens, state[0], state[1], *self._args)
        return logits, (hs, convs)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``transformer.rotate`` for one position whose cos and sin (D/2,) are given."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


def _transformer_step_eager(tokens: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, slot: int,
                            visible: Optional[torch.Tensor], cos: torch.Tensor, sin: torch.Tensor, heads: int,
                            embedding: torch.Tensor, norms: List[torch.Tensor], weights: List[torch.Tensor],
                            biases: List[torch.Tensor],
                            packed: List[torch.classes.quantized.LinearPackedParamsBase], gelu: str) -> torch.Tensor:
    """FastTransformer.step, compiled: writes this character's turned key and its value into ``slot`` of every
    layer's ring and attends over the slots ``visible`` marks (all of them when None). Linears per layer: qkv,
    out, up, down, then the head; norms as in ``_linear_rnn_step_eager``."""
    B, C = tokens.size(0), embedding.size(1)
    D = C // heads
    x = embedding[tokens]  # (B, C)
    for layer in range(keys.size(0)):
        n = F.layer_norm(x, [C], norms[4 * layer], norms[4 * layer + 1])
        q, k, v = _apply(n, 4 * layer, weights, biases, packed).view(B, 3, heads, D).unbind(1)  # 3 x (B, h, D)
        keys[layer, :, :, slot] = _rope(k, cos, sin)
        values[layer, :, :, slot] = v
        y = F.scaled_dot_product_attention(_rope(q, cos, sin).unsqueeze(2), keys[layer], values[layer],
                                           attn_mask=visible).squeeze(2)  # (B, h, D)
        x = x + _apply(y.reshape(B, C), 4 * layer + 1, weights, biases, packed)
        m = F.layer_norm(x, [C], norms[4 * layer + 2], norms[4 * layer + 3])
        x = x + _apply(F.gelu(_apply(m, 4 * layer + 2, weights, biases, packed), approximate=gelu), 4 * layer + 3,
                       weights, biases, packed)
    x = F.layer_norm(x, [C], norms[-2], norms[-1])
    return _apply(x, 4 * keys.size(0), weights, biases, packed)


_transformer_step = _compile(_transformer_step_eager)


class FastTransformer:
    """A TransformerLM repacked for decoding one character at a time (inference only, any batch size).

    The model's own step (its forward on one character) rebuilt its key/value cache every character: a
    concatenation of the whole window, every cached key turned by RoPE again, the cache copied out; 4.9 ms
    a character here with int8 weights, 40% of it in ``torch.cat``. This step keeps each layer's window in
    a ring of ``context`` slots, written in place: the slot of position p is p mod ``context``. Keys are
    stored turned by RoPE at their own position, so attention reads them as they are; RoPE's scores depend
    only on the distance between positions, so this gives the model's numbers wherever the positions start
    (angles in float64, so none drifts however long the text). Attention over one query is one
    ``scaled_dot_product_attention`` call (38 us a layer for a full window here; two ``matmul`` calls took
    103 us, batched matrix-vector products being slow on the CPU), and the step is TorchScript over weights
    gathered once (int8 with ``quantize``; GELU in its tanh form then, as in ``FastLinearRNN``).

    The state is (keys, values, position): the rings, each (num_layers, B, heads, context, head_dim), and
    the number of characters read. ``step`` writes into the rings it is given, so a state is used once, as
    ``seqmodels.decoding.generate`` does; the prompt is read by the model's own forward and moved into
    rings. The rings have all their slots from the start: the memory a stream needs is the model's
    state, which ``bench/generate_speed.py`` reports.
    """

    def __init__(self, model: TransformerLM, quantize: bool = False):
        self.config = cfg = model.config
        self._source = model
        head_dim = cfg.hidden_size // cfg.num_heads
        self._inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        quantized, norms, *linears = _block_weights(model, lambda block: (block.attn.qkv, block.attn.out), quantize)
        self._args = (cfg.num_heads, model.embedding.weight.detach().float().contiguous(), norms, *linears)
        self.kernel = "TorchScript" if quantized else "fp32"

    def _turn(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angle = positions.double()[:, None] * self._inv_freq  # (T, D/2)
        return angle.cos().float(), angle.sin().float()

    @torch.inference_mode()
    def start(self, prompt_ids: list[int]) -> tuple[torch.Tensor, State]:
        logits, (k, v) = self._source.start(prompt_ids)  # (L, B, h, S, D) each, unrotated, oldest first
        L, B, H, S, D = k.shape
        keys = torch.zeros(L, B, H, self.config.context, D)
        values = torch.zeros_like(keys)
        cos, sin = self._turn(torch.arange(S))  # the oldest cached character is position 0
        keys[:, :, :, :S] = _rope(k, cos, sin)
        values[:, :, :, :S] = v
        return logits, (keys, values, torch.tensor(S))

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens (B,) -> logits (B, V), new state; the arithmetic of TransformerLM.forward for one character."""
        keys, values, position = state
        p, window = int(position), self.config.context
        cos, sin = self._turn(torch.tensor([p]))
        # until the window fills, a mask hides its empty slots: the shapes stay the same every step, which
        # TorchScript needs to stay fast (slices growing by one each step ran at half the speed)
        visible = (torch.arange(window) <= p)[None] if p + 1 < window else None  # (1 query, window)
        logits = _transformer_step(tokens, keys, values, p % window, visible, cos[0], sin[0], *self._args)
        return logits, (keys, values, torch.tensor(p + 1))


def fast_stepper(model, quantize: bool = False):
    """The fastest ``Stepper`` for any character model (``seqmodels.charmodels``).

    The classic cells get ``FastCharLM``, the linear recurrences ``FastLinearRNN``, the Transformer
    ``FastTransformer``; every matrix in int8 when ``quantize``.
    ``bench/generate_speed.py`` measures the speed and the loss change of each.
    """
    if isinstance(model, CharLM):
        return FastCharLM(model, quantize=quantize)
    if isinstance(model, LinearRNNLM):
        return FastLinearRNN(model, quantize=quantize)
    if isinstance(model, TransformerLM):
        return FastTransformer(model, quantize=quantize)
    return int8_copy(model).eval() if quantize else model
