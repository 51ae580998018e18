"""What the layers do with inputs that do not fit: a clear error, or a conversion.

Wrong shapes are a ValueError naming the expected and the given shape; any array NumPy
can view (non-contiguous, integer, the other float type) is converted and gives exactly
what the converted array gives; NaN in gives NaN out (no crash).
"""

import re

import numpy as np
import pytest

import lstmcore
from _variants import dtypes, kinds

H, I, LAYERS, D, B, T = 5, 3, 2, 2, 2, 4


def make(kind, batch_first=True, dtype=np.float64):
    cls = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU}[kind]
    return cls(I, H, LAYERS, bidirectional=True, batch_first=batch_first, dtype=dtype, seed=0)


def state_of(kind, shape_h=(LAYERS * D, B, H), shape_c=(LAYERS * D, B, H)):
    return (np.zeros(shape_h), np.zeros(shape_c)) if kind == "lstm" else np.zeros(shape_h)


def as_list(kind, state):
    return list(state) if kind == "lstm" else [state]


def shape_pattern(*shapes):
    """A regex matching all the given shapes, in order, in a message."""
    return ".*".join(re.escape(str(tuple(s))) for s in shapes)


@kinds
@pytest.mark.parametrize(
    "given, expected",
    [((T, I), (B, "T", I)), ((B, T, I + 4), (B, "T", I)), ((1, B, T, I), (B, "T", I)), ((B, T), (B, "T", I))],
    ids=["rank-2", "wrong-features", "rank-4", "rank-2-no-features"],
)
def test_wrong_input_shape_names_expected_and_given(kind, given, expected):
    with pytest.raises(ValueError, match=re.escape(f"(B, T, {I})") + ".*" + re.escape(str(given))):
        make(kind)(np.zeros(given))


@kinds
def test_wrong_input_shape_message_uses_the_time_major_layout(kind):
    with pytest.raises(ValueError, match=re.escape(f"(T, B, {I})") + ".*" + re.escape("(4, 2, 9)")):
        make(kind, batch_first=False)(np.zeros((4, 2, 9)))


@pytest.mark.parametrize("kind, which", [("lstm", "h"), ("lstm", "c"), ("gru", "h")])
@pytest.mark.parametrize("bad", [(LAYERS * D, B, H + 1), (LAYERS, B, H), (LAYERS * D, B + 1, H), (B, H)])
def test_wrong_state_shape_names_expected_and_given(kind, which, bad):
    good = (LAYERS * D, B, H)
    state = state_of(kind, bad if which == "h" else good, bad if which == "c" else good)
    layer = make(kind)
    with pytest.raises(ValueError, match=f"state {which}.*" + shape_pattern(good, bad)):
        layer(np.zeros((B, T, I)), state)


@pytest.mark.parametrize("state", [np.zeros((LAYERS * D, B, H)), [np.zeros((LAYERS * D, B, H))] * 3], ids=["array", "triple"])
def test_lstm_state_must_be_a_pair(state):
    with pytest.raises(ValueError, match=r"\(h, c\) pair"):
        make("lstm")(np.zeros((B, T, I)), state)


@kinds
@pytest.mark.parametrize("batch_first", [True, False])
def test_dy_unlike_y_names_expected_and_given(kind, batch_first):
    layer = make(kind, batch_first)
    x = np.zeros((B, T, I) if batch_first else (T, B, I))
    y, _, tape = layer.forward(x)
    for bad in [y.shape[:2] + (H,), y.shape[::-1], y.shape[:2]]:
        with pytest.raises(ValueError, match="dy.*" + shape_pattern(y.shape, bad)):
            layer.backward(tape, np.zeros(bad))


@kinds
def test_wrong_dstate_shape_names_expected_and_given(kind):
    layer = make(kind)
    y, _, tape = layer.forward(np.zeros((B, T, I)))
    good, bad = (LAYERS * D, B, H), (LAYERS * D, B + 1, H)
    with pytest.raises(ValueError, match="dstate h.*" + shape_pattern(good, bad)):
        layer.backward(tape, y, state_of(kind, bad, good))


