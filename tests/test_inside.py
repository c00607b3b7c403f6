import pytest
import torch
import torch.nn.functional as F

from seqmodels.charlm import cell_update
from seqmodels.inside import gradient_flow, text_features, top_correlated_units, unroll

from conftest import make_model

CELLS = ["rnn", "lstm", "gru"]


def step_by_step(model, ids, nudge=None):
    """The reference unrolling: one ``cell_update`` per layer and character (the fast decoder's arithmetic), as a graph
    autograd can walk. Returns (hidden, cells, gates, logits), hidden and cells per layer as lists of (1, H) states.

    ``nudge`` (layer, t, vector) adds the vector to that state, before the next step and the layer above read it.
    """
    cfg = model.config
    x = model.embedding(torch.tensor(ids))  # (T, E)
    hidden, cells, gates = [], [], []
    for layer in range(cfg.num_layers):
        w_ih, w_hh, b_ih, b_hh = (getattr(model.rnn, f"{name}_l{layer}")
                                  for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        h = x.new_zeros(1, cfg.hidden_size)
        c = x.new_zeros(1, cfg.hidden_size) if cfg.cell == "lstm" else None
        hs, cs, gs = [], [], {}
        for t in range(len(ids)):
            h, c, g = cell_update(cfg.cell, F.linear(x[t:t + 1], w_ih, b_ih), F.linear(h, w_hh, b_hh), h, c)
            if nudge is not None and nudge[:2] == (layer, t):
                h = h + nudge[2]
            hs.append(h)
            cs.append(c)
            for name, value in g.items():
                gs.setdefault(name, []).append(value)
        hidden.append(hs)
        cells.append(cs)
        gates.append({name: torch.cat(v) for name, v in gs.items()})
        x = torch.cat(hs)
    return hidden, cells, gates, model.head(x)


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
def test_unrolled_states_and_gates_equal_cell_update_at_every_step(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell)
    ids = tokenizer.encode(tiny_text[:60]).ids
    mine = unroll(model, ids)
    with torch.no_grad():
        hidden, cells, gates, logits = step_by_step(model, ids)
    close = dict(atol=1e-6, rtol=1e-5)
    for layer in range(model.config.num_layers):
        torch.testing.assert_close(mine.hidden[layer], torch.cat(hidden[layer]), **close)
        if cell == "lstm":
            torch.testing.assert_close(mine.cell[layer], torch.cat(cells[layer]), **close)
        assert list(mine.gates[layer]) == list(gates[layer])  # the same gates, in cell_update's order
        for name, value in gates[layer].items():
            torch.testing.assert_close(mine.gates[layer][name], value, **close)
    torch.testing.assert_close(mine.logits, logits, **close)


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_norms_come_from_autograd_and_match_a_finite_difference(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell).double()
    ids = tokenizer.encode(tiny_text[:25]).ids
    norms, loss = gradient_flow(model, ids)
    assert norms.shape == (len(ids) - 1,) and torch.all(norms >= 0)

    # finite difference along the gradient direction at one early step: d loss / d eps = |grad|
    step, layer = 5, 0
    def loss_with_nudge(eps, direction):
        with torch.no_grad():
            logits = step_by_step(model, ids[:-1], nudge=(layer, step, eps * direction))[-1]
            return F.cross_entropy(logits[-1:], torch.tensor([ids[-1]])).item()

    assert loss_with_nudge(0.0, 0.0) == pytest.approx(loss, rel=1e-12)
    # the gradient for layer 0 at that step alone, from autograd
    hidden, _, _, logits = step_by_step(model, ids[:-1])
    l = F.cross_entropy(logits[-1:], torch.tensor([ids[-1]]))
    grad = torch.autograd.grad(l, hidden[layer][step])[0]
    direction = grad / grad.norm()
    eps = 1e-5
    fd = (loss_with_nudge(eps, direction) - loss_with_nudge(-eps, direction)) / (2 * eps)
    assert fd == pytest.approx(grad.norm().item(), rel=1e-4)
    assert norms[step] >= grad.norm() * (1 - 1e-9)  # the total over layers includes this layer's part


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_flow_equals_autograd_through_the_unrolled_network_at_every_step(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell).double()
    ids = tokenizer.encode(tiny_text[:40]).ids
    norms, loss = gradient_flow(model, ids)
    # the reference: autograd on the graph of the step-by-step forward
    hidden, _, _, logits = step_by_step(model, ids[:-1])
    reference = F.cross_entropy(logits[-1:], torch.tensor([ids[-1]]))
    grads = torch.autograd.grad(reference, [h for layer in hidden for h in layer])
    expected = torch.stack([g.pow(2).sum() for g in grads]).view(len(hidden), -1).sum(0).sqrt()
    torch.testing.assert_close(norms, expected, rtol=1e-9, atol=1e-30)
    assert loss == pytest.approx(reference.item(), rel=1e-12)


@pytest.mark.parametrize("cell", ["mingru", "minlstm", "rglru"])
def test_gradient_flow_of_a_linear_recurrence_equals_autograd_on_a_nudge_to_every_state(tokenizer, tiny_text, cell,
                                                                                         monkeypatch):
    from seqmodels import linear_rnn
    from seqmodels.charmodels import build_char_model
    from seqmodels.scan import loop_scan

    torch.manual_seed(0)
    model = build_char_model(cell, dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=3)).double().eval()
    ids = tokenizer.encode(tiny_text[:40]).ids
    norms, loss = gradient_flow(model, ids)
    # the reference: h_t = a_t h_(t-1) + b_t + e_t with e = 0, step by step; d loss / d e_t is the total derivative
    # of the state h_t, through every path autograd can find (the layer's later states, its output, the layers above)
    nudges = []

    def nudged_scan(a, b, h0):
        nudges.append(torch.zeros_like(b, requires_grad=True))
        return loop_scan(a, b + nudges[-1], h0)

    monkeypatch.setattr(linear_rnn, "linear_scan", nudged_scan)
    logits = model(torch.tensor([ids[:-1]]), record=[]).logits[0, -1:]  # record: the torch path, not the C kernels
    reference = F.cross_entropy(logits, torch.tensor([ids[-1]]))
    grads = torch.autograd.grad(reference, nudges)  # each (T, 1, H)
    expected = sum(g.pow(2).sum((1, 2)) for g in grads).sqrt()
    assert len(grads) == 3 and norms.shape == (len(ids) - 1,)
    # the gates and the scan run in fp32 whatever the weights' dtype, so the two orders of summing differ in fp32
    torch.testing.assert_close(norms, expected, rtol=1e-5, atol=1e-30, check_dtype=False)
    assert loss == pytest.approx(reference.item(), rel=1e-6)
    assert norms[0] < norms[-1]  # some of the signal fades on its way back: the test is not comparing zeros


