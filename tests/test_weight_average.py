"""The training loop's moving average of the weights (``--ema-decay``): what it averages, what it evaluates and
saves, and that a resumed run averages on as an unbroken one does."""
import json

import pytest
import torch

from seqmodels.averaging import WeightAverage
from seqmodels.checkpoint import load_model
from seqmodels.training import TrainConfig, train

from test_training import _cfg, _InterruptAt, _model, _task


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_the_average_weighs_each_update_without_the_initial_weights_and_is_swapped_in_only_inside_applied():
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.75)
    start = _weights(model)
    with average.applied():  # before any update the weights are their own average
        for p, w in zip(model.parameters(), start):
            assert torch.equal(p.detach(), w)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update()
    # the sum 0.75 * 0.25 (w + 1) + 0.25 (w + 2), divided by 1 - 0.75^2: shares 3/7 and 4/7, none for w itself
    expected = [w + 11 / 7 for w in start]
    own = _weights(model)
    with average.applied():
        for p, e in zip(model.parameters(), expected):
            torch.testing.assert_close(p.detach(), e)
    for p, w in zip(model.parameters(), own):
        assert torch.equal(p.detach(), w)  # its own weights back, bit for bit


class _Watched(_InterruptAt):
    """Records the model's weights at every batch (the weights after each step) and at every evaluation."""

    def __init__(self, task, model, at=-1):
        super().__init__(task, at)
        self.model, self.seen_at_batch, self.seen_at_eval = model, [], []

    def get_batch(self, g):
        self.seen_at_batch.append(_weights(self.model))
        return super().get_batch(g)

    def evaluate(self, model):
        self.seen_at_eval.append(_weights(model))
        return super().evaluate(model)


def test_training_evaluates_and_saves_the_average_and_keeps_training_the_weights_themselves(
        tmp_path, tokenizer, tiny_text):
    decay = 0.8
    model = _model(tokenizer)
    task = _Watched(_task(tokenizer, tiny_text), model)
    train(model, task, _cfg(tmp_path, max_steps=20, eval_interval=10, ema_decay=decay))
    raw = task.seen_at_batch + [_weights(model)]  # raw[k]: the weights after k steps
    for step, evaluated in zip([0, 10, 20], task.seen_at_eval):
        expected = [torch.zeros_like(w) for w in raw[0]]
        for k in range(1, step + 1):
            expected = [decay * e + (1 - decay) * w for e, w in zip(expected, raw[k])]
        expected = [e / (1 - decay ** step) for e in expected] if step else raw[0]
        for got, want in zip(evaluated, expected):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(a, b) for a, b in zip(task.seen_at_eval[-1], raw[-1]))  # an average, not the weights
    saved, _, config = load_model(tmp_path)
    best = [0, 10, 20].index(config["metrics"]["step"])
    for got, want in zip(saved.parameters(), task.seen_at_eval[best]):
        torch.testing.assert_close(got.detach(), want)


def test_a_resumed_run_keeps_averaging_as_an_unbroken_run_does(tmp_path, tokenizer, tiny_text):
    straight = _model(tokenizer)
    train(straight, _task(tokenizer, tiny_text), _cfg(tmp_path / "a", ema_decay=0.9))
    train(_model(tokenizer), _InterruptAt(_task(tokenizer, tiny_text), 17), _cfg(tmp_path / "b", ema_decay=0.9))
    train(_model(tokenizer), _task(tokenizer, tiny_text), _cfg(tmp_path / "b", ema_decay=0.9, resume=True))

    def val_losses(folder):
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        return {r["step"]: r["val_loss"] for r in map(json.loads, lines) if r["split"] == "val"}

    a, b = val_losses(tmp_path / "a"), val_losses(tmp_path / "b")
    assert b[30] == pytest.approx(a[30], abs=1e-6)  # the average after the resume, not one restarted at step 17
    for p, q in zip(load_model(tmp_path / "a")[0].parameters(), load_model(tmp_path / "b")[0].parameters()):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_a_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=decay)