@kinds
def test_tape_from_another_layer_is_refused(kind):
    layer, twin = make(kind), make(kind)  # same configuration and weights: still refused
    y, _, tape = twin.forward(np.zeros((B, T, I)))
    for foreign in (tape, None, "tape"):
        with pytest.raises(ValueError, match="tape"):
            layer.backward(foreign, y)
    other_kind = make("gru" if kind == "lstm" else "lstm")
    _, _, tape = other_kind.forward(np.zeros((B, T, I)))
    with pytest.raises(ValueError, match="tape"):
        layer.backward(tape, y)


@kinds
def test_tape_reused_after_params_changed_shape_is_refused(kind):
    layer = make(kind)
    y, _, tape = layer.forward(np.zeros((B, T, I)))
    good = layer.params["weight_hh_l1_reverse"].shape
    bad = (good[0], good[1] + 2)
    layer.params["weight_hh_l1_reverse"] = np.zeros(bad)
    with pytest.raises(ValueError, match="weight_hh_l1_reverse.*" + shape_pattern(good, bad)):
        layer.backward(tape, y)


@kinds
def test_params_of_another_shape_or_missing_are_refused_by_every_pass(kind):
    layer = make(kind)
    x = np.zeros((B, T, I))
    good = layer.params["weight_ih_l0"].shape
    layer.params["weight_ih_l0"] = np.zeros((good[0] + 1, good[1]))
    for run in (lambda: layer(x), lambda: layer.forward(x)):
        with pytest.raises(ValueError, match=r"params\['weight_ih_l0'\].*" + shape_pattern(good, (good[0] + 1, good[1]))):
            run()
    layer = make(kind)
    del layer.params["bias_hh_l1"]
    with pytest.raises(ValueError, match=r"params keys do not match the layer: missing \['bias_hh_l1'\]"):
        layer(x)


@kinds
def test_grads_that_backward_cannot_add_into_are_refused_before_training(kind):
    # Inference never touches grads; forward (training) and backward refuse what backward
    # could not add into in place: another shape, another dtype, a non-contiguous array.
    layer = make(kind)
    x = np.zeros((B, T, I))
    name = "weight_hh_l0"
    good = layer.grads[name]
    bad = {
        "shape": (np.zeros((good.shape[0], good.shape[1] + 1)), "of shape"),
        "dtype": (np.zeros(good.shape, np.float32), "must be a C-contiguous float64 array"),
        "layout": (np.asfortranarray(np.zeros(good.shape)), "must be a C-contiguous float64 array"),
    }
    for grad, message in bad.values():
        layer.grads[name] = grad
        layer(x)  # inference: fine
        with pytest.raises(ValueError, match=message):
            layer.forward(x)
        layer.grads[name] = good
        y, _, tape = layer.forward(x)
        layer.grads[name] = grad
        with pytest.raises(ValueError, match=message):
            layer.backward(tape, y)
        layer.grads[name] = good


def converted_cases():
    rng = np.random.default_rng(40)
    base = rng.normal(size=(B, T, I))
    wide = rng.normal(size=(B, 2 * T, I + 2))
    return {
        "non-contiguous": (wide[:, ::2, 1:-1], np.ascontiguousarray(wide[:, ::2, 1:-1])),
        "fortran-order": (np.asfortranarray(base), base),
        "int": ((base * 3).astype(np.int32), (base * 3).astype(np.int32).astype(np.float64)),
        "float32-into-float64": (base.astype(np.float32), base.astype(np.float32).astype(np.float64)),
        "nested-list": (base.tolist(), base),
    }


@kinds
@pytest.mark.parametrize("case", list(converted_cases()))
def test_convertible_inputs_give_the_converted_arrays_result(kind, case):
    given, converted = converted_cases()[case]
    layer = make(kind)
    y_given, state_given, tape_given = layer.forward(given)
    y_conv, state_conv, tape_conv = layer.forward(converted)
    np.testing.assert_array_equal(y_given, y_conv)
    for name, a, b in zip("hc", as_list(kind, state_given), as_list(kind, state_conv)):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}_n")
    dy = np.random.default_rng(41).normal(size=y_conv.shape)
    dx_given, _ = layer.backward(tape_given, dy)
    grads_given = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    dx_conv, _ = layer.backward(tape_conv, dy)
    assert dx_given.shape == np.shape(converted) and dx_given.dtype == np.float64
    np.testing.assert_array_equal(dx_given, dx_conv)
    for name in grads_given:
        np.testing.assert_array_equal(grads_given[name], layer.grads[name], err_msg=name)


