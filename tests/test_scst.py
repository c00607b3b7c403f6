"""Self-critical captioning: the CIDEr-D and BLEU rewards, sampling with gradients, the baseline, `train.scst`."""
import contextlib
import io
import json
import sys

import pytest
import torch
from safetensors.torch import load_file

from seqmodels import load_model
from seqmodels.caption import NEVER_SAID
from seqmodels.decoding import sample_sequences
from seqmodels.decoding import searchable_log_probs
from seqmodels.scst import CiderD, SelfCritical, SelfCriticalTask, SentenceBleu, make_reward, ngram_counts
from seqmodels.tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID

from conftest import caption_cli, make_captioner, run_command

REFS = {
    "a": ["a dog runs on the grass", "a brown dog is running outside", "the dog runs across a field"],
    "b": ["two children play in the water", "kids splash in a pool", "two kids are playing in the water"],
    "c": ["a man rides a bike down a hill", "a cyclist on a mountain road", "a man on a bicycle"],
}
HYPS = {"a": "a dog is running on the grass", "b": "two children in the water", "c": "a dog on a bike"}


def test_cider_d_equals_the_coco_evaluation_given_the_same_references():
    from pycocoevalcap.cider.cider import Cider

    with contextlib.redirect_stdout(io.StringIO()):
        _, coco = Cider().compute_score({k: v for k, v in REFS.items()}, {k: [h] for k, h in HYPS.items()})
    ours = CiderD([[r.split() for r in REFS[k]] for k in REFS])
    for i, k in enumerate(REFS):
        assert ours.score(HYPS[k].split(), i) == pytest.approx(coco[i], rel=1e-9)
    assert ours.score(REFS["a"][0].split(), 0) > ours.score(HYPS["a"].split(), 0) > ours.score(HYPS["c"].split(), 0)


def test_sentence_bleu_equals_the_coco_evaluation_of_one_sentence():
    from pycocoevalcap.bleu.bleu import Bleu

    refs = {k: v for k, v in REFS.items() if k != "c"}
    hyps = {"a": ["a dog runs on the grass outside"], "b": ["two kids play in the water"]}
    with contextlib.redirect_stdout(io.StringIO()):
        _, per_sentence = Bleu(4).compute_score(refs, hyps)
    ours = SentenceBleu([[r.split() for r in refs[k]] for k in refs])
    for i, k in enumerate(refs):
        assert ours.score(hyps[k][0].split(), i) == pytest.approx(per_sentence[3][i], rel=1e-6)


def test_sentence_bleu_gives_a_near_miss_more_than_nothing_and_a_reference_one():
    bleu = SentenceBleu([[r.split() for r in REFS["a"]]])
    assert bleu.score(REFS["a"][1].split(), 0) == pytest.approx(1.0)
    assert 0 < bleu.score("a dog on the beach".split(), 0) < bleu.score("a dog runs on the beach".split(), 0)
    assert bleu.score("cat".split(), 0) == 0.0 and bleu.score([], 0) == 0.0


def test_a_mixed_reward_adds_its_parts_and_unknown_rewards_are_refused():
    refs = [[r.split() for r in REFS["b"]]]
    hyp = "two kids in the pool".split()
    mixed = make_reward("cider+bleu", refs).score(hyp, 0)
    assert mixed == pytest.approx(make_reward("cider", refs).score(hyp, 0) + make_reward("bleu", refs).score(hyp, 0))
    with pytest.raises(ValueError, match="reward must be one of"):
        make_reward("rouge", refs)


def test_ngram_counts_cover_orders_one_to_four():
    counts = ngram_counts(["a", "b", "a", "b"])
    assert counts[0] == {("a",): 2, ("b",): 2} and counts[1][("a", "b")] == 2 and counts[3] == {("a", "b", "a", "b"): 1}


