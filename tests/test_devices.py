"""dtype "auto" on a CPU: bf16 autocast only where it measures faster."""
import contextlib

import pytest
import torch

from seqmodels import devices
from seqmodels.training import TrainConfig, _autocast

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_probe():
    """The probe's answer is cached per process: a faked one must not outlive its test."""
    devices._bf16_measures_faster.cache_clear()
    yield
    devices._bf16_measures_faster.cache_clear()


def _cpu(monkeypatch, flags, bf16_s=None, fp32_s=None):
    devices._bf16_measures_faster.cache_clear()  # a second call in one test fakes new timings
    monkeypatch.setattr(devices, "_cpu_flags", lambda: flags)
    if bf16_s is not None:
        monkeypatch.setattr(devices, "_matmul_seconds", lambda dtype: bf16_s if dtype == torch.bfloat16 else fp32_s)


def test_a_cpu_without_bf16_instructions_trains_in_fp32(monkeypatch):
    _cpu(monkeypatch, "flags : fpu sse avx2 avx512f", bf16_s=0.001, fp32_s=1.0)  # even were the probe to say otherwise
    assert not devices.prefers_bf16(CPU)
    assert isinstance(_autocast(TrainConfig(), CPU), contextlib.nullcontext)


def test_bf16_instructions_alone_do_not_choose_bf16_when_fp32_measures_faster(monkeypatch):
    _cpu(monkeypatch, "flags : avx512f avx512_bf16", bf16_s=0.004, fp32_s=0.002)  # the Xeon with AMX hidden
    assert not devices.prefers_bf16(CPU)
    assert isinstance(_autocast(TrainConfig(), CPU), contextlib.nullcontext)


def test_bf16_is_chosen_where_its_products_measure_faster(monkeypatch):
    _cpu(monkeypatch, "flags : avx512f avx512_bf16 amx_bf16", bf16_s=0.001, fp32_s=0.002)
    assert devices.prefers_bf16(CPU)
    assert isinstance(_autocast(TrainConfig(), CPU), torch.autocast)


def test_an_explicit_dtype_overrides_the_probe(monkeypatch):
    _cpu(monkeypatch, "flags : avx512_bf16", bf16_s=0.001, fp32_s=0.002)
    assert isinstance(_autocast(TrainConfig(dtype="fp32"), CPU), contextlib.nullcontext)
    _cpu(monkeypatch, "flags : avx512_bf16", bf16_s=0.004, fp32_s=0.002)
    assert isinstance(_autocast(TrainConfig(dtype="bf16"), CPU), torch.autocast)


def test_the_probe_times_real_products_in_each_dtype():
    for dtype in (torch.float32, torch.bfloat16):
        seconds = devices._matmul_seconds(dtype)
        assert 0 < seconds < 5, (dtype, seconds)
