"""Shared fixtures and helpers: tiny texts, tiny models and a tiny captioning set, so every test runs in seconds
on a CPU. Test files import the plain helpers with ``from conftest import ...``; pytest finds the fixtures.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(1)  # tiny models: threads only add overhead, and CI shares two cores

from bench import app_process  # noqa: E402
from bench.app_process import free_port  # noqa: E402,F401  (the tests import it from here)
from seqmodels import CharLM, CharLMConfig, CharTokenizer  # noqa: E402
from seqmodels.caption import CaptionConfig, Captioner  # noqa: E402

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


def make_captioner(vocab: int = 30, seed: int = 0, **kw) -> Captioner:
    """A captioner for 32 x 32 images small enough to train in seconds; ``kw`` overrides its config."""
    torch.manual_seed(seed)
    args = dict(vocab_size=vocab, encoder="cnn", widths=(8, 16), image_size=32, embedding_dim=16, hidden_size=16, attention_dim=8,
                dropout=0.0)
    args.update(kw)
    return Captioner(CaptionConfig(**args)).eval()


def run_command(args: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a command (a training script, torchrun) from the project root, one thread, output captured as text."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, **kw)


def caption_cli(*args) -> subprocess.CompletedProcess:
    """``python -m train.caption ARGS``."""
    return run_command([sys.executable, "-m", "train.caption", *map(str, args)])


# `train.caption` flags for a small from-scratch model (like make_captioner's), on the `dataset` fixture's 32 px shapes
TINY_CAPTION_FLAGS = ["--encoder", "cnn", "--image-size", "32", "--hidden-size", "16", "--embedding-dim", "16",
                      "--attention-dim", "8", "--batch-size", "6", "--min-count", "1", "--no-progress", "--dtype", "fp32",
                      "--val-bleu-images", "3"]

_COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60)}
_SHAPES = ["square", "circle"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A captioning set: a folder of drawn shapes with Flickr8k-style captions and split files."""
    root = tmp_path_factory.mktemp("shapes")
    (root / "images").mkdir()
    lines, names = [], []
    for i, (colour, rgb) in enumerate(_COLOURS.items()):
        for j, shape in enumerate(_SHAPES):
            for k in range(3):
                name = f"{colour}_{shape}_{k}.jpg"
                im = Image.new("RGB", (48, 48), "white")
                draw = ImageDraw.Draw(im)
                box = (8 + k * 2, 8, 40 - k * 2, 40)
                (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=rgb)
                im.save(root / "images" / name)
                names.append(name)
                lines += [f"{name}#0\tA {colour} {shape} .", f"{name}#1\ta {shape} that is {colour}"]
    lines.append("missing.jpg#0\ta picture that is not there")
    lines.append("a line without a tab")
    (root / "captions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "train.txt").write_text("\n".join(n for n in names if not n.endswith("_2.jpg")) + "\nmissing.jpg\n")
    (root / "dev.txt").write_text("\n".join(n for n in names if n.endswith("_2.jpg")) + "\n")
    return root


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A captioner trained for 12 steps on ``dataset`` by `python -m train.caption`: (its folder, the run).

    test_cli.py and test_translate_cli.py define their own ``trained`` (a character model, a translator),
    which pytest uses in those files instead of this one."""
    out = tmp_path_factory.mktemp("caprun") / "run"
    r = caption_cli("--images", dataset / "images", "--captions", dataset / "captions.txt", "--train-list",
                    dataset / "train.txt", "--val-list", dataset / "dev.txt", "--out", out, "--steps", "12",
                    "--eval-interval", "6", "--captions-per-image", "2", "--word-loss", "0.5", *TINY_CAPTION_FLAGS)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


@contextlib.contextmanager
def running_app(checkpoints=None, start_timeout: float = 120, root=ROOT, ready_line: str | None = None):
    """Start `python app.py` of ``root`` on a free port (on ``checkpoints`` if given); yield its URL (once its log has
    ``ready_line``, if given); stop it after."""
    try:
        with app_process.running_app(checkpoints, start_timeout, root=root, ready_line=ready_line) as url:
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
