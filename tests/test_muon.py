import json

import pytest
import torch
from torch import nn

from seqmodels.checkpoint import CheckpointSpec
from seqmodels.data.text import CharLMTask
from seqmodels.linear_rnn import LinearRNNConfig, LinearRNNLM
from seqmodels.muon import MuonAdamW, muon_parameters, orthogonalize
from seqmodels.training import TrainConfig, TrainingError, train

from test_training import _cfg, _InterruptAt


def _tiny_model(tokenizer):
    torch.manual_seed(0)
    return LinearRNNLM(LinearRNNConfig(vocab_size=tokenizer.vocab_size, cell="mingru", hidden_size=16,
                                       num_layers=2, dropout=0.0))


def _task(tokenizer, text):
    ids = torch.tensor(tokenizer.encode(text).ids)
    n = int(0.9 * len(ids))
    return CharLMTask(ids[:n], ids[n:], batch_size=4, seq_len=16, checkpoint=CheckpointSpec(tokenizer))


def test_orthogonalize_brings_every_singular_value_near_one():
    torch.manual_seed(0)
    # singular values spread over two orders of magnitude (five iterations cannot lift much smaller ones)
    u, _ = torch.linalg.qr(torch.randn(48, 48))
    v, _ = torch.linalg.qr(torch.randn(16, 16))
    g = u[:, :16] @ torch.diag(torch.logspace(-1, 1, 16)) @ v.T
    for m in (g, g.T):  # tall and wide
        s = torch.linalg.svdvals(orthogonalize(m).float())
        assert orthogonalize(m).shape == m.shape
        assert s.min() > 0.5 and s.max() < 1.25, s  # the quintic iteration's band, not exact 1s


def test_only_hidden_linear_weights_go_to_muon(tokenizer):
    model = _tiny_model(tokenizer)
    chosen = muon_parameters(model)
    names = {name for name, p in model.named_parameters() if id(p) in chosen}
    assert names and all(name.startswith("blocks.") and name.endswith(".weight") for name in names)
    for name in ("embedding.weight", "head.weight", "blocks.0.mix.conv", "blocks.0.norm1.weight"):
        assert name not in names


def test_groups_without_muon_take_exactly_adamws_steps():
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    ours = MuonAdamW([{"params": [a.weight], "weight_decay": 0.1}, {"params": [a.bias], "weight_decay": 0.0}], lr=1e-2)
    torch_adamw = torch.optim.AdamW([{"params": [b.weight], "weight_decay": 0.1}, {"params": [b.bias], "weight_decay": 0.0}],
                                    lr=1e-2, betas=(0.9, 0.99))
    for _ in range(5):
        x = torch.randn(4, 5)
        for model, opt in ((a, ours), (b, torch_adamw)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    torch.testing.assert_close(a.weight, b.weight)
    torch.testing.assert_close(a.bias, b.bias)


def test_training_with_muon_lowers_the_loss_and_an_interrupted_run_resumes_to_the_same_weights(tmp_path, tokenizer,
                                                                                             tiny_text):
    straight = _tiny_model(tokenizer)
    train(straight, _task(tokenizer, tiny_text), _cfg(tmp_path / "a", optimizer="muon"))
    vals = [r["val_loss"] for r in map(json.loads, (tmp_path / "a" / "metrics.jsonl").read_text().splitlines())
            if r["split"] == "val"]
    assert vals[-1] < vals[0] - 0.5

    summary = train(_tiny_model(tokenizer), _InterruptAt(_task(tokenizer, tiny_text), 17),
                    _cfg(tmp_path / "b", optimizer="muon"))
    assert summary["interrupted"]
    resumed = _tiny_model(tokenizer)  # the momentum buffers must come back from the resume state too
    train(resumed, _task(tokenizer, tiny_text), _cfg(tmp_path / "b", optimizer="muon", resume=True))
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_an_unknown_optimizer_is_a_clear_error():
    with pytest.raises(ValueError, match="adamw or muon"):
        TrainConfig(optimizer="sgd")


@pytest.mark.parametrize("update_rms", [0.2, 1.0])
def test_a_muon_step_moves_each_entry_by_about_lr_times_update_rms(update_rms):
    torch.manual_seed(0)
    for shape in ((12, 40), (40, 12)):
        w = nn.Parameter(torch.randn(*shape))
        before = w.detach().clone()
        opt = MuonAdamW([{"params": [w], "muon": True}], lr=1e-2, update_rms=update_rms)
        w.grad = torch.randn(*shape)
        opt.step()
        rms = (w.detach() - before).pow(2).mean().sqrt().item()
        # exact for an orthogonal update; the quintic iteration leaves singular values within about +-30% of 1
        assert 0.6 * 1e-2 * update_rms < rms < 1.3 * 1e-2 * update_rms, (shape, rms)


def test_a_non_positive_update_rms_is_a_clear_error():
    with pytest.raises(ValueError, match="muon_update_rms must be > 0"):
        TrainConfig(optimizer="muon", muon_update_rms=0.0)


def test_resuming_with_another_optimizer_is_a_clear_error(tmp_path, tokenizer, tiny_text):
    summary = train(_tiny_model(tokenizer), _InterruptAt(_task(tokenizer, tiny_text), 12), _cfg(tmp_path))
    assert summary["interrupted"]
    with pytest.raises(TrainingError, match="trained with --optimizer adamw"):
        train(_tiny_model(tokenizer), _task(tokenizer, tiny_text), _cfg(tmp_path, optimizer="muon", resume=True))


def test_a_stack_of_matrices_is_orthogonalized_as_each_one_alone():
    torch.manual_seed(0)
    stack = torch.randn(3, 20, 7)
    together = orthogonalize(stack)
    for g, o in zip(stack, together):
        torch.testing.assert_close(o, orthogonalize(g), rtol=1e-4, atol=1e-5)