def test_sampled_tokens_stop_at_the_end_and_carry_their_log_probabilities():
    model = make_captioner(vocab=12)
    feats = model.features(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    ctx, state = model.encode_features(feats)
    tokens, logp, mask = sample_sequences(model, ctx, state, max_len=15, pad_id=PAD_ID,
                                          generator=torch.Generator().manual_seed(0))
    assert logp.requires_grad
    for row in range(4):
        seq = tokens[row].tolist()
        n = seq.index(EOS_ID) + 1 if EOS_ID in seq else len(seq)
        assert mask[row].tolist() == [1.0] * n + [0.0] * (len(seq) - n)
        assert all(t == PAD_ID for t in seq[n:]) and not {BOS_ID, PAD_ID, UNK_ID} & set(seq[:n])
        # the teacher-forced log-probability of the same tokens is what sampling recorded
        forced = searchable_log_probs(model.decode(torch.tensor([[BOS_ID] + seq[:n - 1]]),
                                                   model.select_state(state, torch.tensor([row])),
                                                   model.select_context(ctx, torch.tensor([row])))[0][0], NEVER_SAID)
        expected = forced.gather(1, torch.tensor(seq[:n])[:, None])[:, 0]
        assert torch.allclose(logp[row, :n], expected, atol=1e-5)
        assert (logp[row, n:] == 0).all()


class _Constant:
    def score(self, tokens, image):
        return 1.0


class _StartsWith:
    """1 for captions that start with a given word, else 0."""

    def __init__(self, word):
        self.word = word

    def score(self, tokens, image):
        return float(bool(tokens) and tokens[0] == self.word)


def test_samples_that_all_score_the_same_teach_nothing():
    model = make_captioner(vocab=12)
    loss = SelfCritical(model, _Constant(), samples=4)(torch.randn(3, 4, 16), torch.arange(3)).loss
    loss.backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in model.parameters())


def test_self_critical_steps_make_the_rewarded_caption_more_likely():
    model = make_captioner(vocab=12).train()
    wrapped = SelfCritical(model, _StartsWith(7), samples=8, max_len=5)
    feats = torch.randn(4, 4, 16)

    def p_first(word):
        with torch.no_grad():
            ctx, state = model.encode_features(feats)
            logp, _, _ = model.step_log_probs(torch.full((4,), BOS_ID), state, ctx)
        return logp[:, word].exp().mean().item()

    before = p_first(7)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    torch.manual_seed(0)
    for _ in range(30):
        optimizer.zero_grad()
        wrapped(feats, torch.arange(4)).loss.backward()
        optimizer.step()
    assert p_first(7) > max(0.5, 3 * before)


def test_samples_come_from_the_decoder_without_dropout_unless_asked():
    model = make_captioner(vocab=12, dropout=0.5)
    feats = torch.randn(2, 4, 16)

    def log_probs_of_a_draw():
        # the same draws each time from their own generator, while dropout's masks come from the global one
        ctx, state = model.encode_features(feats)
        return sample_sequences(model, ctx, state, max_len=6, generator=torch.Generator().manual_seed(0))[1].detach()

    wrapped = SelfCritical(model, _Constant(), samples=2).train()
    assert wrapped.training and not model.training
    assert torch.equal(log_probs_of_a_draw(), log_probs_of_a_draw())
    SelfCritical(model, _Constant(), samples=2, dropout=True).train()
    assert model.training
    assert not torch.equal(log_probs_of_a_draw(), log_probs_of_a_draw())  # each call drops different units


def test_the_cross_entropy_anchor_adds_the_references_teacher_forced_loss():
    model = make_captioner(vocab=12)
    feats = torch.randn(2, 4, 16)
    tokens_in = torch.tensor([[BOS_ID, 5, 6, 7], [BOS_ID, 8, 9, PAD_ID]])
    tokens_out = torch.tensor([[5, 6, 7, EOS_ID], [8, 9, EOS_ID, PAD_ID]])

    def loss(xe_weight):
        torch.manual_seed(0)  # the same samples for both
        return SelfCritical(model, _StartsWith(7), samples=3, xe_weight=xe_weight).train()(
            feats, torch.arange(2), tokens_in, tokens_out).loss

    xe = model(features=feats, tokens_in=tokens_in, tokens_out=tokens_out).loss
    assert xe > 0
    assert (loss(0.3) - loss(0.0)).item() == pytest.approx(0.3 * xe.item(), rel=1e-5)
    with pytest.raises(ValueError, match="reference captions"):
        SelfCritical(model, _Constant(), samples=2, xe_weight=0.3)(feats, torch.arange(2))
    with pytest.raises(ValueError, match="xe_weight"):
        SelfCritical(model, _Constant(), samples=2, xe_weight=-1)


def test_self_critical_batches_carry_one_of_each_images_own_captions():
    caps = [[[5, 6]], [[7], [8, 9, 10]], [[11, 4, 4]]]
    task = SelfCriticalTask(torch.randn(3, 4, 16), torch.randn(1, 4, 16), [["x"]], None, batch_size=8,
                            train_caps=caps)
    batch = task.get_batch(torch.Generator().manual_seed(0))
    assert batch["tokens_in"].size(0) == batch["tokens_out"].size(0) == 8
    for image, t_in, t_out in zip(batch["image_ids"].tolist(), batch["tokens_in"].tolist(), batch["tokens_out"].tolist()):
        words = [t for t in t_out if t not in (PAD_ID, EOS_ID)]
        assert words in caps[image] and t_in[:len(words) + 1] == [BOS_ID, *words]
    assert "tokens_in" not in SelfCriticalTask(torch.randn(3, 4, 16), torch.randn(1, 4, 16), [["x"]], None,
                                               batch_size=2).get_batch(torch.Generator())


