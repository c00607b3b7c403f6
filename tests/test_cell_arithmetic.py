"""The arithmetic view's numbers are PyTorch's own cells' numbers; the connectivity gradients are derivatives."""
import pytest
import torch
import torch.nn as nn

from seqmodels.cell_arithmetic import cell_arithmetic
from seqmodels.charmodels import build_char_model
from seqmodels.inside import input_influence, layer_states, span_units, units_together, unroll

from conftest import make_model

TORCH_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def _pytorch_cells(model):
    """One nn.*Cell per layer, holding that layer's weights."""
    cfg = model.config
    cells = []
    for layer in range(cfg.num_layers):
        size = cfg.embedding_dim if layer == 0 else cfg.hidden_size
        cell = TORCH_CELLS[cfg.cell](size, cfg.hidden_size)
        cell.load_state_dict({name: getattr(model.rnn, f"{name}_l{layer}") for name in
                              ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        cells.append(cell)
    return cells


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cell_arithmetic_equals_pytorchs_own_cells_at_every_step_and_layer(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell)
    ids = tokenizer.encode(tiny_text[:30]).ids
    cells = _pytorch_cells(model)
    H = model.config.hidden_size
    states = [(torch.zeros(1, H), torch.zeros(1, H)) for _ in cells]
    with torch.no_grad():
        for t in range(len(ids)):
            x = model.embedding(torch.tensor([ids[t]]))
            for layer, torch_cell in enumerate(cells):
                h_prev, c_prev = states[layer]
                if cell == "lstm":
                    h, c = torch_cell(x, (h_prev, c_prev))
                else:
                    h, c = torch_cell(x, h_prev), None
                mine = cell_arithmetic(model, ids, t, layer)
                h_t = mine.quantities[-1].values
                torch.testing.assert_close(mine["h_(t−1)"], h_prev[0], atol=1e-5, rtol=0)
                torch.testing.assert_close(h_t, h[0], atol=1e-5, rtol=0)
                # the pre-activations are the products PyTorch's cell multiplies
                gi = x[0] @ torch_cell.weight_ih.T + torch_cell.bias_ih
                gh = h_prev[0] @ torch_cell.weight_hh.T + torch_cell.bias_hh
                if cell == "lstm":
                    torch.testing.assert_close(mine["c_t"], c[0], atol=1e-5, rtol=0)
                    i, f, g, o = (gi + gh).chunk(4)
                    torch.testing.assert_close(mine["W_if x_t + b_if"], gi.chunk(4)[1], atol=1e-5, rtol=0)
                    torch.testing.assert_close(mine["f_t = σ(sum)"], torch.sigmoid(f), atol=1e-5, rtol=0)
                    torch.testing.assert_close(mine["f_t · c_(t−1)"] + mine["i_t · g_t"], c[0], atol=1e-5, rtol=0)
                    torch.testing.assert_close(mine["o_t = σ(sum)"] * torch.tanh(c[0]), h[0], atol=1e-5, rtol=0)
                elif cell == "gru":
                    r = torch.sigmoid(gi.chunk(3)[0] + gh.chunk(3)[0])
                    torch.testing.assert_close(mine["r_t = σ(sum)"], r, atol=1e-5, rtol=0)
                    n = torch.tanh(gi.chunk(3)[2] + r * gh.chunk(3)[2])
                    torch.testing.assert_close(mine["n_t = tanh(sum)"], n, atol=1e-5, rtol=0)
                else:
                    torch.testing.assert_close(mine["W_ih x_t + b_ih"] + mine["W_hh h_(t−1) + b_hh"], gi + gh,
                                               atol=1e-5, rtol=0)
                states[layer] = (h, c)
                x = h


@pytest.mark.parametrize("cell", ["mingru", "rglru"])
def test_linear_cell_arithmetic_reproduces_the_models_states_and_its_own_sum(tokenizer, tiny_text, cell):
    model = build_char_model(cell, dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=2)).eval()
    ids = tokenizer.encode(tiny_text[:30]).ids
    hidden = unroll(model, ids).hidden
    for t in (0, 1, 17, 29):
        for layer in (0, 1):
            mine = cell_arithmetic(model, ids, t, layer)
            torch.testing.assert_close(mine["h_t"], hidden[layer][t], atol=1e-5, rtol=0)
            kept, written = mine.quantities[-3].values, mine.quantities[-2].values  # old state kept, new written
            torch.testing.assert_close(kept + written, mine["h_t"], atol=1e-5, rtol=0)


def test_cell_arithmetic_refuses_an_index_outside_the_text_and_a_transformer(tokenizer):
    model = make_model(tokenizer, "gru")
    with pytest.raises(ValueError, match="between 0 and 2"):
        cell_arithmetic(model, [1, 2, 3], 3)
    with pytest.raises(ValueError, match="layer must be between 0 and 1"):
        cell_arithmetic(model, [1, 2, 3], 0, layer=2)
    transformer = build_char_model("transformer", dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=1,
                                                       num_heads=2)).eval()
    with pytest.raises(ValueError, match="no recurrent cell"):
        cell_arithmetic(transformer, [1, 2, 3], 1)


