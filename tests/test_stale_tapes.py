"""A tape recorded before the parameters changed is refused by backward.

Changed in place (the README's ``params[k] -= lr * grads[k]``), by an optimizer step, by a
replaced array or by one ulp of one element: backward raises a ValueError naming the
parameter, before it adds anything to ``grads``. Unchanged parameters (also an equal copy,
or the other float precision holding the same values) are accepted.
"""

import numpy as np
import pytest

import lstmcore
from _variants import LAYER_VARIANTS
from lstmcore import Dense, Embedding, LastStep, Sequential, _core

B, T, I, H = 3, 5, 4, 6
STALE = "changed since the forward pass"


def make(variant, **extra):
    cls, options = LAYER_VARIANTS[variant]
    return cls(I, H, **{**options, **extra}, seed=0)


def one_ulp(layer, name):
    """Moves the middle element of params[name] by one ulp, in place."""
    flat = layer.params[name].reshape(-1)
    middle = flat.size // 2
    flat[middle] = np.nextafter(flat[middle], flat.dtype.type(np.inf))


def readme_step(layer, name):
    layer.params[name] -= 0.01 * layer.grads[name]


def sgd_step(layer, name):
    lstmcore.optim.SGD(layer.params, lr=0.1).step(layer.grads)


def adam_step(layer, name):
    lstmcore.optim.Adam(layer.params, lr=1e-3).step(layer.grads)


def replaced(layer, name):
    layer.params[name] = layer.params[name] + 0.5


def replaced_by_the_other_precision(layer, name):
    other = np.float64 if layer.dtype == np.float32 else np.float32
    layer.params[name] = (layer.params[name] * 0.5).astype(other)


CHANGES = [one_ulp, readme_step, sgd_step, adam_step, replaced, replaced_by_the_other_precision]


def forward_with_gradients(layer, x, **options):
    """A forward and backward (so grads are non-zero), then a fresh forward: (y, tape)."""
    y, _, tape = layer.forward(x, **options)
    layer.backward(tape, np.ones_like(y))
    y, _, tape = layer.forward(x, **options)
    return y, tape


@pytest.mark.parametrize("variant", sorted(LAYER_VARIANTS))
@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__)
def test_backward_refuses_a_tape_recorded_before_the_params_changed(variant, change):
    layer = make(variant, num_layers=2, bidirectional=True)
    x = np.random.default_rng(0).normal(size=(B, T, I)).astype(np.float32)
    y, tape = forward_with_gradients(layer, x)
    name = max(layer.params)
    change(layer, name)
    grads_before = {key: value.copy() for key, value in layer.grads.items()}
    with pytest.raises(ValueError, match=STALE):
        layer.backward(tape, np.ones_like(y))
    for key, value in layer.grads.items():  # refused before anything was added
        np.testing.assert_array_equal(value, grads_before[key], err_msg=key)
    y, _, tape = layer.forward(x)  # a new forward reads the new parameters
    layer.backward(tape, np.ones_like(y))


@pytest.mark.parametrize("variant", sorted(LAYER_VARIANTS))
def test_every_parameter_is_watched(variant):
    layer = make(variant, num_layers=2, bidirectional=True)
    x = np.ones((B, T, I), np.float32)
    for name in layer.params:
        y, _, tape = layer.forward(x)
        one_ulp(layer, name)
        with pytest.raises(ValueError, match=rf"params\['{name}'\] {STALE}"):
            layer.backward(tape, np.ones_like(y))


@pytest.mark.parametrize("variant", sorted(LAYER_VARIANTS))
def test_the_error_names_the_parameter_with_lengths_too(variant):
    layer = make(variant, bidirectional=True)
    x = np.ones((B, T, I), np.float32)
    y, _, tape = layer.forward(x, lengths=[5, 2, 3])
    layer.params["weight_hh_l0_reverse"][0, 0] += 1
    with pytest.raises(ValueError, match=rf"{layer.__class__.__name__}\.params\['weight_hh_l0_reverse'\] {STALE}"):
        layer.backward(tape, np.ones_like(y))


@pytest.mark.parametrize("variant", sorted(LAYER_VARIANTS))
def test_unchanged_params_are_accepted_also_as_an_equal_copy_or_the_other_precision(variant):
    layer = make(variant, dtype=np.float64)
    x = np.random.default_rng(1).normal(size=(B, T, I))
    y, _, tape = layer.forward(x)
    dx, _ = layer.backward(tape, np.ones_like(y))
    name = min(layer.params)
    layer.params[name] = layer.params[name].copy()
    np.testing.assert_array_equal(layer.backward(tape, np.ones_like(y))[0], dx)
    # float32 values are exact in float64: the same parameters as the core reads them
    layer32 = make(variant)
    y, _, tape = layer32.forward(x)
    layer32.params[name] = layer32.params[name].astype(np.float64)
    layer32.backward(tape, np.ones_like(y))


