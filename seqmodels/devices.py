"""Where the training loop runs: one process or several under torchrun, and whether bf16 is native there."""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.distributed as dist


def distributed() -> tuple[bool, int, int, torch.device]:
    """Join the process group when started by torchrun; return (ddp, rank, world_size, device)."""
    if int(os.environ.get("RANK", -1)) == -1:
        return False, 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        # device_id binds NCCL to this process's GPU up front (without it every barrier warns that it guesses)
        dist.init_process_group(backend="nccl" if cuda else "gloo",
                                **({"device_id": torch.device("cuda", local)} if cuda else {}))
    rank, world = dist.get_rank(), dist.get_world_size()
    return True, rank, world, torch.device("cuda", local) if cuda else torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (without it, bf16 autocast is emulated and slow)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: stay with fp32 unless asked
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))
