"""The minGRU's training kernels in C (seqmodels.native.fused): the same numbers and gradients as the torch
operations they replace, in fp32 and under bf16 autocast, and the torch path wherever the C cannot be built."""
import pytest
import torch

from seqmodels import dropout as dropout_module
from seqmodels import linear_rnn
from seqmodels.dropout import byte_dropout
from seqmodels.linear_rnn import linear_cell_gates
from seqmodels.native import fused
from seqmodels.scan import linear_scan

from test_modern_models import make_modern


@pytest.fixture(autouse=True)
def _needs_the_library():
    if fused.library() is None:
        pytest.skip("no C compiler here: training runs the same arithmetic as torch operations")


def _torch_conv(x, conv0, w):
    padded = torch.cat([conv0, x])
    return sum(w[j] * padded[j:j + x.size(0)] for j in range(w.size(0)))


def _torch_mingru(pre, h0):
    a, b, _ = linear_cell_gates("mingru", pre, None, None)
    return linear_scan(a, b, h0)


def _grads(fn, inputs, grad_out):
    out = fn(*inputs)
    return out, torch.autograd.grad(out, inputs, grad_out)


@pytest.mark.parametrize("T, k", [(37, 4), (2, 4), (9, 1), (5, 2)])  # T < k - 1: the previous chunk fills it all
def test_fused_convolution_matches_torch_forward_and_backward(T, k):
    torch.manual_seed(0)
    x, conv0, w = torch.randn(T, 5, 18), torch.randn(k - 1, 5, 18), torch.randn(k, 18)
    inputs = [t.requires_grad_() for t in (x, conv0, w)]
    grad_out = torch.randn(T, 5, 18)
    u, grads = _grads(fused.causal_conv, inputs, grad_out)
    u_ref, grads_ref = _grads(_torch_conv, inputs, grad_out)
    torch.testing.assert_close(u, u_ref)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("T", [1, 3, 37])
def test_fused_mingru_scan_matches_gates_then_scan_forward_and_backward(T):
    torch.manual_seed(0)
    pre, h0 = (torch.randn(T, 3, 36) * 2).requires_grad_(), torch.randn(3, 18, requires_grad=True)
    grad_out = torch.randn(T, 3, 18)
    h, grads = _grads(fused.mingru_scan, (pre, h0), grad_out)
    h_ref, grads_ref = _grads(_torch_mingru, (pre, h0), grad_out)
    torch.testing.assert_close(h, h_ref)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref)


def test_under_bf16_autocast_the_kernels_read_and_write_bf16_as_the_matrix_products_do():
    torch.manual_seed(0)
    x, w = torch.randn(20, 4, 18, requires_grad=True), torch.randn(4, 18)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        u = fused.causal_conv(x, torch.zeros(3, 4, 18), w)
    assert u.dtype == torch.bfloat16  # what the gate projection reading it would have cast it to
    torch.testing.assert_close(u.float(), _torch_conv(x, torch.zeros(3, 4, 18), w), rtol=1e-2, atol=2e-2)
    u.float().sum().backward()
    assert x.grad.dtype == torch.float32  # the residual stream's gradient stays fp32

    pre = torch.randn(20, 4, 36).bfloat16().requires_grad_()
    h = fused.mingru_scan(pre, torch.zeros(4, 18))
    assert h.dtype == torch.float32  # the state is always fp32
    torch.testing.assert_close(h, _torch_mingru(pre, torch.zeros(4, 18)))  # same inputs: only summation order differs
    (grad_pre,) = torch.autograd.grad(h.sum(), pre)
    assert grad_pre.dtype == torch.bfloat16


def test_one_or_two_threads_give_the_same_gradients():
    torch.manual_seed(0)
    x, w = torch.randn(30, 6, 18, requires_grad=True), torch.randn(4, 18, requires_grad=True)
    results, before = [], torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            results.append(torch.autograd.grad(fused.causal_conv(x, torch.zeros(3, 6, 18), w).square().sum(), (x, w)))
        finally:  # the process's own count back (conftest's 1): 2 left behind made test_workers' exact
            torch.set_num_threads(before)  # comparison of a worker (1 thread) with this process fail on an AVX2 AMD CPU
    for one, two in zip(*results):
        torch.testing.assert_close(one, two)  # the filter's gradient sums each thread's part: order only


