"""Muon for a model's hidden matrices, AdamW for the rest, as one optimizer.

Muon (Jordan et al. 2024, "Muon: MomentUm Orthogonalized by Newton-schulz") keeps Nesterov momentum for each
weight matrix and steps along the momentum's nearest orthogonal matrix, computed by five Newton-Schulz
iterations: every direction of the matrix moves by the same amount, so the rarely-used directions that Adam's
per-element scaling leaves small learn as fast as the common ones. Embeddings, the output head, biases, norms
and the depthwise convolution filters are not matrices of that kind and stay with AdamW (as in the paper).

An orthogonal update's entries have an RMS of 1/sqrt(max(rows, cols)); the step rescales it to ``update_rms``
per unit of learning rate, so one learning rate and one schedule drive both halves. Liu et al. 2025 ("Muon is
scalable for LLM training") match AdamW's typical update with 0.2; on the character models here a larger step
learnt faster (12-minute runs of the 8 x 208 minGRU at lr 3e-3: validation loss 1.913 at 0.2, 1.763 at 0.5,
1.688 at 1.0, against AdamW's 1.833), so TrainConfig's default is 1.0.
"""
from __future__ import annotations

import torch
from torch import nn

# the quintic iteration's coefficients (Jordan et al.): a fast, not exact, push of every singular value towards 1
_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The nearest (semi-)orthogonal matrix to each matrix in ``g`` (..., rows, cols), approximately: U V^T of
    its SVD. A stack of same-shaped matrices goes through as one batch of matrix products. On this 2-core CPU that
    is no faster than one call per matrix: 77-92 ms against 80-85 ms for the 8 x 208 minGRU's 32 matrices in
    three runs of ``bench/muon_speed.py`` (0.92-1.06x), the products' arithmetic being the cost either way. It is
    kept for a GPU, where each call's launch costs more (not measured there)."""
    a, b, c = _NS_COEFFICIENTS
    # bf16 on a GPU, as in the paper; on this CPU (AVX-512 bf16, no AMX) fp32 products of the minGRU's 208 x 624
    # and 208 x 208 shapes measured about twice as fast as bf16
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    tall = x.size(-2) > x.size(-1)
    if tall:  # iterate on the smaller Gram matrix
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # singular values <= 1, where the iteration converges
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.mT if tall else x).to(g.dtype)


def muon_parameters(model: nn.Module) -> set[int]:
    """ids of the weights Muon should train: every ``nn.Linear`` weight but the output head's."""
    head = getattr(model, "head", None)
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear) and m is not head}


def muon_groups(model: nn.Module, decay: list, no_decay: list, weight_decay: float) -> list[dict]:
    """MuonAdamW's param groups: the hidden matrices (Muon), the other decayed weights, the undecayed ones."""
    hidden = muon_parameters(model)
    groups = [{"params": [p for p in decay if id(p) in hidden], "weight_decay": weight_decay, "muon": True},
              {"params": [p for p in decay if id(p) not in hidden], "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class MuonAdamW(torch.optim.Optimizer):
    """Param groups with ``muon=True`` take Muon steps, the others AdamW steps; all share ``lr``."""

    def __init__(self, groups: list[dict], lr: float, betas=(0.9, 0.99), momentum: float = 0.95, eps: float = 1e-8,
                 update_rms: float = 0.2):
        super().__init__(groups, dict(lr=lr, betas=betas, momentum=momentum, eps=eps, weight_decay=0.0, muon=False,
                                      update_rms=update_rms))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                p.mul_(1 - lr * wd)  # decoupled weight decay, as AdamW
            if group["muon"]:
                self._muon_step(params, group)
                continue
            beta1, beta2 = group["betas"]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros(())
                    state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
                state["step"] += 1
                n = state["step"].item()
                state["exp_avg"].lerp_(p.grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (state["exp_avg_sq"] / (1 - beta2 ** n)).sqrt_().add_(group["eps"])
                p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1 ** n))
        return None

    def _muon_step(self, params: list[torch.Tensor], group: dict) -> None:
        by_shape: dict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for p in params:
            state = self.state[p]
            if not state:
                state["momentum"] = torch.zeros_like(p)
            buf = state["momentum"]
            buf.lerp_(p.grad, 1 - group["momentum"])
            by_shape.setdefault((p.shape, p.device), []).append((p, p.grad.lerp(buf, group["momentum"])))
        for (shape, _), pairs in by_shape.items():
            updates = orthogonalize(torch.stack([nesterov for _, nesterov in pairs]))
            alpha = -group["lr"] * group["update_rms"] * max(shape) ** 0.5
            for (p, _), update in zip(pairs, updates):
                p.add_(update, alpha=alpha)
