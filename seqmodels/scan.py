"""The linear recurrence h_t = a_t * h_(t-1) + b_t over a whole sequence, forward and backward.

minGRU, minLSTM and the RG-LRU (``seqmodels.linear_rnn``) all reduce to this element-wise recurrence once
their gates are computed from the inputs alone; those gates are one big matrix product over all B*T tokens,
and only this cheap part runs step by step. Three ways to compute it were measured on this 2-core CPU
(``python bench/scan_speed.py``; figures in the README's "Which model?" section):

- ``linear_scan``: a plain loop over time in a custom autograd function, whose backward is the same
  recurrence run in reverse (g_t = dL/dh_t + a_(t+1) g_(t+1); dL/db_t = g_t; dL/da_t = g_t h_(t-1)).
  Autograd records nothing per step, and each step is one fused ``addcmul`` over B*H numbers.
- ``log_space_scan``: Heinsen's (arXiv 2311.06281) cumsum + logcumsumexp, all steps at once; it needs
  b >= 0 (minGRU's g(x) trick) and costs exp/log on every element, twice.
- the same loop left to autograd, which records about three nodes per step.

The custom loop wins here: for T = 128 the loop's Python overhead is small next to the exp/log work of the
log-space form, and the two cores gain nothing from the log-space form's extra parallelism.
On the CPU the minGRU goes one step further where ``seqmodels.native`` builds: its gates and this loop run as
one C pass each way (``seqmodels.native.fused.mingru_scan``); ``linear_scan`` serves minLSTM, the RG-LRU,
GPUs and the "Inside the RNN" views.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        a_t, b_t = a.contiguous(), b.contiguous()  # (T, B, H): each step one contiguous (B, H) block
        h = torch.empty_like(b_t)
        prev = h0
        for t in range(a_t.size(0)):
            prev = torch.addcmul(b_t[t], a_t[t], prev, out=h[t])  # written in place: no copy per step
        ctx.save_for_backward(a_t, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor):
        a_t, h, h0 = ctx.saved_tensors
        g_out = grad_h.contiguous()  # (T, B, H)
        grad_b = torch.empty_like(g_out)
        carry = torch.zeros_like(h0)  # a_(t+1) * g_(t+1), what step t+1 sends back to step t
        for t in range(g_out.size(0) - 1, -1, -1):
            carry = torch.add(g_out[t], carry, out=grad_b[t]) * a_t[t]
        h_prev = torch.cat([h0[None], h[:-1]])  # h_(t-1) for every t
        grad_a = grad_b * h_prev
        return grad_a, grad_b, carry


def linear_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """a, b (T, B, H), time-major; h0 (B, H) -> h (T, B, H) with h_t = a_t * h_(t-1) + b_t, in fp32."""
    return _LinearScan.apply(a.float(), b.float(), h0.float())


def log_space_scan(log_a: torch.Tensor, log_b: torch.Tensor, log_h0: torch.Tensor) -> torch.Tensor:
    """Heinsen's parallel form for positive values: log h from log a, log b (T, B, H) and log h0 (B, H)."""
    a_star = F.pad(torch.cumsum(log_a, dim=0), (0, 0, 0, 0, 1, 0))  # (T+1, B, H): sum of log a up to t
    values = torch.cat([log_h0[None], log_b])  # (T+1, B, H)
    log_h = a_star + torch.logcumsumexp(values - a_star, dim=0)
    return log_h[1:]


def loop_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """The reference: the recurrence as written, step by step, differentiated by autograd."""
    out, h = [], h0
    for t in range(a.size(0)):
        h = a[t] * h + b[t]
        out.append(h)
    return torch.stack(out)
