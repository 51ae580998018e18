"""Gate traces: ``y, state, traces = layer(x, return_gates=True)`` and ``layer.gate_traces(tape)``.

Per layer*D + direction a dict of (T, B, H) time-major arrays in natural time order and
the caller's batch order: LSTM ``input``, ``forget``, ``candidate``, ``output``, ``cell``;
GRU ``reset``, ``update``, ``candidate``. Checked against lstmcore.reference's caches
(every LSTM variant, zoneout in training and at inference, and GRU), against docs/variants.md's
cell equations evaluated on the layer's own states (every variant but zoneout), with
lengths against each sequence run alone, and for their lifetime (later calls and
backward leave them alone).

Tolerances, as |got - expected| <= tol * scale + tol * |expected|, scale = max(1, max|expected|):
- Against the reference: those of tests/test_core_matches_reference.py (float64 1e-12;
  float32 1e-5 against the reference in float64 on the same float32 inputs).
- Against the cell equations: the equations are evaluated in float64 on the layer's own
  states (h_{t-1} rebuilt from the traced output gate and cell, c_{t-1} the cell trace;
  the last layer's rebuilt h must be y), so the only difference is one step's rounding:
  1e-12 in float64; in float32 a dot product of at most 2H + H = 15 terms and the
  activations, ~1e-6, tol 1e-5 as above (layer_norm amplifies rounding by 1/std, but over
  one step only). Observed <= 9.4e-16 and 1.6e-7.
- With lengths against alone: those of tests/test_lengths.py (1e-12; float32 2e-5, 1e-4
  with layer_norm). Observed <= 1.9e-15 and 5.6e-7.
Observed against the reference: <= 2.2e-16 and 1.1e-7.
"""

import numpy as np
import pytest

import lstmcore
from _compare import assert_close, scaled_atol
from _layer_vs_reference import reference_kind, tape_options
from _layers import move_off_initialisation, random_state, state_list
from _variants import LAYER_VARIANTS, LSTM_CELLS, dtypes, kinds, layer_options, variants
from lstmcore import reference

LSTM_NAMES = ("input", "forget", "candidate", "output", "cell")
GRU_NAMES = ("reset", "update", "candidate")
VARIANTS = {name: variant for name, variant in LAYER_VARIANTS.items() if name != "zoneout"}
# T != B so a batch-major trace cannot pass for a time-major one.
STEPS, BATCH, INPUT, HIDDEN, LAYERS = 6, 4, 3, 5, 2
UNSORTED = [3, 6, 1, 5]
LAYER_NORM_EPS = 1e-5


def make_layer(variant, dtype, batch_first=True, bidirectional=True, seed=0):
    """A two-layer layer, every parameter moved off its initialisation."""
    cls, options = VARIANTS[variant]
    layer = cls(
        INPUT, HIDDEN, LAYERS, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype, seed=seed, **options
    )
    return move_off_initialisation(layer, seed)


def trace_names(layer):
    return LSTM_NAMES if isinstance(layer, lstmcore.LSTM) else GRU_NAMES


def random_inputs(layer, batch=BATCH, seed=1):
    """x in the layer's layout and a random initial state."""
    rng = np.random.default_rng(seed)
    shape = (batch, STEPS, INPUT) if layer.batch_first else (STEPS, batch, INPUT)
    state = random_state(layer, batch, rng)
    return rng.normal(size=shape).astype(layer.dtype), state


def time_major(array, layer):
    return array.transpose(1, 0, 2) if layer.batch_first else array


def check(name, got, expected, tol):
    assert_close(name, got, expected, tol, scaled_atol(tol, expected))


def check_trace_layout(layer, traces, steps=STEPS, batch=BATCH):
    assert len(traces) == layer.num_layers * layer.num_directions
    for index, named in enumerate(traces):
        assert tuple(named) == trace_names(layer), f"trace {index} has keys {list(named)}"
        for name, value in named.items():
            assert value.shape == (steps, batch, layer.hidden_size), f"trace {index} {name!r}: {value.shape}"
            assert value.dtype == layer.dtype, f"trace {index} {name!r} is {value.dtype}"


def copy_traces(traces):
    return [{name: value.copy() for name, value in named.items()} for named in traces]


def assert_traces_equal(got, expected, what):
    for index, (named, expected_named) in enumerate(zip(got, expected)):
        for name, value in expected_named.items():
            np.testing.assert_array_equal(named[name], value, err_msg=f"{what}: trace {index} {name!r}")


# ----------------------------------------------------------------------- the reference


