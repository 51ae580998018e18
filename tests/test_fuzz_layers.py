"""Property-based fuzzing of the layer API (hypothesis; derandomized, so every run draws the
same examples, and bounded in number): small LSTMs (plain, peephole, coupled, layer_norm,
proj_size) and GRUs of random sizes, depths, directions, layouts and dtypes, called with
random inputs, states and lengths, and with broken ones.

- Valid calls give the NumPy reference's results: forward and backward, each sequence
  checked against the reference running it alone (so lengths are covered), with the
  tolerances of tests/_layer_vs_reference.py. Dropout, recurrent dropout and zoneout draw
  masks per call and are left to tests/test_variants.py.
- Broken calls (wrong shapes, ranks, dtypes, zero sizes, lengths out of range, a state
  that does not fit, another layer's tape, bad constructor arguments) raise ValueError or
  TypeError with a message saying what was expected; never anything else, and never a
  crash (CI runs this file under AddressSanitizer too: .ci/sanitize).
- Inputs NumPy can view (non-contiguous, Fortran order, the other float type, integers)
  give exactly what the converted array gives; NaN in one sequence leaves the others'
  results exactly as they were.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstmcore
from _layer_vs_reference import assert_matches_reference, reference_kind
from _layers import layer_state, move_off_initialisation, random_state, state_list
from _variants import LSTM_CELLS
from lstmcore import reference
from lstmcore._util.checks import shape_text

# Fixed examples, none saved between runs. An example is small and quick (slower under
# the sanitizer); the deadline only catches a pass gone pathologically slow, with room for
# a machine that other processes share.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VARIANTS = (*LSTM_CELLS, "gru")


@st.composite
def layers(draw):
    """A small layer of any variant, its parameters moved off their initial values."""
    variant = draw(st.sampled_from(VARIANTS))
    hidden = draw(st.integers(1, 6))
    options = {}
    if variant == "projected":
        hidden = max(hidden, 2)
        options["proj_size"] = draw(st.integers(1, hidden - 1))
    elif variant != "lstm" and variant != "gru":
        options[variant] = True
    seed = draw(st.integers(0, 2**16))
    layer = (lstmcore.GRU if variant == "gru" else lstmcore.LSTM)(
        draw(st.integers(1, 5)), hidden, draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()), batch_first=draw(st.booleans()),
        dtype=draw(st.sampled_from([np.float32, np.float64])), seed=seed, **options,
    )  # fmt: skip
    return move_off_initialisation(layer, seed)


@st.composite
def calls(draw):
    """(layer, x, state or None, lengths or None, rng) for a valid call."""
    layer = draw(layers())
    steps, batch = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shape = (batch, steps) if layer.batch_first else (steps, batch)
    x = rng.normal(size=shape + (layer.input_size,)).astype(layer.dtype)
    state = random_state(layer, batch, rng) if draw(st.booleans()) else None
    lengths = draw(st.none() | st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
    return layer, x, state, lengths, rng


def batch_first_view(layer, array):
    return array if layer.batch_first else array.transpose(1, 0, 2)


def state_names(layer):
    return ("h", "c") if isinstance(layer, lstmcore.LSTM) else ("h",)


def reference_alone(layer, x, state, dy, dstate, lengths, dtype):
    """Each sequence run alone (B=1, cut to its length) through the reference in ``dtype``:
    the tensors a batched run must give, zero on padded steps, gradients summed."""
    kind = "gru" if isinstance(layer, lstmcore.GRU) else reference_kind(layer)
    params = {name: np.asarray(value, dtype) for name, value in layer.params.items()}
    xs, dys = batch_first_view(layer, x).astype(dtype), batch_first_view(layer, dy).astype(dtype)
    batch, steps = xs.shape[:2]
    y, dx = np.zeros(dys.shape, dtype), np.zeros(xs.shape, dtype)
    count = layer.num_layers * layer.num_directions
    sizes = (layer.output_size, layer.hidden_size)
    finals = [np.zeros((count, batch, size), dtype) for size in sizes[: len(state_names(layer))]]
    d_initial = [np.zeros_like(part) for part in finals]
    grads = {name: np.zeros(value.shape, dtype) for name, value in params.items()}
    hidden = np.zeros((count, steps, batch, layer.output_size), dtype)  # dL/dh_t, time-major

    def row(s, b):
        return None if s is None else layer_state(layer, [np.asarray(p[:, b : b + 1], dtype) for p in state_list(s)])

    for b in range(batch):
        length = steps if lengths is None else lengths[b]
        y_b, final_b, cache = reference.rnn_forward(
            kind, params, xs[b : b + 1, :length], row(state, b),
            num_layers=layer.num_layers, bidirectional=layer.bidirectional, batch_first=True,
        )  # fmt: skip
        dx_b, d_initial_b, grads_b, hidden_b = reference.rnn_backward(
            cache, dys[b : b + 1, :length], row(dstate, b), return_hidden_gradients=True
        )
        y[b, :length], dx[b, :length], hidden[:, :length, b] = y_b[0], dx_b[0], hidden_b[:, :, 0]
        for parts, part_b in ((finals, final_b), (d_initial, d_initial_b)):
            for whole, one in zip(parts, state_list(part_b)):
                whole[:, b] = one[:, 0]
        for name in grads:
            grads[name] += grads_b[name]
    names = state_names(layer)
    return {
        "y": batch_first_view(layer, y), "dx": batch_first_view(layer, dx), "hidden_gradients": hidden,
        **{f"{n}_n": v for n, v in zip(names, finals)}, **{f"d{n}0": v for n, v in zip(names, d_initial)}, **grads,
    }  # fmt: skip


@settings(FUZZ, max_examples=200)
@given(calls(), st.booleans())
def test_small_layers_match_the_reference_forward_and_backward(call, with_dstate):
    layer, x, state, lengths, rng = call
    y, final, tape = layer.forward(x, state, lengths=lengths)
    dy = rng.normal(size=y.shape).astype(layer.dtype)
    batch = x.shape[0] if layer.batch_first else x.shape[1]
    dstate = random_state(layer, batch, rng) if with_dstate else None
    dx, d_initial, hidden = layer.backward(tape, dy, dstate, return_hidden_gradients=True)
    names = state_names(layer)
    got = {
        "y": y, "dx": dx, "hidden_gradients": hidden, **{f"{n}_n": v for n, v in zip(names, state_list(final))},
        **{f"d{n}0": v for n, v in zip(names, state_list(d_initial))}, **layer.grads,
    }  # fmt: skip
    expected = reference_alone(layer, x, state, dy, dstate, lengths, np.float64)
    expected_in_dtype = reference_alone(layer, x, state, dy, dstate, lengths, layer.dtype)
    assert_matches_reference(layer, got, expected, expected_in_dtype)


# ----------------------------------------------------------------------------- bad input

BAD_CALLS = (
    "x rank", "x features", "x empty", "x dtype", "x ragged", "state shape", "state form", "state dtype",
    "lengths shape", "lengths range", "lengths fraction", "lengths bool", "dy shape", "dstate shape", "foreign tape",
)  # fmt: skip


def wrong_shape(draw, shape):
    """A shape of the same rank that differs from ``shape`` in one axis."""
    axis = draw(st.integers(0, len(shape) - 1))
    size = draw(st.integers(0, 7).filter(lambda n: n != shape[axis]))
    return shape[:axis] + (size,) + shape[axis + 1 :]


@settings(FUZZ, max_examples=300)
@given(calls(), st.sampled_from(BAD_CALLS), st.data())
def test_bad_input_is_a_value_or_type_error_saying_what_was_expected(call, bad, data):
    draw = data.draw
    layer, x, state, lengths, rng = call
    batch, steps = (x.shape[0], x.shape[1]) if layer.batch_first else (x.shape[1], x.shape[0])
    good_state = random_state(layer, batch, rng)
    error, mentions = ValueError, []  # what must be raised, and what its message must contain

    def forward():
        return layer.forward(x, state, lengths=lengths)

    if bad == "x rank":
        x = np.zeros(draw(st.lists(st.integers(0, 4), max_size=5).filter(lambda s: len(s) != 3)))
        mentions = [shape_text(x.shape)]
    elif bad == "x features":
        x = np.zeros(x.shape[:2] + (draw(st.integers(0, 7).filter(lambda n: n != layer.input_size)),))
        mentions = [shape_text(x.shape)]
    elif bad == "x empty":
        x = np.zeros((0, x.shape[1], layer.input_size) if draw(st.booleans()) else (x.shape[0], 0, layer.input_size))
        lengths = None
        mentions = ["non-empty", shape_text(x.shape)]
    elif bad == "x dtype":
        x = x.astype(draw(st.sampled_from([np.complex64, np.complex128, "U3", object])))
        if x.dtype == object:
            x[(0,) * 3] = None
        error = TypeError
    elif bad == "x ragged":
        x = [[[0.0] * layer.input_size] * steps, [[0.0] * layer.input_size] * (steps + 1)]
        error = TypeError
    elif bad == "state shape":
        parts = state_list(good_state)
        which = draw(st.integers(0, len(parts) - 1))
        expected_shape = parts[which].shape
        parts[which] = np.zeros(wrong_shape(draw, expected_shape))
        state = layer_state(layer, parts)
        mentions = [shape_text(expected_shape), shape_text(parts[which].shape)]
    elif bad == "state form":  # an LSTM given one array, a GRU given a pair
        parts = state_list(good_state)
        state = parts[0] if isinstance(layer, lstmcore.LSTM) else (parts[0], parts[0])
    elif bad == "state dtype":
        state = layer_state(layer, [part.astype(np.complex128) for part in state_list(good_state)])
        error = TypeError
    elif bad == "lengths shape":
        lengths = np.ones(draw(st.sampled_from([(batch + 1,), (batch, 1), ()])), np.int64)
        mentions = [shape_text(lengths.shape)]
    elif bad == "lengths range":
        lengths = np.ones(batch, np.int64)
        lengths[draw(st.integers(0, batch - 1))] = draw(st.sampled_from([0, -1, steps + 1]))
        mentions = [f"[1, {steps}]"]
    elif bad == "lengths fraction":
        lengths = np.ones(batch)
        lengths[draw(st.integers(0, batch - 1))] = draw(st.sampled_from([0.5, 1.5, np.nan, np.inf]))
        error = TypeError
    elif bad == "lengths bool":
        lengths = np.ones(batch, bool)
        error = TypeError
    elif bad in ("dy shape", "dstate shape", "foreign tape"):
        y, _, tape = layer.forward(x, state, lengths=lengths)
        dy, dstate = np.zeros(y.shape), None
        if bad == "dy shape":
            dy = np.zeros(wrong_shape(draw, y.shape))
            mentions = [shape_text(y.shape), shape_text(dy.shape)]
        elif bad == "dstate shape":
            parts = state_list(good_state)
            which = draw(st.integers(0, len(parts) - 1))
            expected_shape = parts[which].shape
            parts[which] = np.zeros(wrong_shape(draw, expected_shape))
            dstate = layer_state(layer, parts)
            mentions = [shape_text(expected_shape), shape_text(parts[which].shape)]
        else:
            other = type(layer)(**layer.get_config())
            _, _, tape = other.forward(x, state, lengths=lengths)

        def forward():
            return layer.backward(tape, dy, dstate)

    with pytest.raises(error) as raised:
        forward()
    message = str(raised.value)
    assert "expected" in message, f"{bad}: {message!r} does not say what was expected"
    for text in mentions:
        assert text in message, f"{bad}: {message!r} does not name {text}"


BAD_CONSTRUCTIONS = [
    ({"input_size": 0}, ValueError), ({"input_size": 2.0}, TypeError), ({"hidden_size": 0}, ValueError),
    ({"hidden_size": -3}, ValueError), ({"hidden_size": True}, TypeError), ({"num_layers": 0}, ValueError),
    ({"dtype": np.int32}, ValueError), ({"dtype": np.float16}, ValueError), ({"dtype": "no such type"}, TypeError),
    ({"dropout": 1.0}, ValueError), ({"dropout": -0.1}, ValueError), ({"dropout": "0.1"}, TypeError),
]  # fmt: skip
BAD_LSTM_CONSTRUCTIONS = [
    ({"proj_size": 4}, ValueError), ({"proj_size": -1}, ValueError), ({"proj_size": 1.5}, TypeError),
    ({"zoneout": 1.0}, ValueError), ({"recurrent_dropout": -1}, ValueError), ({"forget_bias": "1"}, TypeError),
]  # fmt: skip


@pytest.mark.parametrize(
    "cls, change, error",
    [(lstmcore.LSTM, *case) for case in BAD_CONSTRUCTIONS + BAD_LSTM_CONSTRUCTIONS]
    + [(lstmcore.GRU, *case) for case in BAD_CONSTRUCTIONS],
)
def test_bad_constructor_arguments_are_a_value_or_type_error(cls, change, error):
    # A short table, so every case rather than a sample of it.
    with pytest.raises(error, match="expected"):
        cls(**{"input_size": 3, "hidden_size": 4, **change})


# ----------------------------------------------------------------------------- odd input


def odd_view(draw, array):
    """``array``'s values as NumPy can also hold them: strided, Fortran order, another dtype."""
    form = draw(st.sampled_from(["strided", "fortran", "float32", "float64", "int"]))
    if form == "strided":
        wide = np.zeros(tuple(2 * n for n in array.shape), array.dtype)
        view = wide[tuple(slice(None, None, 2) for _ in array.shape)]
        view[...] = array
        return view
    if form == "fortran":
        return np.asfortranarray(array)
    if form == "int":
        return np.round(array * 2).astype(np.int32)
    return array.astype(form)


