"""The shipped checkpoints load, generate, and measure what their model cards say."""
from pathlib import Path

import pytest
import torch

from seqmodels import FastCharLM, SamplingSettings, load_model, sample
from seqmodels.data import read_text, split_ids, stream_loss

from conftest import ROOT, shared_data

SHIPPED = ["charlm-lstm", "charlm-gru", "charlm-rnn"]


def _folder(name: str) -> Path:
    folder = ROOT / "checkpoints" / name
    if not (folder / "config.json").exists():
        pytest.fail(f"{folder} is missing: the shipped checkpoints are part of the repository")
    return folder


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_is_a_complete_folder_with_a_model_card(name):
    folder = _folder(name)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "metrics.jsonl"} <= names
    assert not any(n.startswith("resume") for n in names)  # training state is not shipped
    card = (folder / "README.md").read_text()
    assert "python -m train.charlm" in card and "wall time" in card


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_writes_shakespeare_like_text(name):
    model, tokenizer, _ = load_model(_folder(name))
    ids = tokenizer.encode("ROMEO:\n").ids
    text = tokenizer.decode(sample(FastCharLM(model, quantize=True), ids, SamplingSettings(300, temperature=0.5, seed=0)))
    words = text.split()
    assert len(words) > 30 and sum(w.isalpha() for w in words) > len(words) / 2


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_reaches_its_recorded_validation_loss(name):
    text = read_text(shared_data("tinyshakespeare.txt"))
    model, tokenizer, config = load_model(_folder(name))
    val = split_ids(torch.tensor(tokenizer.encode(text).ids), 0.9)[1]
    recorded = config["metrics"]["val_loss"]
    # the card's figure was measured in 16 parallel streams during training; one stream gives each
    # character more context, so it may only be slightly lower
    assert stream_loss(model, val, streams=1) == pytest.approx(recorded, abs=0.01)
