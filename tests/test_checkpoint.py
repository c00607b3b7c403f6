import json
import pickle

import pytest
import torch

from seqmodels import CheckpointError, load_model, save_model
from seqmodels.checkpoint import load_resume_state, save_resume_state

from conftest import make_model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_checkpoint_round_trip_restores_identical_logits(tmp_path, tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell)
    save_model(tmp_path, model, tokenizer, {"val_loss": 1.0})
    again, tok, config = load_model(tmp_path)
    idx = torch.tensor([tokenizer.encode(tiny_text[:30]).ids])
    assert torch.equal(model(idx).logits, again(idx).logits)
    assert tok.chars == tokenizer.chars
    assert config["metrics"]["val_loss"] == 1.0


def test_half_precision_checkpoint_loads_as_float32_with_close_logits(tmp_path, tokenizer, tiny_text):
    model = make_model(tokenizer)
    save_model(tmp_path, model, tokenizer, half=True)
    again, _, _ = load_model(tmp_path)
    assert again.head.weight.dtype == torch.float32
    idx = torch.tensor([tokenizer.encode(tiny_text[:30]).ids])
    torch.testing.assert_close(model(idx).logits, again(idx).logits, atol=2e-3, rtol=1e-2)


def test_checkpoint_folder_holds_no_pickle(tmp_path, tokenizer):
    save_model(tmp_path, make_model(tokenizer), tokenizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope")


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "config.json").write_text("{not json"), "config.json is corrupt"),
    (lambda d: (d / "config.json").write_text(json.dumps({"model_type": "gpt"})), "known model"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 10), "corrupt or not a safetensors"),
    (lambda d: (d / "model.safetensors").unlink(), "no model.safetensors"),
    (lambda d: (d / "tokenizer.json").write_text("[]"), "tokenizer.json is corrupt"),
])
def test_damaged_checkpoint_is_a_clear_error_not_a_traceback(tmp_path, tokenizer, damage, message):
    save_model(tmp_path, make_model(tokenizer), tokenizer)
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path)


def test_weights_that_do_not_match_the_config_are_refused(tmp_path, tokenizer):
    save_model(tmp_path, make_model(tokenizer), tokenizer)
    config = json.loads((tmp_path / "config.json").read_text())
    config["config"]["hidden_size"] = 32
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match config.json"):
        load_model(tmp_path)


class _Payload:
    def __reduce__(self):  # unpickling this would run a shell command
        import os
        return (os.system, ("echo pwned > /tmp/rnn_playground_pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the payload file is a plain pickle, on purpose
def test_resume_state_with_a_pickled_payload_is_refused(tmp_path, tokenizer):
    model = make_model(tokenizer)
    save_resume_state(tmp_path, model, {"step": 3})
    with open(tmp_path / "resume.pt", "wb") as f:
        pickle.dump({"step": _Payload()}, f)
    with pytest.raises(CheckpointError, match="cannot resume"):
        load_resume_state(tmp_path, model)


def test_resume_state_round_trip(tmp_path, tokenizer):
    model = make_model(tokenizer)
    save_resume_state(tmp_path, model, {"step": 3, "rng": torch.get_rng_state()})
    other = make_model(tokenizer, seed=1)
    assert load_resume_state(tmp_path, other)["step"] == 3
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
