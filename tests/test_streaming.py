"""Streaming: ``layer.step(x_t, state)`` over T steps, and calls over chunks of a sequence,
carrying the state, equal one call over the whole sequence (y and the final state); the
forward and backward passes over chunks, with the state gradient carried back from each
chunk to the one before, equal one forward and backward over the whole sequence.

LSTM variants (plain, peephole, coupled, layer_norm, proj_size, zoneout at inference) and
GRU, two layers, float32 and float64, both layouts.

Tolerances, as |got - expected| <= tol * scale + tol * |expected|, scale = max(1, max|expected|):
- Forward (step and chunked calls), 8 eps of the dtype: the same kernels run on the same
  numbers; only the input projection, one GEMM hoisted before the time loop, covers T*B
  rows in one call and B (or chunk*B) rows in a step. Each output element of that GEMM is
  one dot product over the input features, so the row count changes at most the row
  blocking, which may round differently on another CPU: a few ulps. Observed: bitwise equal.
- Chunked backward, 1e-12 (float64) and 2e-5 (float32, 1e-4 with layer_norm): the weight
  gradients are GEMMs over the rows of each chunk, summed over chunks, instead of one GEMM
  over all rows, so their summation order differs. The float32 bounds are those of
  tests/test_lengths.py (two float32 evaluations of one sum, each within the 1e-5 of
  tests/test_core_matches_reference.py; layer norm's division by a row's standard
  deviation amplifies the rounding). Observed <= 3.7e-16 and 1.4e-7.
"""

import itertools

import numpy as np
import pytest

from _compare import assert_close, scaled_atol
from _layers import move_off_initialisation, random_state, state_list
from _variants import LAYER_VARIANTS, dtypes, variants

# zoneout: its inference form (every unit keeps weight p of its previous state), the one a
# streaming loop uses; step and __call__ run at inference.
VARIANTS = LAYER_VARIANTS
STEPS, BATCH, INPUT, HIDDEN, LAYERS = 10, 3, 4, 5, 2
CHUNKS = (3, 1, 6)


def make_layer(variant, dtype, batch_first, bidirectional=False, seed=0):
    """A two-layer layer, every parameter moved off its initialisation."""
    cls, options = VARIANTS[variant]
    layer = cls(
        INPUT, HIDDEN, LAYERS, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype, seed=seed, **options
    )
    return move_off_initialisation(layer, seed)


def time_axis(layer):
    return 1 if layer.batch_first else 0


def time_slice(array, layer, start, stop):
    return array[:, start:stop] if layer.batch_first else array[start:stop]


def chunk_bounds():
    starts = np.cumsum((0,) + CHUNKS)
    return list(itertools.pairwise(starts))


def forward_tolerance(dtype):
    return 8 * np.finfo(dtype).eps


def backward_tolerance(variant, dtype):
    if dtype == np.float64:
        return 1e-12
    return 1e-4 if variant == "layer_norm" else 2e-5


def check(name, got, expected, tol):
    assert got.dtype == expected.dtype, f"{name} is {got.dtype}, expected {expected.dtype}"
    assert_close(name, got, expected, tol, scaled_atol(tol, expected))


def check_states(name, got, expected, tol):
    for kind, (part, expected_part) in enumerate(zip(state_list(got), state_list(expected))):
        check(f"{name} {kind}", part, expected_part, tol)


def inputs(layer, with_state, seed=1):
    rng = np.random.default_rng(seed)
    shape = (BATCH, STEPS, INPUT) if layer.batch_first else (STEPS, BATCH, INPUT)
    return rng.normal(size=shape).astype(layer.dtype), (random_state(layer, BATCH, rng) if with_state else None)


layouts = pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
states = pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])


@variants()
@dtypes
@layouts
@states
def test_step_loop_equals_one_call(variant, dtype, batch_first, with_state):
    layer = make_layer(variant, dtype, batch_first)
    x, state = inputs(layer, with_state)
    y, final = layer(x, state)
    outputs = []
    for t in range(STEPS):
        x_t = x[:, t] if batch_first else x[t]
        y_t, state = layer.step(x_t, state)
        assert y_t.shape == (BATCH, layer.output_size)
        outputs.append(y_t)
    tol = forward_tolerance(dtype)
    check("y", np.stack(outputs, axis=time_axis(layer)), y, tol)
    check_states("final state", state, final, tol)