def test_a_linear_rnn_model_trains_the_same_with_and_without_the_c_kernels(tokenizer, monkeypatch):
    torch.manual_seed(0)
    for cell in ("mingru", "rglru"):  # the RG-LRU shares the fused convolution, not the scan
        model = make_modern(tokenizer, cell, num_layers=2, hidden_size=18).train()
        with torch.no_grad():
            for block in model.blocks:
                block.mix.conv.normal_(0, 0.5)
        idx = torch.randint(tokenizer.vocab_size, (3, 41))
        runs = []
        for use_c in (True, False):
            if not use_c:
                monkeypatch.setattr(linear_rnn.fused, "library", lambda: None)
            model.zero_grad()
            out = model(idx[:, :-1], targets=idx[:, 1:])
            out.loss.backward()
            runs.append((out.loss.detach(), out.state, [p.grad.clone() for p in model.parameters()]))
        monkeypatch.undo()
        (loss, state, grads), (loss_ref, state_ref, grads_ref) = runs
        torch.testing.assert_close(loss, loss_ref)
        for s, s_ref in zip(state, state_ref):
            torch.testing.assert_close(s, s_ref)
        for g, g_ref in zip(grads, grads_ref):
            torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_c_dropout_keeps_the_byte_rule_and_draws_the_same_mask_in_backward(dtype):
    torch.manual_seed(0)
    x = torch.randn(100_003).to(dtype).requires_grad_()
    torch.manual_seed(1)
    y = byte_dropout(x, 0.2)
    assert y.dtype == dtype
    assert abs((y == 0).float().mean().item() - 51 / 256) < 0.005
    kept = y != 0
    torch.testing.assert_close(y[kept], (x[kept] * 256 / 205).to(dtype))
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert torch.equal(grad != 0, kept)  # the backward pass drew the forward's mask again from its seed
    torch.manual_seed(1)
    assert torch.equal(byte_dropout(x, 0.2), y)  # torch's seed fixes it
    assert not torch.equal(byte_dropout(x, 0.2), y)  # and the next call draws a new one


def test_dropout_falls_back_to_torch_bytes_without_the_library(monkeypatch):
    monkeypatch.setattr(dropout_module.fused, "library", lambda: None)
    torch.manual_seed(0)
    y = byte_dropout(torch.ones(50_000), 0.5)
    assert abs((y == 0).float().mean().item() - 0.5) < 0.01


def test_scan_bench_times_the_fused_minGRU_beside_the_torch_forms():
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench" / "scan_speed.py"
    done = subprocess.run([sys.executable, str(bench), "--length", "9", "--batch", "2", "--hidden", "8", "--repeats", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ms = json.loads(done.stdout.strip().splitlines()[-1])["ms"]
    assert set(ms) == {"custom_backward_loop", "heinsen_log_space", "autograd_loop", "mingru_gates_then_custom_loop",
                       "mingru_fused_c"}
    assert all(v > 0 for v in ms.values())


def test_without_a_compiler_a_minGRU_trains_through_torch_operations(tokenizer, tmp_path, monkeypatch):
    from seqmodels import native

    monkeypatch.setenv("RNN_PLAYGROUND_CACHE", str(tmp_path))  # nothing built before
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    native.load.cache_clear()
    try:
        assert fused.library() is None
        model = make_modern(tokenizer, "mingru", dropout=0.2).train()
        idx = torch.randint(tokenizer.vocab_size, (2, 17))
        out = model(idx[:, :-1], targets=idx[:, 1:])
        out.loss.backward()
    finally:
        native.load.cache_clear()  # the other tests build with the real compiler again
    assert torch.isfinite(out.loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert not list(tmp_path.glob("*.so"))


def test_loading_the_c_libraries_keeps_subnormal_numbers(tmp_path):
    """-ffast-math at link time would add crtfastmath.o, whose loading flushes subnormals to zero process-wide."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, torch; from seqmodels import native; from seqmodels.native import fused; "
            "assert native.load() is not None and fused.library() is not None; "
            "tiny = sys.float_info.min; "
            "print(tiny / 4 > 0, torch.tensor(1e-40).mul(1.0).item() > 0)")
    env = {**os.environ, "RNN_PLAYGROUND_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