def test_a_transformer_has_no_gradient_flow_to_show(tokenizer, tiny_text):
    from seqmodels.charmodels import build_char_model

    model = build_char_model("transformer", dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=1,
                                                 num_heads=2, context=12))
    with pytest.raises(ValueError, match="no recurrent state"):
        gradient_flow(model, tokenizer.encode(tiny_text[:10]).ids)


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


@pytest.mark.parametrize("view, cell", [("influence", "lstm"), ("influence", "mingru"), ("gradient", "mingru")])
def test_two_requests_probing_one_shared_model_at_once_get_their_own_answers(tokenizer, tiny_text, view, cell):
    """The app reads one model for several pages; the probes' hooks must act on their own thread's pass only."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from seqmodels.charmodels import build_char_model
    from seqmodels.inside import input_influence

    torch.manual_seed(0)
    model = build_char_model(cell, dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=2)).eval()
    texts = [tokenizer.encode(tiny_text[:30]).ids, tokenizer.encode(tiny_text[40:60]).ids]
    probe = (lambda ids: input_influence(model, ids, len(ids) - 1)) if view == "influence" else (
        lambda ids: gradient_flow(model, ids))
    alone = [probe(ids) for ids in texts]
    meet = threading.Barrier(2, timeout=20)  # both passes are past the embedding before either reaches the head
    model.head.register_forward_hook(lambda *_: [meet.wait(), None][1])
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(probe, texts))
    for (norms, loss), (norms_alone, loss_alone) in zip(together, alone):
        torch.testing.assert_close(norms, norms_alone)
        assert loss == pytest.approx(loss_alone)