@settings(FUZZ, max_examples=120)
@given(calls(), st.data())
def test_any_array_numpy_can_view_gives_what_the_converted_array_gives(call, data):
    layer, x, state, lengths, rng = call
    odd_x = odd_view(data.draw, x)
    odd_state = None if state is None else layer_state(layer, [odd_view(data.draw, p) for p in state_list(state)])

    def converted(a):
        return np.ascontiguousarray(a, layer.dtype)

    def both(run):
        """The layer's results on the odd arrays and on their conversions, as flat lists."""
        flat = []
        for args in (
            (odd_x, odd_state),
            (
                converted(odd_x),
                None if odd_state is None else layer_state(layer, [converted(p) for p in state_list(odd_state)]),
            ),
        ):
            y, final = run(*args)
            flat.append([y, *state_list(final)])
        return flat

    got, expected = both(lambda x_, s_: layer(x_, s_, lengths=lengths))
    for a, b in zip(got, expected):
        assert a.dtype == layer.dtype and np.array_equal(a, b)

    y, _, tape = layer.forward(odd_x, odd_state, lengths=lengths)
    dy = odd_view(data.draw, rng.normal(size=y.shape).astype(layer.dtype))
    layer.zero_grad()
    dx, d_initial = layer.backward(tape, dy)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    _, _, tape = layer.forward(
        converted(odd_x),
        None if odd_state is None else layer_state(layer, [converted(p) for p in state_list(odd_state)]),
        lengths=lengths,
    )
    layer.zero_grad()
    dx_c, d_initial_c = layer.backward(tape, converted(dy))
    assert np.array_equal(dx, dx_c)
    for a, b in zip(state_list(d_initial), state_list(d_initial_c)):
        assert np.array_equal(a, b)
    for name in grads:
        assert np.array_equal(grads[name], layer.grads[name]), name