def test_one_sample_per_image_is_refused():
    with pytest.raises(ValueError, match="at least 2 samples"):
        SelfCritical(make_captioner(), _Constant(), samples=1)


def _scst(trained, dataset, out, *extra):
    return run_command([sys.executable, "-m", "train.scst", *map(str, [
                       "--init", trained[0], "--images", dataset / "images", "--captions",
                       dataset / "captions.txt", "--train-list", dataset / "train.txt", "--val-list",
                       dataset / "dev.txt", "--out", out, "--batch-size", "4", "--samples", "3", "--no-progress",
                       "--dtype", "fp32", "--keep-resume", *extra])])


def test_scst_fine_tunes_a_trained_model_and_keeps_its_encoder(trained, dataset, tmp_path):
    out = tmp_path / "scst"
    r = _scst(trained, dataset, out, "--steps", "10", "--eval-interval", "5", "--lr", "1e-3", "--xe-weight", "0.1")
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 10
    start = load_model(trained[0])[0].state_dict()
    _, _, config = load_model(out)
    evals = [json.loads(line) for line in open(out / "metrics.jsonl") if '"split": "val"' in line]
    assert [e["step"] for e in evals] == [0, 5, 10]
    logged = [json.loads(line) for line in open(out / "metrics.jsonl") if '"split": "train"' in line]
    assert len(logged) == 1 and logged[0]["reward"] >= 0  # the training log (every 10 steps) has the mean reward
    # the first of the highest validation CIDEr among steps with varied captions (--min-distinct 0.45 by default)
    best = max(evals, key=lambda e: (e["val_cider"] if e["val_distinct"] >= 0.45 else -1.0, -e["step"]))
    assert config["metrics"]["step"] == best["step"]
    last = load_file(str(out / "resume.safetensors"))  # the weights after the last step
    last = {k.removeprefix("captioner."): v for k, v in last.items()}
    assert all(torch.equal(last[k], v) for k, v in start.items() if k.startswith("encoder."))  # BN statistics too
    assert not torch.equal(last["out.weight"], start["out.weight"])
    # the last weights can be exported to compare on dev (the resume state once held a numpy CIDEr that
    # torch.load(weights_only=True) refused, so export_last and --resume failed on every self-critical run)
    exported = run_command([sys.executable, "-m", "train.export_last", str(out), str(tmp_path / "last")])
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert torch.equal(load_model(tmp_path / "last")[0].state_dict()["out.weight"], last["out.weight"])
    card = (out / "README.md").read_text()
    assert "Stage 1: cross-entropy" in card and "python -m train.caption --images" in card
    assert "python -m train.scst --init" in card and "; 12 training images" in card
    evaluated = caption_cli("evaluate", "--checkpoint", out, "--images", dataset / "images", "--captions",
                            dataset / "captions.txt", "--image-list", dataset / "dev.txt")
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout.strip().splitlines()[-1])["n"] == 6


@pytest.mark.parametrize("args, message", [
    (["--samples", "1"], "--samples: must be at least 2"),
    (["--init", "no/such/folder"], "no/such/folder"),
    (["--fine-tune-blocks", "2"], "needs a frozen efficientnet-lite0"),  # the fixture's encoder is the small CNN
])
def test_scst_bad_options_get_a_message(trained, dataset, tmp_path, args, message):
    r = _scst(trained, dataset, tmp_path / "scst", "--steps", "1", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr and message in r.stderr


def test_scst_will_not_overwrite_its_starting_model(trained, dataset):
    r = _scst(trained, dataset, trained[0], "--steps", "1")
    assert r.returncode == 2 and "--out must differ from --init" in r.stderr


def test_the_old_scst_spelling_still_runs_with_a_deprecation_note(trained, dataset, tmp_path):
    r = caption_cli("scst", "--init", trained[0], "--images", dataset / "images", "--captions", dataset / "captions.txt",
                    "--out", tmp_path / "old", "--steps", "2", "--eval-interval", "1", "--batch-size", "4",
                    "--samples", "2", "--no-progress", "--dtype", "fp32")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "deprecated; use `python -m train.scst`" in r.stderr and (tmp_path / "old" / "model.safetensors").is_file()
