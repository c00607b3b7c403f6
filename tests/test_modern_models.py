"""The modern character models: minGRU, minLSTM, RG-LRU (parallel training form, recurrent generation form)
and the Transformer with its key/value cache, all under the one character-model contract."""
import sys

import pytest
import torch

from seqmodels import SamplingSettings, greedy_continuation, load_model, sample, save_model
from seqmodels.charmodels import CHAR_CELLS, build_char_model
from seqmodels.data.text import stream_loss
from seqmodels.dropout import Dropout, byte_dropout
from seqmodels.fastgen import fast_stepper
from seqmodels.linear_rnn import LINEAR_CELLS, LinearRNNConfig
from seqmodels.scan import linear_scan, log_space_scan, loop_scan

from conftest import run_command

MODERN = [*LINEAR_CELLS, "transformer"]


def make_modern(tokenizer, cell: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    config = dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=2, num_heads=2, context=12)
    return build_char_model(cell, {**config, **kw}).eval()


def ids_of(tokenizer, text: str, n: int) -> torch.Tensor:
    return torch.tensor(tokenizer.encode(text[:n]).ids)[None]


@pytest.mark.parametrize("T", [1, 3, 9, 37, 256])  # one step at a time; chunked, with and without a remainder
def test_custom_scan_matches_the_autograd_loop_forward_and_backward(T):
    torch.manual_seed(0)
    a = (torch.rand(T, 3, 5) * 0.3 + 0.7).requires_grad_()  # (T, B, H), decays in (0.7, 1): long memories
    b = torch.randn(T, 3, 5, requires_grad=True)
    h0 = torch.randn(3, 5, requires_grad=True)
    weights = torch.randn(T, 3, 5)  # a loss that weighs every step differently
    fast, slow = linear_scan(a, b, h0), loop_scan(a, b, h0)
    torch.testing.assert_close(fast, slow)
    grads_fast = torch.autograd.grad((fast * weights).sum(), (a, b, h0))
    grads_slow = torch.autograd.grad((slow * weights).sum(), (a, b, h0))
    for g_fast, g_slow in zip(grads_fast, grads_slow):
        torch.testing.assert_close(g_fast, g_slow)


def test_byte_dropout_drops_the_asked_share_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    for p in (0.1, 0.2, 0.5):
        y = byte_dropout(x, p)
        assert abs((y == 0).float().mean().item() - p) < 1 / 512 + 0.005  # p to within 1/512, plus sampling noise
        assert abs(y.mean().item() - 1.0) < 0.01  # kept elements are scaled so the expectation is unchanged
        assert y.unique().tolist() == pytest.approx([0.0, 256 / (256 - round(p * 256))])
    assert torch.isfinite(byte_dropout(x, 0.999)).all()  # the highest rates keep 1 in 256, scaled by 256


def test_byte_dropout_is_seeded_off_in_eval_and_passes_gradients_through_the_mask():
    x = torch.randn(64, 33, requires_grad=True)
    torch.manual_seed(3)
    a = byte_dropout(x, 0.3)
    torch.manual_seed(3)
    torch.testing.assert_close(a, byte_dropout(x, 0.3))  # torch's seed fixes the mask, as with nn.Dropout
    a.sum().backward()
    torch.testing.assert_close(x.grad, (a / x).detach())  # d(x * mask)/dx = mask
    layer = Dropout(0.3).eval()
    assert layer(x) is x
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)


def test_log_space_scan_equals_the_loop_for_positive_values():
    torch.manual_seed(0)
    a, b, h0 = torch.rand(20, 2, 4) * 0.9 + 0.05, torch.rand(20, 2, 4) + 0.1, torch.rand(2, 4) + 0.1
    log_h = log_space_scan(a.log(), b.log(), h0.log())
    torch.testing.assert_close(log_h.exp(), loop_scan(a, b, h0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", MODERN)
def test_parallel_form_and_step_by_step_form_give_the_same_logits(tokenizer, tiny_text, cell):
    model = make_modern(tokenizer, cell)
    idx = ids_of(tokenizer, tiny_text, 30)  # longer than the Transformer's 12-character window
    whole = model(idx).logits  # (1, T, V): training's parallel form
    logits, state = model.start(idx[0, :1].tolist())
    stepped = [logits]
    for t in range(1, idx.size(1)):
        logits, state = model.step(idx[0, t:t + 1], state)
        stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped, dim=1), whole, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", MODERN)
def test_state_carried_across_two_chunks_equals_one_pass(tokenizer, tiny_text, cell):
    model = make_modern(tokenizer, cell)
    idx = ids_of(tokenizer, tiny_text, 40)
    whole = model(idx).logits
    first = model(idx[:, :17])
    second = model(idx[:, 17:], state=first.state)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], dim=1), whole, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", MODERN)