@settings(FUZZ, max_examples=120)
@given(calls(), st.data())
def test_nan_in_one_sequence_leaves_the_others_alone(call, data):
    """NaN in x makes its own sequence's output NaN from that step on and changes no other's;
    on a padded step (past the sequence's length) it changes no output at all."""
    layer, x, state, lengths, _rng = call
    draw = data.draw
    batch, steps = (x.shape[0], x.shape[1]) if layer.batch_first else (x.shape[1], x.shape[0])
    b = draw(st.integers(0, batch - 1))
    length = steps if lengths is None else lengths[b]
    t = draw(st.integers(0, steps - 1))
    poisoned = x.copy()
    poisoned[(b, t) if layer.batch_first else (t, b)][draw(st.integers(0, layer.input_size - 1))] = np.nan
    y, final = layer(poisoned, state, lengths=lengths)
    clean_y, clean_final = layer(x, state, lengths=lengths)
    y, clean_y = batch_first_view(layer, y), batch_first_view(layer, clean_y)
    others = np.arange(batch) != b if t < length else np.ones(batch, bool)
    assert np.array_equal(y[others], clean_y[others])
    for part, clean in zip(state_list(final), state_list(clean_final)):
        assert np.array_equal(part[:, others], clean[:, others])
    if t < length:
        forward_features = y[b, t, : layer.output_size]
        assert np.isnan(forward_features).all(), f"y at the NaN step: {forward_features}"
