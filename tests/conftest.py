"""Shared fixtures: tiny texts and tiny models, so every test runs in seconds on a CPU."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(1)  # tiny models: threads only add overhead, and CI shares two cores

from bench import app_process  # noqa: E402
from bench.app_process import free_port  # noqa: E402,F401  (the tests import it from here)
from seqmodels import CharLM, CharLMConfig, CharTokenizer  # noqa: E402

TINY_TEXT = "".join(
    f"{name}:\nThe {thing} is {adj}, and so is the {thing}.\n\n"
    for name, thing, adj in [("ANNA", "cat", "grey"), ("BORIS", "sea", "wide"), ("CLARA", "road", "long")] * 40
)


_SUBJECTS = [("I", "Je"), ("You", "Tu"), ("We", "Nous")]
_VERBS = {"I": ("am", "suis"), "You": ("are", "es"), "We": ("are", "sommes")}
_ADJ = [("cold", "froid"), ("tired", "fatigué"), ("happy", "heureux"), ("ready", "prêt"), ("late", "en retard")]
# (English, French) pairs: small enough to train on in seconds, regular enough to learn
TINY_PAIRS = [(f"{en} {_VERBS[en][0]} {a}.", f"{fr} {_VERBS[en][1]} {b}.") for en, fr in _SUBJECTS for a, b in _ADJ] * 4


@pytest.fixture
def tiny_pairs_file(tmp_path) -> Path:
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{en}\t{fr}\n" for en, fr in TINY_PAIRS), encoding="utf-8")
    return path


@pytest.fixture
def tiny_text() -> str:
    return TINY_TEXT


@pytest.fixture
def tiny_text_file(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def tokenizer() -> CharTokenizer:
    return CharTokenizer.from_text(TINY_TEXT)


def make_model(tokenizer: CharTokenizer, cell: str = "lstm", layers: int = 2, dropout: float = 0.0, seed: int = 0) -> CharLM:
    torch.manual_seed(seed)
    config = CharLMConfig(vocab_size=tokenizer.vocab_size, cell=cell, embedding_dim=8, hidden_size=16,
                          num_layers=layers, dropout=dropout)
    return CharLM(config).eval()


@contextlib.contextmanager
def running_app(checkpoints=None, start_timeout: float = 120):
    """Start `python app.py` on a free port (on ``checkpoints`` if given); yield its URL; stop it after."""
    try:
        with app_process.running_app(checkpoints, start_timeout) as url:
            yield url
    except app_process.AppStartError as e:
        pytest.fail(str(e))



def shared_data(name: str) -> Path:
    """A file of ../shared/data, or skip: a fresh checkout of the project does not have that folder."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder sits beside the project in CI, not in a fresh clone)")
    return path


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so a fixture can tell that its test failed (screenshots)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