def test_dense_refuses_a_stale_tape_and_accepts_a_fresh_one():
    dense = Dense(4, 3, seed=0)
    x = np.ones((2, 4), np.float32)
    y, tape = dense.forward(x)
    dense.backward(tape, np.ones_like(y))
    for name in ("weight", "bias"):
        y, tape = dense.forward(x)
        dense.params[name][0] = np.nextafter(dense.params[name][0], np.float32(np.inf))
        with pytest.raises(ValueError, match=rf"Dense\.params\['{name}'\] {STALE}"):
            dense.backward(tape, np.ones_like(y))


def test_embedding_keeps_no_fingerprint_since_its_gradient_reads_no_weight():
    embedding = Embedding(5, 3, seed=0)
    ids = np.array([[0, 1, 4]])
    y, tape = embedding.forward(ids)
    embedding.params["weight"] += 1.0
    embedding.backward(tape, np.ones_like(y))
    expected = np.zeros((5, 3), np.float32)
    expected[[0, 1, 4]] = 1.0
    np.testing.assert_array_equal(embedding.grads["weight"], expected)


def test_sequential_refuses_a_stale_tape_after_an_optimizer_step_on_the_model():
    model = Sequential([Embedding(7, 4, seed=0), lstmcore.LSTM(4, 5, seed=1), LastStep(), Dense(5, 2, seed=2)])
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    optimizer = lstmcore.optim.Adam(model.params, lr=0.01)
    y, tape = model.forward(ids, training=True)
    model.backward(tape, np.ones_like(y))
    optimizer.step(model.grads)
    with pytest.raises(ValueError, match=STALE):
        model.backward(tape, np.ones_like(y))
    y, tape = model.forward(ids, training=True)
    model.backward(tape, np.ones_like(y))


def test_fit_trains_as_before():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 6, 2)).astype(np.float32)
    y = x.sum(axis=(1, 2))[:, None].astype(np.float32)
    model = Sequential([lstmcore.LSTM(2, 8, seed=0), LastStep(), Dense(8, 1, seed=1)])
    history = model.fit(
        x,
        y,
        loss="mse",
        epochs=5,
        batch_size=8,
        clip_norm=1.0,
        verbose=False,
        optimizer=lstmcore.optim.Adam(model.params, lr=0.02),
    )
    assert history.history["loss"][-1] < history.history["loss"][0]


# ----------------------------------------------------------------------------- the fingerprint


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_fingerprint_sees_any_single_element_change_and_a_swap(dtype):
    # 37 elements: a tail shorter than a 64-bit word for float32 and uint8
    base = np.arange(1, 38).astype(dtype)
    reference = _core.fingerprint(base)
    assert _core.fingerprint(base.copy()) == reference
    for position in range(base.size):
        changed = base.copy()
        changed[position] = np.nextafter(changed[position], np.inf) if base.dtype.kind == "f" else changed[position] + 1
        assert _core.fingerprint(changed) != reference, position
    swapped = base.copy()
    swapped[[3, 30]] = swapped[[30, 3]]
    assert _core.fingerprint(swapped) != reference


def test_fingerprint_tells_lengths_apart_and_refuses_a_strided_view():
    zeros = np.zeros(64, np.uint8)
    assert len({_core.fingerprint(zeros[:n]) for n in range(65)}) == 65
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.fingerprint(np.zeros((4, 4))[:, 1])


def test_a_refused_sequential_backward_adds_no_gradient_and_a_retry_counts_once():
    x = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    model = Sequential([lstmcore.LSTM(5, 8, seed=0), LastStep(), Dense(8, 2, seed=1)])
    y, tape = model.forward(x, training=True)
    model.backward(tape, np.ones_like(y))
    expected = {name: value.copy() for name, value in model.grads.items()}
    model.zero_grad()
    y, tape = model.forward(x, training=True)
    weight = model.params["0.weight_hh_l0"]
    original = weight[0, 0].copy()
    weight[0, 0] += 1e-3  # the inner LSTM's tape is stale; the later Dense's is not
    with pytest.raises(ValueError, match=STALE):
        model.backward(tape, np.ones_like(y))
    assert not any(np.any(value) for value in model.grads.values())
    weight[0, 0] = original
    model.backward(tape, np.ones_like(y))
    for name in expected:
        np.testing.assert_array_equal(model.grads[name], expected[name], err_msg=name)