@kinds
@dtypes
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
def test_traces_match_the_reference_caches(kind, dtype, batch_first):
    layer = make_layer(kind, dtype, batch_first)
    x, state = random_inputs(layer)
    _y, _, traces = layer(x, state, return_gates=True)
    check_trace_layout(layer, traces)

    params = {name: np.asarray(value, np.float64) for name, value in layer.params.items()}
    r_state = tuple(np.asarray(s, np.float64) for s in state) if kind == "lstm" else np.asarray(state, np.float64)
    options = dict(num_layers=LAYERS, bidirectional=True, batch_first=batch_first)
    _, _, cache = reference.rnn_forward(kind, params, x.astype(np.float64), r_state, **options)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for (layer_index, direction), run in cache["caches"].items():
        # The reference runs the reverse direction on the reversed sequence: flip it back.
        natural = (lambda a: a) if direction == 0 else (lambda a: a[::-1])
        gates = natural(run["gates"])  # (T, B, G, H)
        gate_names = GRU_NAMES if kind == "gru" else LSTM_NAMES[:4]  # the reference's gate order
        expected = {name: gates[:, :, k] for k, name in enumerate(gate_names)}
        if kind == "lstm":
            expected["cell"] = natural(run["cell"])
        named = traces[layer_index * 2 + direction]
        for name, value in expected.items():
            check(f"layer {layer_index} direction {direction} {name!r}", named[name], value, tol)


# Every LSTM variant, and zoneout (its trace "cell" is the carried c_t, after the mixing),
# in training with the masks the tape holds and at inference with the keep rate.
REFERENCE_VARIANTS = {
    "peephole": (layer_options("peephole"), True),
    "coupled": (layer_options("coupled"), True),
    "layer_norm": (layer_options("layer_norm"), True),
    "projected": (layer_options("projected"), True),
    "zoneout_recurrent_dropout_training": ({"zoneout": 0.4, "recurrent_dropout": 0.3}, True),
    "zoneout_inference": ({"zoneout": 0.4}, False),
    "peephole_zoneout_training": ({"peephole": True, "zoneout": 0.4}, True),
}


@pytest.mark.parametrize("variant", list(REFERENCE_VARIANTS))
@dtypes
def test_lstm_variant_traces_match_the_reference_caches(variant, dtype):
    options, training = REFERENCE_VARIANTS[variant]
    layer = lstmcore.LSTM(INPUT, HIDDEN, LAYERS, bidirectional=True, dtype=dtype, seed=3, **options)
    move_off_initialisation(layer, 3)
    x, state = random_inputs(layer)
    _, _, tape = layer.forward(x, state, training=training)
    traces = layer.gate_traces(tape)
    check_trace_layout(layer, traces)

    cell_options = tape_options(tape)
    if not training and layer.zoneout:
        for chosen in cell_options:
            chosen["zoneout_rate"] = layer.zoneout
    params = {name: np.asarray(value, np.float64) for name, value in layer.params.items()}
    _, _, cache = reference.rnn_forward(
        reference_kind(layer), params, x.astype(np.float64), tuple(np.asarray(s, np.float64) for s in state),
        num_layers=LAYERS, bidirectional=True, options=cell_options,
        input_masks=[None if m is None else np.asarray(m, np.float64) for m in tape.masks],
    )  # fmt: skip
    # float32 with layer_norm: tests/test_lengths.py's 1e-4 (the normalisation's conditioning).
    tol = 1e-12 if dtype == np.float64 else (1e-4 if layer.layer_norm else 1e-5)
    for (layer_index, direction), run in cache["caches"].items():
        natural = (lambda a: a) if direction == 0 else (lambda a: a[::-1])
        gates = natural(run["gates"])  # (T, B, G, H)
        if layer.coupled:  # the reference holds i, g, o; the forget gate is 1 - i
            expected = {"input": gates[:, :, 0], "forget": 1 - gates[:, :, 0], "candidate": gates[:, :, 1]}
            expected["output"] = gates[:, :, 2]
        else:
            expected = {name: gates[:, :, k] for k, name in enumerate(LSTM_NAMES[:4])}
        expected["cell"] = natural(run["cell"])
        named = traces[layer_index * 2 + direction]
        for name, value in expected.items():
            check(f"layer {layer_index} direction {direction} {name!r}", named[name], value, tol)


@variants(*VARIANTS)
def test_gate_traces_of_a_training_tape_equal_return_gates(variant):
    layer = make_layer(variant, np.float64)
    x, state = random_inputs(layer)
    _, _, traces = layer(x, state, return_gates=True)
    _, _, tape = layer.forward(x, state, training=True)
    from_tape = layer.gate_traces(tape)
    check_trace_layout(layer, from_tape)
    assert_traces_equal(from_tape, traces, "gate_traces(training tape) against return_gates")


# ----------------------------------------------------------------------- the cell equations


def sigmoid(a):
    return 0.5 * np.tanh(0.5 * a) + 0.5