@variants()
@dtypes
@layouts
@states
def test_chunked_calls_equal_one_call(variant, dtype, batch_first, with_state):
    layer = make_layer(variant, dtype, batch_first)
    x, state = inputs(layer, with_state)
    y, final = layer(x, state)
    outputs = []
    for start, stop in chunk_bounds():
        y_chunk, state = layer(time_slice(x, layer, start, stop), state)
        outputs.append(y_chunk)
    tol = forward_tolerance(dtype)
    check("y", np.concatenate(outputs, axis=time_axis(layer)), y, tol)
    check_states("final state", state, final, tol)


@variants()
@dtypes
@layouts
def test_step_continues_a_call(variant, dtype, batch_first):
    # A prompt through one call, then one step at a time: the state passes between them.
    layer = make_layer(variant, dtype, batch_first)
    x, state = inputs(layer, with_state=True)
    y, final = layer(x, state)
    prompt = 4
    y_prompt, state = layer(time_slice(x, layer, 0, prompt), state)
    outputs = [y_prompt]
    for t in range(prompt, STEPS):
        y_t, state = layer.step(x[:, t] if batch_first else x[t], state)
        outputs.append(np.expand_dims(y_t, time_axis(layer)))
    tol = forward_tolerance(dtype)
    check("y", np.concatenate(outputs, axis=time_axis(layer)), y, tol)
    check_states("final state", state, final, tol)


@variants()
@dtypes
@layouts
def test_chunked_forward_backward_equals_one_pass(variant, dtype, batch_first):
    # Chunks forward carrying the state, then backward from the last chunk to the first,
    # each chunk's dstate0 becoming the previous chunk's dstate: full backpropagation
    # through time, in pieces. zoneout's training masks are random, so it runs at inference.
    training = variant != "zoneout"
    layer = make_layer(variant, dtype, batch_first)
    rng = np.random.default_rng(2)
    x, state = inputs(layer, with_state=True)
    dstate = random_state(layer, BATCH, rng)
    y, final, tape = layer.forward(x, state, training=training)
    dy = rng.normal(size=y.shape).astype(dtype)
    dx, dstate0 = layer.backward(tape, dy, dstate)
    grads = {name: grad.copy() for name, grad in layer.grads.items()}

    layer.zero_grad()
    tapes, outputs, chunk_state = [], [], state
    for start, stop in chunk_bounds():
        x_chunk = time_slice(x, layer, start, stop)
        y_chunk, chunk_state, chunk_tape = layer.forward(x_chunk, chunk_state, training=training)
        outputs.append(y_chunk)
        tapes.append(chunk_tape)
    d_inputs, d_state = [], dstate
    for (start, stop), chunk_tape in reversed(list(zip(chunk_bounds(), tapes))):
        dx_chunk, d_state = layer.backward(chunk_tape, time_slice(dy, layer, start, stop), d_state)
        d_inputs.insert(0, dx_chunk)

    check("y", np.concatenate(outputs, axis=time_axis(layer)), y, forward_tolerance(dtype))
    check_states("final state", chunk_state, final, forward_tolerance(dtype))
    tol = backward_tolerance(variant, dtype)
    check("dx", np.concatenate(d_inputs, axis=time_axis(layer)), dx, tol)
    check_states("dstate0", d_state, dstate0, tol)
    for name, grad in grads.items():
        check(f"grads[{name!r}]", layer.grads[name], grad, tol)


@variants("lstm", "gru")
def test_step_on_a_bidirectional_layer_raises(variant):
    layer = make_layer(variant, np.float32, True, bidirectional=True)
    with pytest.raises(ValueError, match="step needs a layer that runs forward in time: a bidirectional"):
        layer.step(np.zeros((BATCH, INPUT), np.float32))


@variants("lstm", "gru")
@layouts
@pytest.mark.parametrize(
    "shape",
    [(BATCH, INPUT + 1), (BATCH, 1, INPUT), (INPUT,), (1, BATCH, INPUT)],
    ids=["features", "3-d", "1-d", "3-d-time"],
)
def test_step_rejects_a_wrong_x_t_shape_naming_both(variant, batch_first, shape):
    layer = make_layer(variant, np.float32, batch_first)
    with pytest.raises(ValueError) as raised:  # noqa: PT011 (the message is checked below)
        layer.step(np.zeros(shape, np.float32))
    message = str(raised.value)
    for fragment in (f"(B, {INPUT})", str(shape)):
        assert fragment in message, f"{fragment!r} not in {message!r}"


@variants("lstm", "gru")
def test_step_rejects_a_state_of_another_batch(variant):
    layer = make_layer(variant, np.float64, True)
    _, state = layer.step(np.zeros((BATCH, INPUT)))
    with pytest.raises(ValueError, match=rf"\({LAYERS}, {BATCH + 1}, {HIDDEN}\)"):
        layer.step(np.zeros((BATCH + 1, INPUT)), state)
