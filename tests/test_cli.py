"""The charlm command line: training on files and datasets, evaluate's JSON, sample, and bad input."""
import json

import pytest

from seqmodels import load_model

from conftest import run_command

TINY_MODEL = ["--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "4", "--seq-len", "16", "--no-progress",
              "--dtype", "fp32"]


def charlm(*args):
    import sys
    return run_command([sys.executable, "-m", "train.charlm", *map(str, args)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import TINY_TEXT
    folder = tmp_path_factory.mktemp("cli")
    text = folder / "tiny.txt"
    text.write_text(TINY_TEXT, encoding="utf-8")
    # --keep-resume: the resume and export_last tests below need the run's last step
    r = charlm("--text", text, "--out", folder / "run", "--steps", "20", "--eval-interval", "10", "--keep-resume",
               *TINY_MODEL)
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


def test_sample_with_every_option_continues_the_prompt(trained):
    run, _ = trained
    r = charlm("sample", "--checkpoint", run, "--prompt", "ANNA:", "--max-new-tokens", "40", "--temperature", "0.7",
               "--top-k", "5", "--top-p", "0.9", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ANNA:") and len(r.stdout.rstrip("\n")) >= 5 + 35
    again = charlm("sample", "--checkpoint", run, "--prompt", "ANNA:", "--max-new-tokens", "40", "--temperature", "0.7",
                   "--top-k", "5", "--top-p", "0.9", "--seed", "1")
    assert again.stdout == r.stdout


def test_sample_old_spellings_give_the_same_text_and_a_deprecation_warning(trained):
    run, _ = trained
    new = charlm("sample", "--checkpoint", run, "--prompt", "ANNA:", "--max-new-tokens", "30", "--seed", "3",
                 "--no-int8")
    old = charlm("sample", "--checkpoint", run, "--prime", "ANNA:", "--length", "30", "--seed", "3", "--no-quantize")
    assert old.returncode == 0 and new.returncode == 0, old.stderr
    assert old.stdout == new.stdout and "warning" not in new.stderr
    for spelling, replacement in [("--prime", "--prompt"), ("--length", "--max-new-tokens"),
                                  ("--no-quantize", "--no-int8")]:
        assert f"warning: {spelling} is deprecated; use {replacement}" in old.stderr


def test_sample_reports_unknown_characters_in_the_prompt(trained):
    run, _ = trained
    r = charlm("sample", "--checkpoint", run, "--prompt", "ANNA😀:", "--max-new-tokens", "5", "--greedy")
    assert r.returncode == 0 and "never saw" in r.stderr and r.stdout.startswith("ANNA:")


def test_resume_continues_a_cli_run(trained, tmp_path):
    run, text = trained
    r = charlm("--text", text, "--out", run, "--steps", "30", "--eval-interval", "10", "--resume", "--keep-resume",
               *TINY_MODEL)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["steps"] == 30


def test_resume_with_another_model_shape_is_refused_and_names_the_runs(trained):
    run, text = trained
    before = (run / "config.json").read_bytes(), (run / "resume.pt").stat().st_mtime
    r = charlm("--text", text, "--out", run, "--steps", "30", "--resume", "--cell", "gru", "--layers", "2",
               "--hidden-size", "32", *TINY_MODEL[2:])
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "holds a lstm run" in r.stderr and "--cell gru (the run's: lstm)" in r.stderr
    assert "--hidden-size 32 (the run's: 16)" in r.stderr and "--layers" not in r.stderr  # 2 is the run's own
    assert ((run / "config.json").read_bytes(), (run / "resume.pt").stat().st_mtime) == before


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
    (lambda t: ["sample", "--checkpoint", t, "--max-new-tokens", "1000000"], "over the cap"),
    (lambda t: ["sample", "--checkpoint", t, "--top-p", "2"], "top_p must be between 0 and 1"),
    (lambda t: ["--text", _bad(t, "utf16.txt", "Hello, world\n".encode("utf-16") * 50)], "iconv -f utf-16"),
    (lambda t: ["--text", t], "is a folder"),
    (lambda t: ["evaluate", "--checkpoint", _bad(t, "a.txt", b"abc"), "--text", _bad(t, "x.txt", b"abc")],
     "is a file; a checkpoint is a folder"),
    # option values that reached torch and ended in a traceback (after the run folder was made)
    (lambda t: ["--text", _bad(t, "x.txt", b"abc"), "--steps", "-5", "--out", t / "run"], "--steps: must be at least 1"),
    (lambda t: ["--text", _bad(t, "x.txt", b"abc"), "--batch-size", "0", "--out", t / "run"], "--batch-size: must be"),
    (lambda t: ["--text", _bad(t, "x.txt", b"abc"), "--lr", "-1", "--out", t / "run"], "--lr: must be above 0"),
    (lambda t: ["--text", _bad(t, "x.txt", b"abc"), "--dropout", "1.5", "--out", t / "run"], "--dropout: must be below 1"),
    (lambda t: ["--text", _bad(t, "x.txt", b"abc"), "--seq-len", "nan", "--out", t / "run"], "is not a whole number"),
    (lambda t: ["--text", _bad(t, "x.txt", b"abc"), "--out", _bad(t, "file", b"")], "is a file, not a folder"),
])
def test_bad_input_gets_a_clear_message_and_no_traceback(tmp_path, args_fn, message):
    r = charlm(*args_fn(tmp_path))
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()  # refused before a folder was made


def test_a_folder_of_the_persons_own_files_is_not_written_into_without_overwrite(tmp_path):
    from conftest import TINY_TEXT
    text = tmp_path / "t.txt"
    text.write_text(TINY_TEXT, encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("my notes", encoding="utf-8")
    r = charlm("--text", text, "--out", project, "--steps", "2", "--eval-interval", "2", *TINY_MODEL)
    assert r.returncode == 2 and "is not empty (README.md)" in r.stderr and "--overwrite" in r.stderr
    assert (project / "README.md").read_text(encoding="utf-8") == "my notes" and len(list(project.iterdir())) == 1
    r = charlm("--text", text, "--out", project, "--steps", "2", "--eval-interval", "2", "--overwrite", *TINY_MODEL)
    assert r.returncode == 0, r.stderr[-2000:]
    load_model(project)


def test_sigterm_saves_the_run_like_ctrl_c_and_exits_130(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT, TINY_TEXT

    text = tmp_path / "t.txt"
    text.write_text(TINY_TEXT * 3, encoding="utf-8")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "train.charlm", "--text", str(text), "--out", str(out), "--steps",
                             "100000", "--eval-interval", "5", *TINY_MODEL], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "config.json").exists():  # past its first checkpoint
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted at step" in stderr and "continue with --resume" in stderr and "Traceback" not in stderr
    assert json.loads(stdout.strip().splitlines()[-1])["interrupted"] and (out / "resume.pt").is_file()


def test_prompt_over_the_limit_is_refused_by_sample(trained):
    run, _ = trained
    r = charlm("sample", "--checkpoint", run, "--prompt", "a" * 2001)
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
    from conftest import ROOT

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
    r = run_command([sys.executable, "-m", "train.export_last", str(run), str(tmp_path / "last")])
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
    r = run_command([sys.executable, "-m", "train.export_last", str(run), str(tmp_path / "best"), "--best", "--half"])
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
    r = run_command([sys.executable, "-m", "train.export_last", str(run), str(run)])
    assert r.returncode == 2 and "must differ" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run_command([sys.executable, "-m", "train.export_last", str(tmp_path / "empty"), str(tmp_path / "out")])
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr


def test_export_last_replaces_a_model_only_with_overwrite(trained, tmp_path):
    import hashlib
    import sys

    run, _ = trained
    first = run_command([sys.executable, "-m", "train.export_last", str(run), str(tmp_path / "model"), "--best"])
    assert first.returncode == 0, first.stderr[-2000:]
    digest = hashlib.sha256((tmp_path / "model" / "model.safetensors").read_bytes()).hexdigest()
    r = run_command([sys.executable, "-m", "train.export_last", str(run), str(tmp_path / "model")])
    assert r.returncode == 2 and "already holds a trained model" in r.stderr and "--overwrite" in r.stderr
    assert hashlib.sha256((tmp_path / "model" / "model.safetensors").read_bytes()).hexdigest() == digest
    r = run_command([sys.executable, "-m", "train.export_last", str(run), str(tmp_path / "model"), "--overwrite"])
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run trained to its end without --keep-resume."""
    from conftest import TINY_TEXT
    folder = tmp_path_factory.mktemp("finished")
    text = folder / "tiny.txt"
    text.write_text(TINY_TEXT, encoding="utf-8")
    r = charlm("--text", text, "--out", folder / "run", "--steps", "4", "--eval-interval", "2", *TINY_MODEL)
    assert r.returncode == 0, r.stderr[-2000:]
    return folder / "run", text, r


def test_a_finished_run_deletes_its_resume_state_and_says_how_to_keep_it(finished):
    run, _, r = finished
    assert not (run / "resume.pt").exists() and not (run / "resume.safetensors").exists()
    assert "removed the resume state" in r.stderr and "--keep-resume" in r.stderr
    load_model(run)


def test_a_finished_runs_folder_is_refused_without_overwrite_and_resume_names_keep_resume(finished):
    run, text, _ = finished
    again = charlm("--text", text, "--out", run, "--steps", "4", *TINY_MODEL)
    assert again.returncode == 2 and "already holds a trained model" in again.stderr and "--overwrite" in again.stderr
    resumed = charlm("--text", text, "--out", run, "--steps", "8", "--resume", *TINY_MODEL)
    assert resumed.returncode == 2 and "nothing to resume" in resumed.stderr and "--keep-resume" in resumed.stderr


def test_export_last_of_a_finished_run_says_to_train_with_keep_resume(finished, tmp_path):
    import sys

    run, _, _ = finished
    r = run_command([sys.executable, "-m", "train.export_last", str(run), str(tmp_path / "last")])
    assert r.returncode == 2 and "--keep-resume" in r.stderr and "Traceback" not in r.stderr


def test_evaluate_splits_the_text_as_training_did(trained):
    run, text = trained
    n = len(text.read_text())  # every character is in the vocabulary
    parts = {}
    for split in ("train", "val"):
        r = charlm("evaluate", "--checkpoint", run, "--text", text, "--split", split)
        assert r.returncode == 0, r.stderr
        parts[split] = json.loads(r.stdout.strip().splitlines()[-1])
    assert parts["train"]["chars"] == int(0.9 * n) - 1 and parts["val"]["chars"] == n - int(0.9 * n) - 1
    assert parts["train"]["split"] == "train"


def test_evaluate_record_appends_the_result_and_command_to_the_card(trained, tmp_path):
    import shutil

    run, text = trained
    copy = tmp_path / "model"
    shutil.copytree(run, copy)
    assert (copy / "README.md").read_text().rstrip().endswith("## Evaluation")
    r = charlm("evaluate", "--checkpoint", copy, "--text", text, "--split", "val", "--record")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    last = (copy / "README.md").read_text().rstrip().splitlines()[-1]
    assert last.startswith("- `python -m train.charlm evaluate --checkpoint") and "--record" not in last
    assert f"{result['loss']} nats/char" in last and "--split val" in last


def test_record_evaluation_goes_at_the_end_of_the_evaluation_section(tmp_path):
    from seqmodels.cards import record_evaluation

    (tmp_path / "README.md").write_text("# Model\n\n## Evaluation (as shipped)\n\nMeasured with a pass.\n\n"
                                        "## Limitations\n\nSmall.\n", encoding="utf-8")
    record_evaluation(tmp_path, "- first")
    record_evaluation(tmp_path, "- second")
    assert (tmp_path / "README.md").read_text() == ("# Model\n\n## Evaluation (as shipped)\n\nMeasured with a pass.\n\n"
                                                   "- first\n- second\n\n## Limitations\n\nSmall.\n")
    record_evaluation(tmp_path / "new", "- only")  # no card yet: the section is made
    assert (tmp_path / "new" / "README.md").read_text() == "## Evaluation\n- only\n"


def _help(build_parser, args, monkeypatch, capsys) -> str:
    monkeypatch.setenv("COLUMNS", "250")  # one line per option: a default is never wrapped
    with pytest.raises(SystemExit):
        build_parser().parse_args([*args, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("command, defaults", [
    ("train", ["(default: 512 for rnn/lstm/gru", "(default: lstm)", "(default: 3000)", "(default: runs/charlm-CELL)"]),
    ("evaluate", ["(default: all)", "(default: 1)"]),
    ("sample", ["(default: 500)", "(default: 0.8)", "(default: True)"]),
])
def test_help_of_every_charlm_command_shows_its_defaults(command, defaults, monkeypatch, capsys):
    from train.charlm import build_parser
    shown = _help(build_parser, [command], monkeypatch, capsys)
    assert all(d in shown for d in defaults), shown


def test_train_writes_to_runs_charlm_cell_by_default(monkeypatch):
    import train.charlm as cli
    seen = {}
    monkeypatch.setattr(cli, "cmd_train", lambda args: seen.update(out=args.out))
    cli.main(["--text", "x.txt", "--cell", "gru"])
    assert seen["out"] == "runs/charlm-gru"


def test_memory_lag_takes_hidden_size_and_still_the_old_hidden_with_a_warning(monkeypatch, capsys):
    from train.memory_lag import build_parser
    assert build_parser().parse_args(["--hidden-size", "7"]).hidden_size == 7
    assert "deprecated" not in capsys.readouterr().err
    assert build_parser().parse_args(["--hidden", "7"]).hidden_size == 7
    assert "warning: --hidden is deprecated; use --hidden-size" in capsys.readouterr().err
    shown = _help(build_parser, [], monkeypatch, capsys)
    assert "(default: 32)" in shown and "--hidden " not in shown and "(default: 0)" in shown  # --threads too