def layer_norm(v, gain, bias=0.0):
    """Over the last axis, as docs/variants.md: gain * (v - mean) / sqrt(var + 1e-5) + bias."""
    centred = v - v.mean(axis=-1, keepdims=True)
    return gain * centred / np.sqrt((centred**2).mean(axis=-1, keepdims=True) + LAYER_NORM_EPS) + bias


def previous(sequence, initial, reverse):
    """(T, B, F): the state each step starts from, in natural time (the reverse direction's
    step t starts from t + 1)."""
    if reverse:
        return np.concatenate([sequence[1:], initial[None]])
    return np.concatenate([initial[None], sequence[:-1]])


def lstm_gates(layer, weights, x, h_prev, c_prev, cell):
    """Gates and cell of one layer-direction at every step at once, by docs/variants.md's
    equations. x (T, B, I), h_prev (T, B, P), c_prev and cell (T, B, H): the states each
    step starts from and the cell it ends with (the peephole output gate reads c_t)."""
    hidden = layer.hidden_size
    if layer.layer_norm:
        pre = (
            layer_norm(x @ weights["weight_ih"].T, weights["layer_norm_ih_weight"])
            + layer_norm(h_prev @ weights["weight_hh"].T, weights["layer_norm_hh_weight"])
            + weights["bias_ih"] + weights["bias_hh"]
        )  # fmt: skip
    else:
        pre = x @ weights["weight_ih"].T + weights["bias_ih"] + h_prev @ weights["weight_hh"].T + weights["bias_hh"]
    blocks = [pre[..., k * hidden : (k + 1) * hidden] for k in range(pre.shape[-1] // hidden)]
    if layer.coupled:
        a_i, a_g, a_o = blocks
        gates = {"input": sigmoid(a_i)}
        gates["forget"] = 1 - gates["input"]
    else:
        a_i, a_f, a_g, a_o = blocks
        if layer.peephole:
            p_i, p_f, p_o = weights["weight_peephole"]
            a_i, a_f, a_o = a_i + p_i * c_prev, a_f + p_f * c_prev, a_o + p_o * cell
        gates = {"input": sigmoid(a_i), "forget": sigmoid(a_f)}
    gates["candidate"] = np.tanh(a_g)
    gates["output"] = sigmoid(a_o)
    gates["cell"] = gates["forget"] * c_prev + gates["input"] * gates["candidate"]
    return gates


def lstm_output(layer, weights, output_gate, cell):
    """h_t from the output gate and the cell, (T, B, P)."""
    if layer.layer_norm:
        cell = layer_norm(cell, weights["layer_norm_cell_weight"], weights["layer_norm_cell_bias"])
    h = output_gate * np.tanh(cell)
    return h @ weights["weight_hr"].T if layer.proj_size else h


@variants(*LSTM_CELLS)
@dtypes
def test_lstm_variant_traces_satisfy_the_cell_equations(variant, dtype):
    # Each layer's output is rebuilt from its own traces (o and c) and feeds the next
    # layer's equations; the last layer's must be y.
    layer = make_layer(variant, dtype)
    x, (h0, c0) = random_inputs(layer)
    y, _, traces = layer(x, (h0, c0), return_gates=True)
    check_trace_layout(layer, traces)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    layer_input = time_major(x, layer).astype(np.float64)
    for layer_index in range(LAYERS):
        outputs = []
        for direction in range(2):
            index = layer_index * 2 + direction
            suffix = f"_l{layer_index}" + ("_reverse" if direction else "")
            weights = {
                name[: -len(suffix)]: np.asarray(value, np.float64)
                for name, value in layer.params.items()
                if name.endswith(suffix)
            }
            traced = {name: np.asarray(value, np.float64) for name, value in traces[index].items()}
            h = lstm_output(layer, weights, traced["output"], traced["cell"])
            h_prev = previous(h, h0[index].astype(np.float64), reverse=direction == 1)
            c_prev = previous(traced["cell"], c0[index].astype(np.float64), reverse=direction == 1)
            expected = lstm_gates(layer, weights, layer_input, h_prev, c_prev, traced["cell"])
            for name in LSTM_NAMES:
                check(f"layer {layer_index} direction {direction} {name!r}", traced[name], expected[name], tol)
            outputs.append(h)
        layer_input = np.concatenate(outputs, axis=2)
    check("y from the traces", layer_input, time_major(y, layer).astype(np.float64), tol)


@pytest.mark.parametrize("lengths", [None, UNSORTED], ids=["full", "lengths"])
def test_coupled_forget_is_one_minus_input(lengths):
    layer = make_layer("coupled", np.float64)
    x, state = random_inputs(layer)
    _, _, traces = layer(x, state, lengths=lengths, return_gates=True)
    for index, named in enumerate(traces):
        forget, input_gate = named["forget"], named["input"]
        if lengths is not None:  # valid steps only (padding is checked below)
            valid = np.arange(STEPS)[:, None] < np.array(lengths)[None, :]
            forget, input_gate = forget[valid], input_gate[valid]
        np.testing.assert_array_equal(forget, 1 - input_gate, err_msg=f"trace {index}")


# ----------------------------------------------------------------------- lengths


def trace_tolerance(variant, dtype):
    if dtype == np.float64:
        return 1e-12
    return 1e-4 if variant == "layer_norm" else 2e-5


@variants(*VARIANTS)
@dtypes
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
def test_traces_with_lengths_match_running_each_sequence_alone(variant, dtype, batch_first):
    # The reverse direction's traces are in natural time: run alone, the reverse direction
    # starts at the sequence's own end and its traces are in natural time already.
    layer = make_layer(variant, dtype, batch_first)
    x, state = random_inputs(layer)
    _, _, traces = layer(x, state, lengths=UNSORTED, return_gates=True)
    check_trace_layout(layer, traces)
    tol = trace_tolerance(variant, dtype)
    for b, length in enumerate(UNSORTED):
        x_b = x[b : b + 1, :length] if batch_first else x[:length, b : b + 1]
        state_b = [part[:, b : b + 1] for part in state_list(state)]
        _, _, alone = layer(x_b, tuple(state_b) if len(state_b) == 2 else state_b[0], return_gates=True)
        check_trace_layout(layer, alone, steps=length, batch=1)
        for index, (named, named_alone) in enumerate(zip(traces, alone)):
            for name, value in named_alone.items():
                check(f"seq {b} trace {index} {name!r}", named[name][:length, b : b + 1], value, tol)


@variants(*VARIANTS)
def test_padding_steps_of_traces_are_zero(variant):
    layer = make_layer(variant, np.float32)
    x, state = random_inputs(layer)
    _, _, traces = layer(x, state, lengths=UNSORTED, return_gates=True)
    for index, named in enumerate(traces):
        for name, value in named.items():
            for b, length in enumerate(UNSORTED):
                np.testing.assert_array_equal(
                    value[length:, b], 0, err_msg=f"trace {index} {name!r} past the length of seq {b}"
                )


# ----------------------------------------------------------------------- lifetime


@variants(*VARIANTS)
@pytest.mark.parametrize("lengths", [None, UNSORTED], ids=["full", "lengths"])
def test_traces_are_unchanged_by_later_calls_and_backward(variant, lengths):
    # Without lengths the traces are views of the tape: each forward has its own tape, and
    # backward reads the tape without writing to it.
    layer = make_layer(variant, np.float64)
    x, state = random_inputs(layer)
    x_other, state_other = random_inputs(layer, seed=2)
    _, _, traces = layer(x, state, lengths=lengths, return_gates=True)
    y, _, tape = layer.forward(x, state, lengths=lengths)
    from_tape = layer.gate_traces(tape)
    saved = copy_traces(traces)
    layer.backward(tape, np.ones_like(y))
    assert_traces_equal(layer.gate_traces(tape), saved, "gate_traces(tape) after backward")
    assert_traces_equal(from_tape, saved, "traces taken before backward")
    for _ in range(2):
        y_other, _, tape_other = layer.forward(x_other, state_other, lengths=lengths)
        layer(x_other, state_other, lengths=lengths, return_gates=True)
        layer.backward(tape_other, np.ones_like(y_other))
    assert_traces_equal(traces, saved, "return_gates traces after later calls")
    assert_traces_equal(from_tape, saved, "gate_traces(tape) after later calls")
    assert_traces_equal(layer.gate_traces(tape), saved, "gate_traces(tape) again after later calls")


@variants("lstm", "gru")
def test_editing_a_trace_in_place_does_not_change_backward(variant):
    layer = make_layer(variant, np.float64)
    x, state = random_inputs(layer)
    y, _, tape = layer.forward(x, state)
    dy = np.ones_like(y)
    dx_before, _ = layer.backward(tape, dy)
    for named in layer.gate_traces(tape):
        for value in named.values():
            with pytest.raises(ValueError, match="read-only"):
                value *= 0.5  # e.g. normalising a trace for a plot
    dx_after, _ = layer.backward(tape, dy)
    np.testing.assert_array_equal(dx_after, dx_before)


@variants("lstm", "gru")
def test_gate_traces_rejects_a_tape_of_another_layer(variant):
    layer, other = make_layer(variant, np.float64), make_layer(variant, np.float64)
    x, _ = random_inputs(layer)
    _, _, tape = other.forward(x)
    with pytest.raises(ValueError, match="tape"):
        layer.gate_traces(tape)
    with pytest.raises(ValueError, match="tape"):
        layer.gate_traces("not a tape")