def test_checkpoint_round_trip_restores_identical_logits(tokenizer, tiny_text, cell, tmp_path):
    model = make_modern(tokenizer, cell)
    save_model(tmp_path, model, tokenizer)
    loaded, loaded_tokenizer, config = load_model(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    idx = ids_of(tokenizer, tiny_text, 30)
    assert torch.equal(loaded(idx).logits, model(idx).logits)
    assert loaded_tokenizer.chars == tokenizer.chars


@pytest.mark.parametrize("cell", MODERN)
def test_top_k_one_sampling_equals_greedy(tokenizer, cell):
    model = make_modern(tokenizer, cell)
    prompt = tokenizer.encode("ANNA:\n").ids
    sampled = sample(model, prompt, SamplingSettings(max_new_tokens=40, temperature=1.0, top_k=1, seed=3))
    assert sampled == greedy_continuation(model, prompt, 40)


@pytest.mark.parametrize("cell", MODERN)
def test_model_overfits_one_batch(tokenizer, tiny_text, cell):
    model = make_modern(tokenizer, cell).train()
    ids = ids_of(tokenizer, tiny_text, 65)
    x, y = ids[:, :-1], ids[:, 1:]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model(x, targets=y).loss.item()
    for _ in range(150):
        loss = model(x, targets=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


@pytest.mark.parametrize("cell", MODERN)
def test_int8_stepper_stays_close_to_the_float_model(tokenizer, tiny_text, cell):
    model = make_modern(tokenizer, cell)
    fast = fast_stepper(model, quantize=True)
    ids = ids_of(tokenizer, tiny_text, 30)[0].tolist()
    reference = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
    _, state = fast.start(ids[:1])
    for t in range(1, len(ids)):
        logits, state = fast.step(torch.tensor([ids[t]]), state)
        assert (torch.log_softmax(logits[0], -1) - reference[t]).abs().max() < 0.05


def test_stream_loss_of_a_transformer_reads_past_its_window_through_the_cache(tokenizer, tiny_text):
    model = make_modern(tokenizer, "transformer")
    ids = torch.tensor(tokenizer.encode(tiny_text[:100]).ids)
    one_stream = stream_loss(model, ids, streams=1, chunk=7)
    logits = model(ids[None, :-1]).logits[0]  # one pass; the mask keeps each character to its 12-character window
    expected = torch.nn.functional.cross_entropy(logits, ids[1:]).item()
    assert one_stream == pytest.approx(expected, rel=1e-5)


def test_transformer_state_is_capped_at_its_window(tokenizer, tiny_text):
    model = make_modern(tokenizer, "transformer")
    out = model(ids_of(tokenizer, tiny_text, 50))
    keys, values = out.state
    assert keys.shape[3] == values.shape[3] == model.config.context - 1


def test_unknown_cell_names_the_known_ones(tokenizer):
    with pytest.raises(ValueError, match="mingru.*transformer"):
        build_char_model("mamba", {"vocab_size": 10})
    with pytest.raises(ValueError, match="mingru, minlstm, rglru"):
        LinearRNNConfig(cell="lstm")


def test_every_cell_is_offered_by_the_training_script():
    from train.charlm import build_parser

    choices = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
                   if a.dest == "cell").choices
    assert list(choices) == list(CHAR_CELLS)


@pytest.mark.parametrize("cell", ["mingru", "transformer"])
def test_cli_trains_evaluates_and_samples_a_modern_model(tiny_text_file, tmp_path, cell):
    out = tmp_path / cell
    train = run_command([sys.executable, "-m", "train.charlm", "--text", str(tiny_text_file), "--cell", cell,
                         "--hidden-size", "16", "--layers", "1", "--context", "16", "--steps", "6", "--eval-interval", "3",
                         "--batch-size", "4", "--out", str(out), "--no-progress"])
    assert train.returncode == 0, train.stderr
    assert (out / "model.safetensors").is_file() and "## Training" in (out / "README.md").read_text()
    evaluate = run_command([sys.executable, "-m", "train.charlm", "evaluate", "--checkpoint", str(out),
                            "--text", str(tiny_text_file)])
    assert evaluate.returncode == 0 and '"loss"' in evaluate.stdout, evaluate.stderr
    sampled = run_command([sys.executable, "-m", "train.charlm", "sample", "--checkpoint", str(out),
                           "--prompt", "ANNA", "--max-new-tokens", "20"])
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("ANNA") and len(sampled.stdout.strip()) >= 20


@pytest.mark.parametrize("cell", MODERN)
@pytest.mark.parametrize("prompt", [1, 20])  # the Transformer's window (12) fills while stepping, or in the prompt
def test_fast_float_step_matches_the_training_forward(tokenizer, tiny_text, cell, prompt):
    model = make_modern(tokenizer, cell)
    fast = fast_stepper(model, quantize=False)
    ids = ids_of(tokenizer, tiny_text, 45)[0].tolist()
    reference = model(torch.tensor([ids])).logits[0]
    logits, state = fast.start(ids[:prompt])
    torch.testing.assert_close(logits[0], reference[prompt - 1], atol=1e-5, rtol=1e-4)
    for t in range(prompt, len(ids)):
        logits, state = fast.step(torch.tensor([ids[t]]), state)
        torch.testing.assert_close(logits[0], reference[t], atol=1e-5, rtol=1e-4)


def test_fast_transformer_reads_a_long_text_as_its_window_alone(tokenizer, tiny_text):
    """Its keys are turned by RoPE at their own positions, however far along: after thousands of characters
    a step still gives the model's own logits, whose keys restart at 0 at the window's oldest."""
    model = make_modern(tokenizer, "transformer")
    fast = fast_stepper(model, quantize=False)
    ids = (tokenizer.encode(tiny_text).ids * 40)[:3000]
    logits, state = fast.start(ids[:2])
    for token in ids[2:]:
        logits, state = fast.step(torch.tensor([token]), state)
    torch.testing.assert_close(logits[0], model(torch.tensor([ids])).logits[0, -1], atol=1e-4, rtol=1e-4)
