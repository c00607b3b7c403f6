"""The charlm command line: training on files and datasets, evaluate's JSON, sample, and bad input."""
import json

import pytest

from seqmodels import load_model

from test_training import _run

TINY_MODEL = ["--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "4", "--seq-len", "16", "--no-progress",
              "--dtype", "fp32"]


def charlm(*args):
    import sys
    return _run([sys.executable, "-m", "train.charlm", *map(str, args)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import TINY_TEXT
    folder = tmp_path_factory.mktemp("cli")
    text = folder / "tiny.txt"
    text.write_text(TINY_TEXT, encoding="utf-8")
    r = charlm("--text", text, "--out", folder / "run", "--steps", "20", "--eval-interval", "10", *TINY_MODEL)
    assert r.returncode == 0, r.stderr[-2000:]
    return folder / "run", text


def test_train_writes_a_complete_checkpoint_folder_with_a_model_card(trained):
    run, _ = trained
    for name in ["config.json", "model.safetensors", "tokenizer.json", "README.md", "metrics.jsonl"]:
        assert (run / name).is_file(), name
    card = (run / "README.md").read_text()
    assert "python -m train.charlm --text" in card and "Best validation loss" in card and "wall time" in card


def test_evaluate_prints_json_loss_bpc_and_chars_as_its_last_line(trained):
    run, text = trained
    r = charlm("evaluate", "--checkpoint", run, "--text", text)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["chars"] == len(text.read_text()) - 1
    assert result["bpc"] == pytest.approx(result["loss"] / 0.693147, rel=1e-3)


def test_sample_with_every_option_continues_the_prime(trained):
    run, _ = trained
    r = charlm("sample", "--checkpoint", run, "--prime", "ANNA:", "--length", "40", "--temperature", "0.7",
               "--top-k", "5", "--top-p", "0.9", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ANNA:") and len(r.stdout.rstrip("\n")) >= 5 + 35
    again = charlm("sample", "--checkpoint", run, "--prime", "ANNA:", "--length", "40", "--temperature", "0.7",
                   "--top-k", "5", "--top-p", "0.9", "--seed", "1")
    assert again.stdout == r.stdout


def test_sample_reports_unknown_characters_in_the_prime(trained):
    run, _ = trained
    r = charlm("sample", "--checkpoint", run, "--prime", "ANNA😀:", "--length", "5", "--greedy")
    assert r.returncode == 0 and "never saw" in r.stderr and r.stdout.startswith("ANNA:")


def test_resume_continues_a_cli_run(trained, tmp_path):
    run, text = trained
    r = charlm("--text", text, "--out", run, "--steps", "30", "--eval-interval", "10", "--resume", *TINY_MODEL)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["steps"] == 30


def _bad(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("args_fn, message", [
    (lambda t: ["--text", _bad(t, "empty.txt", b"")], "is empty"),
    (lambda t: ["--text", _bad(t, "latin1.txt", "café au lait\n".encode("latin-1") * 50)], "not UTF-8"),
    (lambda t: ["--text", _bad(t, "short.txt", b"too short")], "too short"),
    (lambda t: ["--text", t / "missing.txt"], "not found"),
    (lambda t: ["evaluate", "--checkpoint", t / "nothing", "--text", _bad(t, "x.txt", b"abc")], "not found"),
    (lambda t: ["evaluate", "--checkpoint", t, "--text", _bad(t, "x.txt", b"abc")], "no config.json"),
    (lambda t: ["sample", "--checkpoint", t, "--length", "1000000"], "over the cap"),
    (lambda t: ["sample", "--checkpoint", t, "--top-p", "2"], "top_p must be between 0 and 1"),
])
def test_bad_input_gets_a_clear_message_and_no_traceback(tmp_path, args_fn, message):
    r = charlm(*args_fn(tmp_path))
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_prompt_over_the_limit_is_refused_by_sample(trained):
    run, _ = trained
    r = charlm("sample", "--checkpoint", run, "--prime", "a" * 2001)
    assert r.returncode == 2 and "the limit is 2,000" in r.stderr and "Traceback" not in r.stderr


def test_training_reads_a_local_hugging_face_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    from conftest import TINY_TEXT
    lines = TINY_TEXT.split("\n")
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"body": lines, "n": list(range(len(lines)))}).save_to_disk(str(saved))
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": line}) for line in lines), encoding="utf-8")
    for source in (saved, jsonl):
        out = tmp_path / f"run-{source.name}"
        r = charlm("--hf-dataset", source, "--text-column", "body", "--out", out, "--steps", "4", "--eval-interval",
                   "2", *TINY_MODEL)
        assert r.returncode == 0, r.stderr[-2000:]
        _, tok, _ = load_model(out)
        assert set(tok.chars) == set(TINY_TEXT)


def test_a_missing_dataset_column_names_the_columns_there_are(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"body": ["a b c"] * 10}).save_to_disk(str(tmp_path / "d"))
    r = charlm("--hf-dataset", tmp_path / "d", "--text-column", "text", "--out", tmp_path / "o")
    assert r.returncode == 2 and "no column 'text'" in r.stderr and "body" in r.stderr


def test_a_run_killed_mid_training_resumes_from_its_last_saved_step(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from conftest import TINY_TEXT
    from test_training import ROOT

    text = tmp_path / "t.txt"
    text.write_text(TINY_TEXT * 3, encoding="utf-8")
    out = tmp_path / "run"
    args = [sys.executable, "-m", "train.charlm", "--text", str(text), "--out", str(out), "--steps", "100000",
            "--eval-interval", "5", *TINY_MODEL]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    def lines() -> int:
        return sum(1 for _ in open(out / "metrics.jsonl")) if (out / "metrics.jsonl").exists() else 0
    while time.time() < deadline and lines() < 6:  # about step 20
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: only atomic writes keep the files whole
    proc.wait()
    load_model(out)  # the best checkpoint is intact
    r = charlm("--text", text, "--out", out, "--steps", "80", "--eval-interval", "5", "--resume", *TINY_MODEL)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stderr
    resumed_at = int(r.stderr.split("at step ")[1].split()[0])
    assert resumed_at > 0 and resumed_at % 5 == 0  # the last evaluation step saved before the kill
    assert resumed_at < 80 and json.loads(r.stdout.strip().splitlines()[-1])["steps"] == 80


def test_export_last_writes_the_last_steps_weights_as_a_loadable_model(trained, tmp_path):
    import sys

    from safetensors.torch import load_file

    import torch

    run, _ = trained  # shared with the resume test, which may have taken it further: ask the run its last step
    last_step = torch.load(run / "resume.pt", weights_only=True)["step"]
    r = _run([sys.executable, "-m", "train.export_last", str(run), str(tmp_path / "last")])
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["step"] == last_step >= 20
    model, _, config = load_model(tmp_path / "last")
    assert config["metrics"]["step"] == last_step
    resume = load_file(str(run / "resume.safetensors"))
    for name, tensor in model.state_dict().items():
        assert (tensor == resume[name]).all(), name


def test_export_best_half_writes_the_best_checkpoint_in_fp16(trained, tmp_path):
    import sys

    from safetensors.torch import load_file

    run, _ = trained
    r = _run([sys.executable, "-m", "train.export_last", str(run), str(tmp_path / "best"), "--best", "--half"])
    assert r.returncode == 0, r.stderr[-2000:]
    best, _, config = load_model(run)
    assert json.loads(r.stdout.strip().splitlines()[-1])["step"] == config["metrics"]["step"]
    stored = load_file(str(tmp_path / "best" / "model.safetensors"))
    assert all(t.dtype.itemsize == 2 for t in stored.values() if t.is_floating_point())
    exported = load_model(tmp_path / "best")[0].state_dict()
    for name, tensor in best.state_dict().items():
        expected = tensor.half().float() if tensor.is_floating_point() else tensor
        assert (exported[name] == expected).all(), name


def test_export_last_refuses_to_overwrite_the_run_and_needs_resume_state(trained, tmp_path):
    import sys

    run, _ = trained
    r = _run([sys.executable, "-m", "train.export_last", str(run), str(run)])
    assert r.returncode == 2 and "must differ" in r.stderr
    (tmp_path / "empty").mkdir()
    r = _run([sys.executable, "-m", "train.export_last", str(tmp_path / "empty"), str(tmp_path / "out")])
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr
