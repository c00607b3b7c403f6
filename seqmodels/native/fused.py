"""A minGRU layer's convolution and gated scan for training, each direction one C pass (``linear_rnn_train.c``).

``LinearRecurrence`` uses these on the CPU when the library builds here; elsewhere (a GPU, no compiler,
``RNN_PLAYGROUND_NATIVE=0``) it runs the same arithmetic as torch operations. Both give the same numbers to
within float rounding (``tests/test_fused_training.py``); ``python bench/train_speed.py`` measures the gain.
The same library's dropout serves every character model (``seqmodels.dropout``).
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from . import FLAGS, load

SOURCE = Path(__file__).with_name("linear_rnn_train.c")
_P, _I = ctypes.c_void_p, ctypes.c_int64
MAX_THREADS = 64  # the C side's cap, MAX_THREADS in linear_rnn_train.c


def library() -> ctypes.CDLL | None:
    """The fused kernels, built for this CPU on first use, or None where they cannot be."""
    return load(tuple(FLAGS), SOURCE)


def threads() -> int:
    """How many threads the kernels split their work over: torch's intra-op count."""
    return torch.get_num_threads()


def _ptr(t: torch.Tensor):
    return _P(t.data_ptr())


def _autocast_bf16() -> bool:
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def _bf(t: torch.Tensor) -> int:
    if t.dtype not in (torch.float32, torch.bfloat16):
        raise TypeError(f"the fused kernels take fp32 or bf16 tensors, not {t.dtype}")
    return int(t.dtype == torch.bfloat16)


class _Conv(torch.autograd.Function):
    """u[t] = sum_j w[j] * padded[t + j], padded = cat(conv0, x); u in bf16 under bf16 autocast (the dtype
    the gate projection that reads it would cast it to), else fp32."""

    @staticmethod
    def forward(ctx, x, conv0, w, bf16: bool):
        x, conv0, w = x.float().contiguous(), conv0.float().contiguous(), w.float().contiguous()
        T, B, H = x.shape
        u = torch.empty(T, B, H, dtype=torch.bfloat16 if bf16 else torch.float32)
        library().conv_forward(_ptr(conv0), _ptr(x), _ptr(w), _ptr(u), _I(T), _I(B), _I(H), _I(w.size(0)),
                               int(bf16), threads())
        ctx.save_for_backward(x, conv0, w)
        return u

    @staticmethod
    def backward(ctx, grad_u):
        x, conv0, w = ctx.saved_tensors
        (T, B, H), k = x.shape, w.size(0)
        grad_u = grad_u.contiguous()
        n_threads = max(1, min(threads(), B, MAX_THREADS))  # as many partial sums as the C side makes
        grad_x, grad_conv0 = torch.empty_like(x), torch.empty_like(conv0)
        grad_w = torch.empty(n_threads, k, H)  # one partial sum per thread
        library().conv_backward(_ptr(conv0), _ptr(x), _ptr(w), _ptr(grad_u), _ptr(grad_conv0), _ptr(grad_x),
                                _ptr(grad_w), _I(T), _I(B), _I(H), _I(k), _bf(grad_u), n_threads)
        return grad_x, grad_conv0, grad_w.sum(0), None


class _MinGRUScan(torch.autograd.Function):
    """h_t = h_(t-1) + sigmoid(pre_z) (cand - h_(t-1)) from pre = [pre_z, cand] (T, B, 2H); h in fp32."""

    @staticmethod
    def forward(ctx, pre, h0):
        pre, h0 = pre.contiguous(), h0.float().contiguous()
        T, B, H2 = pre.shape
        h = torch.empty(T, B, H2 // 2)
        library().mingru_forward(_ptr(pre), _ptr(h0), _ptr(h), _I(T), _I(B), _I(H2 // 2), _bf(pre),
                                 threads())
        ctx.save_for_backward(pre, h0, h)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        pre, h0, h = ctx.saved_tensors
        T, B, H2 = pre.shape
        grad_h = grad_h.float().contiguous()
        grad_pre, grad_h0 = torch.empty_like(pre), torch.empty_like(h0)
        library().mingru_backward(_ptr(pre), _ptr(h0), _ptr(h), _ptr(grad_h), _ptr(grad_pre), _ptr(grad_h0),
                                  _I(T), _I(B), _I(H2 // 2), _bf(pre), threads())
        return grad_pre, grad_h0


def dropout(x: torch.Tensor, seed: int, drop: int) -> torch.Tensor:
    """x with the elements whose byte of the seeded stream is below ``drop`` zeroed and the rest scaled by
    256 / (256 - drop): ``seqmodels.dropout``'s rule. The same seed gives the same mask (its backward pass)."""
    x = x.contiguous()
    out = torch.empty_like(x)
    library().dropout(_ptr(x), _ptr(out), _I(x.numel()), ctypes.c_uint64(seed), drop,
                      ctypes.c_float(256.0 / (256 - drop)), _bf(x), threads())
    return out


def causal_conv(x: torch.Tensor, conv0: torch.Tensor, w: torch.Tensor, fp32: bool = False) -> torch.Tensor:
    """x (T, B, H), conv0 (k-1, B, H), w (k, H) -> u (T, B, H): the depthwise causal convolution; ``fp32``
    keeps u in fp32 under autocast too (the RG-LRU gates u itself into its state, not only through a product)."""
    return _Conv.apply(x, conv0, w, _autocast_bf16() and not fp32)


def mingru_scan(pre: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """pre (T, B, 2H) = [update gate pre-activation, candidate], h0 (B, H) -> h (T, B, H), fp32."""
    if pre.dtype not in (torch.float32, torch.bfloat16):
        pre = pre.float()
    return _MinGRUScan.apply(pre, h0)
