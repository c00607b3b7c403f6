import pytest
import torch

from seqmodels import FastCharLM, SamplingSettings, greedy_continuation, sample
from seqmodels.charlm import PromptError, encode_prompt
from seqmodels.data.text import stream_loss
from seqmodels.decoding import filter_logits, generate

from conftest import make_model

CELLS = ["rnn", "lstm", "gru"]


@pytest.mark.parametrize("cell", CELLS)
def test_model_overfits_one_batch(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell).train()
    ids = torch.tensor(tokenizer.encode(tiny_text[:65]).ids)
    x, y = ids[:-1][None], ids[1:][None]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss = model(x, targets=y).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


@pytest.mark.parametrize("cell", CELLS)
def test_state_carried_across_chunks_equals_one_long_forward(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell)
    idx = torch.tensor(tokenizer.encode(tiny_text[:50]).ids)[None]
    whole = model(idx).logits
    first = model(idx[:, :20])
    second = model(idx[:, 20:], state=first.state)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], dim=1), whole)


@pytest.mark.parametrize("cell", CELLS)
def test_fast_generation_path_matches_training_forward_logits(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell)
    fast = FastCharLM(model)
    ids = tokenizer.encode(tiny_text[:40]).ids
    reference = model(torch.tensor([ids])).logits[0]  # (T, V)
    _, state = fast.start(ids[:1])
    for t in range(1, len(ids)):
        logits, state = fast.step(torch.tensor([ids[t]]), state)
        torch.testing.assert_close(logits[0], reference[t], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", CELLS)
def test_int8_fast_path_stays_close_to_the_float_model(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell)
    fast = FastCharLM(model, quantize=True)
    ids = tokenizer.encode(tiny_text[:40]).ids
    reference = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
    _, state = fast.start(ids[:1])
    for t in range(1, len(ids)):
        logits, state = fast.step(torch.tensor([ids[t]]), state)
        assert (torch.log_softmax(logits[0], -1) - reference[t]).abs().max() < 0.05


def test_top_k_one_equals_greedy(tokenizer):
    model = make_model(tokenizer)
    prompt = tokenizer.encode("ANNA:\n").ids
    sampled = sample(model, prompt, SamplingSettings(max_new_tokens=60, temperature=1.0, top_k=1, seed=3))
    assert sampled == greedy_continuation(model, prompt, 60)


def test_top_p_zero_equals_greedy(tokenizer):
    model = make_model(tokenizer)
    prompt = tokenizer.encode("The ").ids
    sampled = sample(model, prompt, SamplingSettings(max_new_tokens=60, temperature=1.3, top_p=0.0, seed=3))
    assert sampled == greedy_continuation(model, prompt, 60)


def test_a_seed_reproduces_a_sample_and_another_seed_differs(tokenizer):
    model = make_model(tokenizer, "gru")
    prompt = tokenizer.encode("The").ids
    run = lambda seed: sample(model, prompt, SamplingSettings(max_new_tokens=200, temperature=1.5, seed=seed))
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_fast_path_and_model_sample_the_same_text_for_a_seed(tokenizer):
    model = make_model(tokenizer)
    prompt = tokenizer.encode("BORIS:").ids
    settings = SamplingSettings(max_new_tokens=100, temperature=1.0, top_p=0.95, seed=11)
    assert sample(FastCharLM(model), prompt, settings) == sample(model, prompt, settings)


def test_top_k_and_top_p_keep_the_expected_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda **kw: torch.isfinite(filter_logits(logits, SamplingSettings(**kw)))[0].tolist()
    assert kept(top_k=2) == [True, True, False, False]
    assert kept(top_p=0.8) == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    assert kept(top_p=0.81) == [True, True, True, False]
    assert kept(top_p=0.0) == [True, False, False, False]


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_k=-2), dict(top_p=1.5), dict(top_p=-0.1),
                                 dict(max_new_tokens=-1), dict(temperature=float("nan"))])
def test_invalid_sampling_settings_raise_value_error(bad):
    with pytest.raises(ValueError):
        SamplingSettings(**bad)


def test_generate_streams_one_token_at_a_time_with_probabilities(tokenizer):
    model = make_model(tokenizer)
    stream = generate(model, tokenizer.encode("The").ids, SamplingSettings(max_new_tokens=5, seed=0))
    tokens = list(stream)
    assert len(tokens) == 5
    assert all(0.0 < t.prob <= 1.0 for t in tokens)


def test_empty_prompt_starts_from_a_newline_and_says_so(tokenizer):
    ids, notes = encode_prompt(tokenizer, "")
    assert tokenizer.decode(ids) == "\n"
    assert notes[0] == "empty prompt: starting on a new line"  # in words, not '\\n'


def test_capitals_a_lower_case_model_never_saw_get_a_lower_case_suggestion():
    from seqmodels.tokenizers import CharTokenizer
    names = CharTokenizer.from_text("zoe\nanna\nbob\n")
    ids, notes = encode_prompt(names, "ZOE")
    assert "its training text has no capitals: try 'zoe'" in notes and ids  # it starts from "\n" instead
    _, notes = encode_prompt(names, "zo☃")  # a character with no lower-case twin: no such suggestion
    assert not any("capitals" in n for n in notes)


def test_prompt_over_the_limit_is_refused_with_its_length(tokenizer):
    with pytest.raises(PromptError, match="3,000 characters"):
        encode_prompt(tokenizer, "a" * 3000)


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_stream_loss_is_the_plain_cross_entropy_whatever_the_chunking(tokenizer, tiny_text, chunk):
    model = make_model(tokenizer, "lstm")
    ids = torch.tensor(tokenizer.encode(tiny_text[:300]).ids)
    reference = model(ids[:-1][None], targets=ids[1:][None]).loss.item()
    assert stream_loss(model, ids, streams=1, chunk=chunk) == pytest.approx(reference, rel=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_compiled_int8_step_equals_its_plain_python_fallback(tokenizer, cell):
    from seqmodels import fastgen

    fast = FastCharLM(make_model(tokenizer, cell), quantize=True)
    if not fast.compiled:
        pytest.skip("this torch has no fbgemm int8 kernels")
    state = fast._source.init_state(2)
    tokens = torch.tensor([1, 2])
    args = (cell, tokens, state[0], state[1] if cell == "lstm" else None, fast.table, *fast._packed)
    for a, b in zip(fastgen._int8_step(*args), fastgen._int8_step_eager(*args)):
        if a is None:
            assert b is None
        else:
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("temperature", [1e-300, 2.2250738585072014e-308, 1e-6])
def test_a_tiny_temperature_behaves_like_greedy_not_nan(tokenizer, temperature):
    model = make_model(tokenizer)
    prompt = tokenizer.encode("ANNA").ids
    sampled = sample(model, prompt, SamplingSettings(max_new_tokens=30, temperature=temperature, seed=0))
    assert sampled == greedy_continuation(model, prompt, 30)
