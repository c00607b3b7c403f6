"""The linear recurrences' int8 generation step in C (seqmodels.native): the same model as the float step, for
every kernel this CPU can build, and the TorchScript step wherever it cannot be built."""
import pytest
import torch

from seqmodels import native
from seqmodels.fastgen import FastLinearRNN, fast_stepper
from seqmodels.linear_rnn import LINEAR_CELLS

from test_modern_models import ids_of, make_modern


def _cpu_flags() -> set[str]:
    for line in native._cpu().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _variants():
    """(name, compiler flags) of every kernel the source has that this CPU can run."""
    yield "this CPU's best", tuple(native.FLAGS)
    flags = _cpu_flags()
    if {"avx2", "fma"} <= flags:  # the AVX2 path, forced on a VNNI CPU
        yield "AVX2", (*native.FLAGS, "-mno-avx512vnni", "-mno-avxvnni")
    if "sse2" in flags:  # no vector extensions the source asks for: the plain C loops
        yield "plain C", (*native.FLAGS, "-march=x86-64")


def _model(tokenizer, cell: str):
    """A small model whose every parameter matters: 18 wide, so that neither the inputs (a multiple of 4) nor the
    outputs (of 16) fill the packed blocks, and the convolution and norms moved off their identity start."""
    model = make_modern(tokenizer, cell, hidden_size=18)
    with torch.no_grad():
        for block in model.blocks:
            block.mix.conv.normal_(0, 0.5)
            for norm in (block.norm1, block.norm2):
                norm.weight.uniform_(0.5, 1.5), norm.bias.normal_(0, 0.1)
    return model


def _lib(flags):
    lib = native.load(flags)
    if lib is None:
        pytest.skip("no C compiler here (or it cannot build these flags): generation uses the TorchScript step")
    return lib


@pytest.mark.parametrize("variant", list(_variants()), ids=lambda v: v[0])
@pytest.mark.parametrize("cell", list(LINEAR_CELLS))
def test_native_step_gives_the_float_models_next_character_probabilities(tokenizer, tiny_text, cell, variant):
    model = _model(tokenizer, cell)
    step = native.NativeStep(model, _lib(variant[1]))
    exact = FastLinearRNN(model, quantize=False)
    ids = ids_of(tokenizer, tiny_text, 40)[0]
    state = exact_state = model.init_state(1)
    for t in range(len(ids)):
        logits, *state = step(ids[t:t + 1], *state)
        reference, exact_state = exact.step(ids[t:t + 1], exact_state)
        assert (torch.log_softmax(logits, -1) - torch.log_softmax(reference, -1)).abs().max() < 0.05
        assert (state[0] - exact_state[0]).abs().max() < 0.05  # the carried state too, not only the readout


@pytest.mark.parametrize("cell", list(LINEAR_CELLS))
def test_native_step_runs_a_batch_as_independent_streams(tokenizer, tiny_text, cell):
    model = _model(tokenizer, cell)
    step = native.NativeStep(model, _lib(tuple(native.FLAGS)))
    ids = ids_of(tokenizer, tiny_text, 24)[0].view(2, 12)
    together = model.init_state(2)
    alone = [model.init_state(1), model.init_state(1)]
    for t in range(12):
        logits, *together = step(ids[:, t], *together)
        for row in range(2):
            row_logits, *alone[row] = step(ids[row, t:t + 1], *alone[row])
            torch.testing.assert_close(logits[row:row + 1], row_logits, rtol=0, atol=0)
    torch.testing.assert_close(together[0][:, 1], alone[1][0][:, 0], rtol=0, atol=0)


def test_native_step_refuses_an_unknown_token_id_and_leaves_the_state(tokenizer):
    model = make_modern(tokenizer, "mingru")
    step = native.NativeStep(model, _lib(tuple(native.FLAGS)))
    state = model.init_state(1)
    with pytest.raises(IndexError, match=f"0, {tokenizer.vocab_size}"):
        step(torch.tensor([tokenizer.vocab_size]), *state)
    assert not state[0].any()


def test_int8_stepper_uses_the_native_step_where_it_builds(tokenizer):
    lib = _lib(tuple(native.FLAGS))
    if lib.native_kernel() == 0:
        pytest.skip("this CPU has neither AVX2 nor AVX-512 VNNI: the plain C loops are slower than TorchScript")
    assert fast_stepper(make_modern(tokenizer, "mingru"), quantize=True).kernel == native.KERNELS[lib.native_kernel()]
    assert fast_stepper(make_modern(tokenizer, "mingru"), quantize=False).kernel == "fp32"


@pytest.mark.parametrize("how", ["no compiler", "switched off"])
def test_without_the_native_step_generation_falls_back_to_torchscript(tokenizer, tiny_text, tmp_path, monkeypatch, how):
    monkeypatch.setenv("RNN_PLAYGROUND_CACHE", str(tmp_path))  # nothing built before
    if how == "no compiler":
        monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    else:
        monkeypatch.setenv("RNN_PLAYGROUND_NATIVE", "0")
    native.load.cache_clear()
    model = make_modern(tokenizer, "mingru")
    try:
        fast = fast_stepper(model, quantize=True)
    finally:
        native.load.cache_clear()  # the other tests build with the real compiler again
    assert fast.kernel == "TorchScript"
    ids = ids_of(tokenizer, tiny_text, 5)[0]
    logits, _ = fast.step(ids[:2], model.init_state(2))
    assert logits.shape == (2, tokenizer.vocab_size) and torch.isfinite(logits).all()
    assert not list(tmp_path.glob("*.so"))


def test_int8_products_bench_prints_each_models_time_per_character():
    import json
    import subprocess
    import sys
    from pathlib import Path

    _lib(tuple(native.FLAGS))  # skips without a compiler
    bench = Path(__file__).resolve().parents[1] / "bench" / "int8_products.py"
    done = subprocess.run([sys.executable, str(bench)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["kernel"] in native.KERNELS and figures["lstm_products_us"] > 0 and figures["mingru_products_us"] > 0
