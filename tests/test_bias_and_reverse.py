"""``bias=False`` (no bias parameters, as PyTorch's) and ``reverse=True`` (one direction run
from each sequence's own end, ONNX's ``direction="reverse"``) on the LSTM family and the GRU.

A bias-free layer must compute what the same layer with zero biases computes (that layer
is checked against the NumPy reference elsewhere), have no bias keys, and match PyTorch's
``bias=False`` layers. A reverse layer must compute the forward layer on every sequence
flipped within its length, flipped back: ONNX's definition, written here without the core.
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmcore
from _compare import FD_ATOL, FD_RTOL, assert_close, numerical_gradient, sample_indices, scaled_atol
from _layers import move_off_initialisation, random_state, state_list
from _variants import dtypes, layer_class, layer_options, variants

FAMILIES = variants("lstm", "peephole", "coupled", "layer_norm", "projected", "gru")
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def _layer(variant, dtype, seed=0, **options):
    return layer_class(variant)(3, 5, dtype=dtype, seed=seed, **layer_options(variant), **options)


def _with_zero_biases(layer, variant, dtype, **options):
    """The same layer with bias=True and its biases zero."""
    twin = _layer(variant, dtype, **options)
    for name in twin.params:
        twin.params[name] = layer.params[name].copy() if name in layer.params else np.zeros_like(twin.params[name])
    return twin


def _flip_within(array, lengths, batch_first):
    """Each sequence's first ``length`` steps in reverse order; padding steps stay where they are."""
    flipped = array.copy()
    for b, length in enumerate(lengths):
        if batch_first:
            flipped[b, :length] = array[b, length - 1 :: -1]
        else:
            flipped[:length, b] = array[length - 1 :: -1, b]
    return flipped


def _pass(layer, x, state, lengths, dy):
    y, final, tape = layer.forward(x, state, lengths=lengths, training=False)
    layer.zero_grad()
    dx, dstate0 = layer.backward(tape, dy)
    return y, final, dx, dstate0, {name: grad.copy() for name, grad in layer.grads.items()}


# ----------------------------------------------------------------------- bias=False


@FAMILIES
@dtypes
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_a_bias_free_layer_is_the_layer_with_zero_biases_and_has_no_bias_keys(variant, dtype, with_lengths):
    options = {"num_layers": 2, "bidirectional": True}
    layer = _layer(variant, dtype, bias=False, **options)
    assert not [name for name in layer.params if "bias_" in name and not name.startswith("layer_norm")]
    assert set(layer.grads) == set(layer.params)
    twin = _with_zero_biases(layer, variant, dtype, **options)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6, 3)).astype(dtype)
    lengths = np.array([6, 2, 5, 1]) if with_lengths else None
    state = random_state(layer, 4, rng)
    dy = rng.normal(size=(4, 6, 2 * layer.output_size)).astype(dtype)
    got, expected = _pass(layer, x, state, lengths, dy), _pass(twin, x, state, lengths, dy)
    tol = TOLERANCE[dtype]
    for name, a, b in zip(("y", "dx"), (got[0], got[2]), (expected[0], expected[2])):
        assert_close(name, a, b, tol, scaled_atol(tol, b))
    for a, b in zip(state_list(got[1]) + state_list(got[3]), state_list(expected[1]) + state_list(expected[3])):
        assert_close("state", a, b, tol, scaled_atol(tol, b))
    for name, grad in got[4].items():
        assert_close(name, grad, expected[4][name], tol, scaled_atol(tol, expected[4][name]))


@FAMILIES
def test_a_bias_free_layers_gradients_match_finite_differences(variant):
    layer = _layer(variant, np.float64, bias=False, seed=3)
    move_off_initialisation(layer, seed=4)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 4, 3))
    dy = rng.normal(size=(2, 4, layer.output_size))

    def loss():
        return float(np.sum(layer(x)[0] * dy))

    _, _, tape = layer.forward(x, training=False)
    layer.zero_grad()
    dx, _ = layer.backward(tape, dy)
    assert_close("dx", dx, numerical_gradient(loss, x), FD_RTOL, FD_ATOL)
    for name, value in layer.params.items():
        indices = sample_indices(value.shape, 6, rng)
        sampled = np.full(value.shape, np.nan)
        for index in indices:
            sampled[index] = layer.grads[name][index]
        assert_close(name, sampled, numerical_gradient(loss, value, indices), FD_RTOL, FD_ATOL, equal_nan=True)