# the classic cells only: the linear recurrences run their scan in fp32 whatever the weights, too coarse for
# a finite difference (the hook that swaps in the leaf is the same code for every model)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_input_influence_equals_a_finite_difference_on_each_earlier_character(tokenizer, tiny_text, cell):
    model = make_model(tokenizer, cell).double()
    ids = tokenizer.encode(tiny_text[:24]).ids
    t = 20
    norms, loss = input_influence(model, ids, t)
    assert norms.shape == (t,) and torch.all(norms > 0)

    def loss_with_nudge(s, direction):
        # the same prediction with character s's embedding moved along ``direction``
        def nudge(module, args, output):
            output = output.clone()
            output[0, s] += direction  # (1, T, E)
            return output
        handle = model.embedding.register_forward_hook(nudge)
        try:
            with torch.no_grad():
                logits = model(torch.tensor([ids[:t]])).logits[0, -1:]
                return torch.nn.functional.cross_entropy(logits, torch.tensor([ids[t]])).item()
        finally:
            handle.remove()

    assert loss_with_nudge(0, 0.0) == pytest.approx(loss, rel=1e-9)
    for s in (0, 7, t - 1):
        eps, width = 1e-5, model.embedding.weight.size(1)
        # the derivative along each axis, by central differences, gives the whole gradient's norm
        grad = torch.tensor([(loss_with_nudge(s, eps * e) - loss_with_nudge(s, -eps * e)) / (2 * eps)
                             for e in torch.eye(width, dtype=torch.double)])
        assert grad.norm().item() == pytest.approx(norms[s].item(), rel=1e-5)


def test_input_influence_refuses_a_prediction_with_nothing_before_it(tokenizer):
    with pytest.raises(ValueError, match="between 1 and 2"):
        input_influence(make_model(tokenizer, "lstm"), [1, 2, 3], 0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mingru", "rglru"])
def test_layer_states_equal_the_unrolled_states(tokenizer, tiny_text, cell):
    if cell in ("mingru", "rglru"):
        model = build_char_model(cell, dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=2)).eval()
    else:
        model = make_model(tokenizer, cell)
    ids = tokenizer.encode(tiny_text[:50]).ids
    for fast, slow in zip(layer_states(model, ids), unroll(model, ids).hidden, strict=True):
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)


def test_units_on_over_a_span_are_found_and_found_again_where_they_fire_together():
    torch.manual_seed(0)
    hidden = torch.randn(200, 10) * 0.1
    hidden[50:60, 2] += 1.0  # unit 2 on over the span
    hidden[50:60, 7] -= 1.0  # unit 7 off over it
    hidden[150:158, 2] += 1.0  # ...and both again later
    hidden[150:158, 7] -= 1.0
    hidden[100:110, 2] += 1.0  # unit 2 alone: not the pattern
    units = span_units(hidden, 50, 60, k=2)
    assert sorted(u for u, _ in units) == [2, 7] and dict(units)[7] < 0 < dict(units)[2]
    together = units_together(hidden, units)
    assert together[150:158].min() > 1 and together[100:110].max() < 1 and together[:50].max() < 1


def test_a_span_of_zero_length_or_outside_the_text_is_refused():
    hidden = torch.randn(20, 4)
    for start, end in [(5, 5), (5, 3), (-1, 4), (10, 21)]:
        with pytest.raises(ValueError, match="span must lie inside the text"):
            span_units(hidden, start, end)
