import json
import os
import shutil
import sys

import pytest
import torch

from seqmodels.charlm import CharLM, CharLMConfig
from seqmodels.checkpoint import CheckpointSpec, load_model
from seqmodels.data.text import CharLMTask
from seqmodels.training import TrainConfig, TrainingError, lr_at, train

from conftest import free_port, run_command


def _task(tokenizer, text, **kw):
    ids = torch.tensor(tokenizer.encode(text).ids)
    n = int(0.9 * len(ids))
    return CharLMTask(ids[:n], ids[n:], batch_size=4, seq_len=16,
                      checkpoint=CheckpointSpec(tokenizer), **kw)


def _model(tokenizer):
    torch.manual_seed(0)
    return CharLM(CharLMConfig(vocab_size=tokenizer.vocab_size, cell="lstm", embedding_dim=8, hidden_size=16,
                               num_layers=2, dropout=0.1))


def _cfg(out, **kw):
    base = dict(out_dir=str(out), max_steps=30, eval_interval=10, log_interval=5, warmup_steps=5,
                learning_rate=1e-2, progress=False, dtype="fp32")
    return TrainConfig(**{**base, **kw})


def test_training_lowers_validation_loss_and_saves_the_best_checkpoint(tmp_path, tokenizer, tiny_text):
    summary = train(_model(tokenizer), _task(tokenizer, tiny_text), _cfg(tmp_path, max_steps=60))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    vals = [r["val_loss"] for r in records if r["split"] == "val"]
    assert vals[-1] < vals[0] - 0.5
    assert summary["best_metric"] == "val_loss" and summary["best_value"] == min(vals)
    assert summary["best_step"] == [r["step"] for r in records if r["split"] == "val"][vals.index(min(vals))]
    _, _, config = load_model(tmp_path)
    assert config["metrics"]["val_loss"] == min(vals)
    train_rows = [r for r in records if r["split"] == "train"]
    assert {"loss", "lr", "tokens_per_s", "grad_norm"} <= set(train_rows[0])