@pytest.mark.parametrize(
    "cls_name, options",
    [("LSTM", {}), ("LSTM", {"proj_size": 2}), ("GRU", {})],
    ids=["lstm", "projected", "gru"],
)
def test_bias_free_layers_match_pytorchs(cls_name, options):
    torch = pytest.importorskip("torch")
    layer = getattr(lstmcore, cls_name)(3, 5, 2, bidirectional=True, bias=False, dtype=np.float64, seed=0, **options)
    theirs = getattr(torch.nn, cls_name)(3, 5, 2, bidirectional=True, bias=False, batch_first=True, **options).double()
    assert sorted(name for name, _ in theirs.named_parameters()) == sorted(layer.params)
    with torch.no_grad():
        for name, parameter in theirs.named_parameters():
            parameter.copy_(torch.from_numpy(layer.params[name]))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 6, 3))
    dy = rng.normal(size=(4, 6, 2 * layer.output_size))
    y, _, dx, _, grads = _pass(layer, x, None, None, dy)
    x_t = torch.from_numpy(x).requires_grad_()
    y_t, _ = theirs(x_t)
    (y_t * torch.from_numpy(dy)).sum().backward()
    assert_close("y", y, y_t.detach().numpy(), 1e-12, 1e-12)
    assert_close("dx", dx, x_t.grad.numpy(), 1e-12, 1e-12)
    for name, parameter in theirs.named_parameters():
        assert_close(name, grads[name], parameter.grad.numpy(), 1e-10, 1e-10)


def test_forget_bias_needs_a_bias_and_bias_must_be_a_bool():
    with pytest.raises(ValueError, match="bias=False has none"):
        lstmcore.LSTM(3, 5, bias=False, forget_bias=1.0)
    with pytest.raises(TypeError, match="expected bias as a bool, got str 'False'"):
        lstmcore.GRU(3, 5, bias="False")


# ----------------------------------------------------------------------- reverse=True


@FAMILIES
@dtypes
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_reverse_is_the_forward_layer_on_each_sequence_flipped_within_its_length(variant, dtype, batch_first, with_lengths):
    # Two stacked reverse layers are flip . F2 . F1 . flip, since each flip undoes the last.
    options = {"num_layers": 2, "batch_first": batch_first}
    reverse = _layer(variant, dtype, reverse=True, **options)
    forward = _layer(variant, dtype, **options)
    forward.params = {name: value.copy() for name, value in reverse.params.items()}
    rng = np.random.default_rng(6)
    lengths = np.array([5, 2, 5, 1]) if with_lengths else np.array([5] * 4)
    shape = (4, 5) if batch_first else (5, 4)
    x = rng.normal(size=shape + (3,)).astype(dtype)
    dy = rng.normal(size=shape + (reverse.output_size,)).astype(dtype)
    if with_lengths:  # padding steps of dy are ignored by both
        padding = np.arange(5)[None, :] >= lengths[:, None]
        dy[padding if batch_first else padding.T] = 0
    state = random_state(reverse, 4, rng)
    given = lengths if with_lengths else None
    got = _pass(reverse, x, state, given, dy)
    flipped = _pass(forward, _flip_within(x, lengths, batch_first), state, given, _flip_within(dy, lengths, batch_first))
    tol = TOLERANCE[dtype]
    for name, a, b in (("y", got[0], flipped[0]), ("dx", got[2], flipped[2])):
        b = _flip_within(b, lengths, batch_first)
        assert_close(name, a, b, tol, scaled_atol(tol, b))
    for name, a, b in zip(("final", "dstate0"), (got[1], got[3]), (flipped[1], flipped[3])):
        for part_a, part_b in zip(state_list(a), state_list(b)):
            assert_close(name, part_a, part_b, tol, scaled_atol(tol, part_b))
    for name, grad in got[4].items():
        assert_close(name, grad, flipped[4][name], tol, scaled_atol(tol, flipped[4][name]))


def test_reverse_is_the_second_direction_of_a_bidirectional_layer():
    both = lstmcore.LSTM(3, 5, bidirectional=True, dtype=np.float64, seed=0)
    reverse = lstmcore.LSTM(3, 5, reverse=True, dtype=np.float64, seed=1)
    reverse.params = {name: both.params[name + "_reverse"].copy() for name in reverse.params}
    x = np.random.default_rng(7).normal(size=(2, 6, 3))
    y_both, (h_both, c_both) = both(x, lengths=[6, 3])
    y, (h, c) = reverse(x, lengths=[6, 3])
    np.testing.assert_array_equal(y, y_both[..., 5:])
    np.testing.assert_array_equal(h[0], h_both[1])
    np.testing.assert_array_equal(c[0], c_both[1])


@pytest.mark.parametrize("cls", [lstmcore.LSTM, lstmcore.GRU])
def test_reverse_refuses_bidirectional_and_step(cls):
    with pytest.raises(ValueError, match="a bidirectional layer already runs both ways"):
        cls(3, 5, bidirectional=True, reverse=True)
    with pytest.raises(ValueError, match="step needs a layer that runs forward in time"):
        cls(3, 5, reverse=True).step(np.zeros((1, 3), np.float32))


@pytest.mark.parametrize("cls", [lstmcore.LSTM, lstmcore.GRU])
def test_bias_free_and_reverse_layers_survive_a_model_file(cls, tmp_path):
    model = lstmcore.Sequential([cls(3, 5, 2, bias=False, reverse=True, seed=0), lstmcore.LastStep()])
    path = tmp_path / "model.lstmcore"
    model.save(path)
    loaded = lstmcore.load(path)
    layer = loaded.layers[0]
    assert (layer.bias, layer.reverse) == (False, True)
    assert sorted(layer.params) == sorted(model.layers[0].params)
    x = np.random.default_rng(8).normal(size=(2, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
