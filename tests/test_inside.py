import pytest
import torch

from seqmodels.inside import gradient_flow, text_features, top_correlated_units, unroll

from conftest import make_model

CELLS = ["rnn", "lstm", "gru"]


@pytest.mark.parametrize("cell", CELLS)
def test_states_recomputed_from_the_weights_reproduce_the_library_forward(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell)
    ids = tokenizer.encode(tiny_text[:60]).ids
    out = model(torch.tensor([ids]))
    mine = unroll(model, ids)
    torch.testing.assert_close(mine.logits, out.logits[0], atol=1e-5, rtol=1e-4)
    # the last step's states for every layer equal nn.RNN's returned state
    torch.testing.assert_close(torch.stack([h[-1] for h in mine.hidden]), out.state[0][:, 0], atol=1e-5, rtol=1e-4)
    if cell == "lstm":
        torch.testing.assert_close(torch.stack([c[-1] for c in mine.cell]), out.state[1][:, 0], atol=1e-5, rtol=1e-4)
        assert set(mine.gates[0]) == {"input", "forget", "candidate", "output"}
    if cell == "gru":
        assert set(mine.gates[0]) == {"reset", "update", "candidate"}
    for gates in mine.gates:
        for name, g in gates.items():
            if name != "candidate":  # sigmoid gates live in (0, 1)
                assert g.min() >= 0 and g.max() <= 1


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_norms_come_from_autograd_and_match_a_finite_difference(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell).double()
    ids = tokenizer.encode(tiny_text[:25]).ids
    norms, loss = gradient_flow(model, ids)
    assert norms.shape == (len(ids) - 1,) and torch.all(norms >= 0)

    # finite difference along the gradient direction at one early step: d loss / d eps = |grad|
    import seqmodels.inside as inside

    step, layer = 5, 0
    original = inside.cell_update
    def loss_with_nudge(eps, direction):
        calls = {"n": 0}
        def nudged(cell_name, gi, gh, h, c):
            h2, c2, g = original(cell_name, gi, gh, h, c)
            if calls["n"] == step:  # layer 0 is unrolled first, so call `step` is (layer 0, t = step)
                h2 = h2 + eps * direction
            calls["n"] += 1
            return h2, c2, g
        inside.cell_update = nudged
        try:
            return gradient_flow(model, ids)[1]
        finally:
            inside.cell_update = original

    # the gradient for layer 0 at that step alone, from autograd
    idx = torch.tensor(ids[:-1])
    with torch.enable_grad():
        hidden, _, _, logits = inside._unroll(model, idx, keep_gates=False)
        l = torch.nn.functional.cross_entropy(logits[-1:], torch.tensor([ids[-1]]))
        grad = torch.autograd.grad(l, hidden[layer][step])[0]
    direction = grad / grad.norm()
    eps = 1e-5
    fd = (loss_with_nudge(eps, direction) - loss_with_nudge(-eps, direction)) / (2 * eps)
    assert fd == pytest.approx(grad.norm().item(), rel=1e-4)
    assert norms[step] >= grad.norm() * (1 - 1e-9)  # the total over layers includes this layer's part


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_flow_equals_autograd_through_the_unrolled_network_at_every_step(tokenizer, tiny_text, cell):
    import seqmodels.inside as inside

    model = make_model(tokenizer, cell).double()
    ids = tokenizer.encode(tiny_text[:40]).ids
    norms, loss = gradient_flow(model, ids)
    with torch.enable_grad():  # the reference: autograd on the graph of the step-by-step forward
        hidden, _, _, logits = inside._unroll(model, torch.tensor(ids[:-1]), keep_gates=False)
        reference = torch.nn.functional.cross_entropy(logits[-1:], torch.tensor([ids[-1]]))
        grads = torch.autograd.grad(reference, [h for layer in hidden for h in layer])
    expected = torch.stack([g.pow(2).sum() for g in grads]).view(len(hidden), -1).sum(0).sqrt()
    torch.testing.assert_close(norms, expected, rtol=1e-9, atol=1e-30)
    assert loss == pytest.approx(reference.item(), rel=1e-12)


def test_a_unit_that_copies_a_feature_is_found_first():
    torch.manual_seed(0)
    feature = text_features('He said "go now" and left.\nROMEO:\nHi.')["inside quotes"]
    hidden = torch.randn(len(feature), 8)
    hidden[:, 3] = feature * 2 - 1 + 0.01 * torch.randn(len(feature))
    (unit, r), *_ = top_correlated_units(hidden, feature)
    assert unit == 3 and r > 0.99


def test_text_features_mark_quotes_line_positions_and_speaker_lines():
    f = text_features('a "b" c\nROMEO:\nx')
    assert f["inside quotes"].tolist()[:6] == [0, 0, 1, 1, 0, 0]
    assert f["position in line"].tolist()[:9] == [0, 1, 2, 3, 4, 5, 6, 7, 0]
    assert f["speaker name line"].tolist()[8:14] == [1] * 6 and f["speaker name line"][0] == 0


def test_a_constant_feature_correlates_with_no_unit():
    assert top_correlated_units(torch.randn(10, 4), torch.ones(10)) == []