def test_schedule_warms_up_then_decays_to_min_lr():
    cfg = TrainConfig(max_steps=100, warmup_steps=10, learning_rate=1.0, min_lr=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(30, cfg) > lr_at(60, cfg) > lr_at(90, cfg)


def test_warm_up_takes_at_most_a_tenth_of_a_short_run():
    cfg = TrainConfig(max_steps=120, warmup_steps=100, learning_rate=1.0, min_lr=0.1)
    assert lr_at(0, cfg) == pytest.approx(1 / 12) and lr_at(5, cfg) == pytest.approx(0.5)
    assert lr_at(11, cfg) == pytest.approx(1.0)  # full rate after 12 of 120 steps, not 100
    assert lr_at(120, cfg) == pytest.approx(0.1)
    long = TrainConfig(max_steps=3000, warmup_steps=100, learning_rate=1.0)
    assert lr_at(49, long) == pytest.approx(0.5)  # a run long enough keeps the warm-up it asked for
    assert lr_at(0, TrainConfig(max_steps=5, warmup_steps=100, learning_rate=1.0)) == pytest.approx(1.0)  # at least 1


def test_a_time_budget_ends_training_and_the_schedule_follows_the_clock(tmp_path, tokenizer, tiny_text, monkeypatch):
    import seqmodels.training as training
    clock = iter(range(10_000))
    monkeypatch.setattr(training.time, "time", lambda: float(next(clock)))  # one "second" per call
    summary = train(_model(tokenizer), _task(tokenizer, tiny_text), _cfg(tmp_path, max_steps=10_000, time_budget_s=40))
    assert summary["out_of_time"] and not summary["interrupted"] and 0 < summary["steps"] < 40
    assert lr_at(500, TrainConfig(max_steps=10_000, warmup_steps=10, learning_rate=1.0, min_lr=0.1), 1.0) == pytest.approx(0.1)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    final = [r["step"] for r in records if r["split"] == "val"]
    assert final[-1] == summary["steps"] and len(final) == len(set(final))  # the last step evaluated once


class _InterruptAt:
    """Wraps a task and raises KeyboardInterrupt (as Ctrl-C would) when batch number ``at`` is asked for."""

    def __init__(self, task, at):
        self.task, self.at, self.calls = task, at, 0

    def get_batch(self, g):
        if self.calls == self.at:
            raise KeyboardInterrupt
        self.calls += 1
        return self.task.get_batch(g)

    def evaluate(self, model):
        return self.task.evaluate(model)

    def save(self, *a):
        self.task.save(*a)


def test_interrupt_then_resume_continues_from_the_saved_step_and_matches_an_unbroken_run(tmp_path, tokenizer, tiny_text):
    straight = _model(tokenizer)
    train(straight, _task(tokenizer, tiny_text), _cfg(tmp_path / "a"))

    broken = _model(tokenizer)
    summary = train(broken, _InterruptAt(_task(tokenizer, tiny_text), 17), _cfg(tmp_path / "b"))
    assert summary["interrupted"] and summary["steps"] == 17
    resumed = _model(tokenizer)  # fresh weights: everything must come from the resume files
    summary = train(resumed, _task(tokenizer, tiny_text), _cfg(tmp_path / "b", resume=True))
    assert summary["steps"] == 30 and not summary["interrupted"]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    steps = [json.loads(r)["step"] for r in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # the resumed run appended after the old one, no step twice
    assert len([s for s in steps if s == 20]) == 2  # one train and one val record


def test_resume_without_a_previous_run_is_a_clear_error(tmp_path, tokenizer, tiny_text):
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(_model(tokenizer), _task(tokenizer, tiny_text), _cfg(tmp_path, resume=True))


class _PoisonAfter(_InterruptAt):
    """Returns batches whose loss is NaN from batch ``at`` on (as a bad learning rate would make it)."""

    def get_batch(self, g):
        self.calls += 1
        batch = self.task.get_batch(g)
        return batch if self.calls <= self.at else {**batch, "poison": torch.ones(1)}


class _PoisonableLM(CharLM):
    def forward(self, idx, targets=None, state=None, poison=None):
        out = super().forward(idx, targets, state)
        return out._replace(loss=out.loss * float("nan")) if poison is not None else out


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, tokenizer, tiny_text):
    torch.manual_seed(0)
    model = _PoisonableLM(CharLMConfig(vocab_size=tokenizer.vocab_size, embedding_dim=8, hidden_size=16))
    with pytest.raises(TrainingError, match="loss became nan at step 25"):
        train(model, _PoisonAfter(_task(tokenizer, tiny_text), 25), _cfg(tmp_path))
    good, _, config = load_model(tmp_path)
    assert config["metrics"]["step"] == 20
    assert all(torch.isfinite(p).all() for p in good.parameters())


def test_two_cpu_processes_under_torchrun_train_and_save_once(tmp_path, tiny_text_file):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    out = tmp_path / "ddp"
    # an explicit free rendezvous port on loopback rather than --standalone's default
    rdzv = ["--nnodes", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}"]
    r = run_command([torchrun, *rdzv, "--nproc_per_node", "2", "-m", "train.charlm", "--text", str(tiny_text_file),
                     "--out", str(out), "--steps", "12", "--eval-interval", "6", "--batch-size", "4", "--seq-len", "16",
                     "--hidden-size", "16", "--no-progress", "--dtype", "fp32"])
    assert r.returncode == 0, f"stdout:\n{r.stdout[-1500:]}\nstderr:\n{r.stderr[-3000:]}"
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["steps"] == 12
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val_steps = [r["step"] for r in records if r["split"] == "val"]
    assert val_steps == [0, 6, 12]  # rank 0 alone evaluates and logs: no record twice
    load_model(out)


@pytest.mark.parametrize("keep", [False, True])
def test_a_finished_run_deletes_its_resume_state_unless_asked_to_keep_it(tmp_path, tokenizer, tiny_text, keep, caplog):
    caplog.set_level("INFO", logger="seqmodels.training")
    train(_model(tokenizer), _task(tokenizer, tiny_text), _cfg(tmp_path, max_steps=10, eval_interval=5, keep_resume=keep))
    assert (tmp_path / "resume.pt").exists() == keep and (tmp_path / "resume.safetensors").exists() == keep
    assert ("removed the resume state" in caplog.text) != keep
    load_model(tmp_path)  # the best checkpoint stays either way


def test_an_interrupted_run_keeps_its_resume_state(tmp_path, tokenizer, tiny_text):
    train(_model(tokenizer), _InterruptAt(_task(tokenizer, tiny_text), 7), _cfg(tmp_path))
    assert (tmp_path / "resume.pt").exists() and (tmp_path / "resume.safetensors").exists()


class _InterruptInFirstEvaluation(_InterruptAt):
    def evaluate(self, model):
        raise KeyboardInterrupt


def test_an_interrupt_before_the_first_checkpoint_keeps_nothing_it_could_not_resume(tmp_path, tokenizer, tiny_text,
                                                                                    caplog):
    summary = train(_model(tokenizer), _InterruptInFirstEvaluation(_task(tokenizer, tiny_text), -1), _cfg(tmp_path))
    assert summary["interrupted"] and summary["best_step"] == -1
    # a resume needs the checkpoint's config.json: resume files alone sent the person in a circle
    assert not (tmp_path / "resume.pt").exists() and not (tmp_path / "config.json").exists()
    assert "before the first checkpoint was saved: nothing was kept" in caplog.text


class _Scored(_InterruptAt):
    """Reports a scripted score at each evaluation; the best checkpoint is the one with the highest."""

    select_metric, select_mode = "score", "max"

    def __init__(self, task, scores):
        super().__init__(task, at=-1)  # never interrupts
        self.scores = iter(scores)

    def evaluate(self, model):
        return {**self.task.evaluate(model), "score": next(self.scores)}


def test_a_task_that_maximises_its_metric_keeps_the_checkpoint_with_the_highest(tmp_path, tokenizer, tiny_text):
    summary = train(_model(tokenizer), _Scored(_task(tokenizer, tiny_text), [1.0, 3.0, 2.0, 2.5]), _cfg(tmp_path))
    assert (summary["best_metric"], summary["best_value"], summary["best_step"]) == ("score", 3.0, 10)
    _, _, config = load_model(tmp_path)
    assert config["metrics"]["step"] == 10 and config["metrics"]["score"] == 3.0


def test_resume_state_written_before_select_metric_still_resumes(tmp_path, tokenizer, tiny_text):
    train(_model(tokenizer), _InterruptAt(_task(tokenizer, tiny_text), 17), _cfg(tmp_path))
    state = torch.load(tmp_path / "resume.pt", weights_only=True)
    best = state.pop("best_value")
    del state["best_metric"]
    torch.save({**state, "best_val": best}, tmp_path / "resume.pt")  # the old layout
    summary = train(_model(tokenizer), _task(tokenizer, tiny_text), _cfg(tmp_path, resume=True))
    vals = [json.loads(r)["val_loss"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()
            if '"split": "val"' in r]
    assert summary["steps"] == 30 and summary["best_value"] == min(vals)


def test_a_watcher_sees_every_record_and_its_stop_ends_the_run_with_a_last_evaluation(tmp_path, tokenizer, tiny_text):
    seen = []

    def watch(record):
        seen.append(record)
        return record["split"] == "step" and record["step"] == 12  # "Stop" pressed before step 12

    summary = train(_model(tokenizer), _task(tokenizer, tiny_text), _cfg(tmp_path, max_steps=1000), on_event=watch)
    assert summary["stopped"] and not summary["out_of_time"] and summary["steps"] == 12
    written = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in seen if r["split"] != "step"] == [{**r, "total_steps": 1000} for r in written]
    assert written[-1]["split"] == "val" and written[-1]["step"] == 12  # what was learned is evaluated and kept
    assert load_model(tmp_path)[2]["metrics"]["step"] in {0, 10, 12}


def test_evaluation_by_the_clock_adds_evaluations_between_the_interval_ones(tmp_path, tokenizer, tiny_text, monkeypatch):
    import seqmodels.training as training

    clock = iter(range(0, 10_000))  # each call of time.time() is one second later
    monkeypatch.setattr(training.time, "time", lambda: float(next(clock)))
    train(_model(tokenizer), _task(tokenizer, tiny_text), _cfg(tmp_path, max_steps=20, eval_interval=1000, eval_every_s=5))
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "val"]
    assert steps[0] == 0 and steps[-1] == 20 and len(steps) >= 4  # not only the first and the last


def test_a_run_that_fails_after_saving_still_gets_its_card_for_the_checkpoint_it_kept(tmp_path, tokenizer, tiny_text):
    from train.common import train_and_card

    torch.manual_seed(0)
    model = _PoisonableLM(CharLMConfig(vocab_size=tokenizer.vocab_size, embedding_dim=8, hidden_size=16))
    with pytest.raises(SystemExit):
        train_and_card(model, _PoisonAfter(_task(tokenizer, tiny_text), 25), _cfg(tmp_path),
                       lambda best, run: f"best at step {best['step']}; run summary {run}")
    assert (tmp_path / "README.md").read_text() == "best at step 20; run summary None"