@kinds
def test_convertible_state_and_gradients_give_the_converted_arrays_result(kind):
    rng = np.random.default_rng(42)
    layer = make(kind)
    x = rng.normal(size=(B, T, I))
    parts = [rng.normal(size=(LAYERS * D, B, H)) for _ in range(2 if kind == "lstm" else 1)]
    wrap = tuple if kind == "lstm" else (lambda p: p[0])
    odd = wrap([p.astype(np.float32) for p in parts])  # the other float type
    exact = wrap([p.astype(np.float32).astype(np.float64) for p in parts])
    y1, _, tape1 = layer.forward(x, odd)
    y2, _, tape2 = layer.forward(x, exact)
    np.testing.assert_array_equal(y1, y2)
    dy = rng.normal(size=y1.shape)
    dy_strided = np.repeat(dy, 2, axis=1)[:, ::2]  # non-contiguous view of dy
    dx1, d01 = layer.backward(tape1, dy_strided, odd)
    dx2, d02 = layer.backward(tape2, dy, exact)
    np.testing.assert_array_equal(dx1, dx2)
    for name, a, b in zip("hc", as_list(kind, d01), as_list(kind, d02)):
        np.testing.assert_array_equal(a, b, err_msg=f"d{name}0")


@kinds
@dtypes
def test_nan_in_gives_nan_out_only_where_it_flows(kind, dtype):
    layer = make(kind, dtype=dtype)
    x = np.random.default_rng(43).normal(size=(B, T, I)).astype(dtype)
    x[0, 1, 2] = np.nan  # batch 0, step 1
    y, state, tape = layer.forward(x)
    # Forward direction (first H features): NaN from step 1 on; the reverse direction of
    # layer 0 sees it at steps 1 and earlier, and layer 1 mixes both directions: all NaN.
    assert np.isnan(y[0]).all(), "layer 1 reads both directions of layer 0: batch 0 must be NaN everywhere"
    assert not np.isnan(y[1]).any(), "NaN leaked into another batch row"
    h_n = state[0] if kind == "lstm" else state
    assert np.isnan(h_n[:, 0]).all() and not np.isnan(h_n[:, 1]).any()
    dx, _ = layer.backward(tape, np.ones_like(y))
    assert np.isnan(dx[0]).any() and not np.isnan(dx[1]).any()
    assert all(np.isnan(grad).any() for grad in layer.grads.values())


@kinds
@pytest.mark.parametrize(
    "batch_first",
    [pytest.param(True, id="batch-first"), pytest.param(False, id="time-major")],
)
@pytest.mark.parametrize("empty", ["T", "B"])
def test_empty_sequence_or_batch_is_a_value_error_naming_the_given_shape(kind, batch_first, empty):
    steps, batch = (0, B) if empty == "T" else (T, 0)
    shape = (batch, steps, I) if batch_first else (steps, batch, I)
    with pytest.raises(ValueError, match="non-empty.*" + re.escape(str(shape))):
        make(kind, batch_first)(np.zeros(shape))


@kinds
@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"hidden_size": 0}, ValueError),
        ({"hidden_size": -3}, ValueError),
        ({"input_size": 0}, ValueError),
        ({"num_layers": 0}, ValueError),
        ({"hidden_size": 4.0}, TypeError),
        ({"hidden_size": True}, TypeError),
        ({"dtype": int}, (ValueError, TypeError)),
        ({"dtype": np.float16}, ValueError),
        ({"dtype": "not a dtype"}, TypeError),
    ],
    ids=[
        "hidden-0",
        "hidden-negative",
        "input-0",
        "layers-0",
        "hidden-float",
        "hidden-bool",
        "dtype-int",
        "dtype-float16",
        "dtype-garbage",
    ],
)
def test_invalid_constructor_arguments_are_refused(kind, kwargs, error):
    cls = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU}[kind]
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        cls(**args)


@kinds
@pytest.mark.parametrize("value", [np.array([["a", "b"]]), np.zeros((B, T, I), complex), {"x": 1}])
def test_non_numeric_input_is_a_type_error(kind, value):
    with pytest.raises(TypeError, match="x"):
        make(kind)(value)
