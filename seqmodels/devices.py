"""Where the training loop runs: one process or several under torchrun, and whether bf16 autocast pays there."""
from __future__ import annotations

import functools
import os
import re
import time
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


def prefers_bf16(device: torch.device) -> bool:
    """Whether dtype "auto" trains ``device`` under bf16 autocast: on a GPU that supports bf16; on a CPU that has
    bf16 instructions and whose bf16 matrix products measure faster than fp32 ones (once per process)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if not re.search(r"\b(avx512_bf16|amx_bf16)\b", _cpu_flags()):
        return False  # emulated bf16 is always the slower
    return _bf16_measures_faster(torch.get_num_threads())


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: stay with fp32 unless asked
        return ""


@functools.lru_cache(maxsize=None)
def _bf16_measures_faster(threads: int) -> bool:  # threads: a key of the cache, as the answer can change with it
    # The instructions alone do not decide it. An AMD EPYC with AVX-512 bf16 trained the LSTM 2x faster under bf16
    # autocast; a Xeon with the same flags and AMX hidden by its hypervisor trained the 8 x 208 minGRU 1.35-1.7x
    # faster in fp32. So measure: the fastest of five products of a training step's shape, bf16 against fp32.
    return _matmul_seconds(torch.bfloat16) < 0.9 * _matmul_seconds(torch.float32)


def _matmul_seconds(dtype: torch.dtype) -> float:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2048, 256, generator=g), torch.randn(256, 768, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        a @ b  # warm-up: the first call picks and prepares the kernel
        times = []
        for _ in range(5):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
    return min(times)
