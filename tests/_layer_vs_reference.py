"""Run an lstmcore.LSTM (any variant) and lstmcore.reference on the same inputs, both passes.

Shared by tests/test_variants.py and tests/test_ablation.py. The reference gets the
layer's parameters in float64, and the masks the layer drew (dropout between layers,
recurrent dropout, zoneout) as its tape recorded them, so the comparison is of the
arithmetic alone.
"""

from __future__ import annotations

import numpy as np

import lstmcore
from _compare import assert_close, numerical_gradient, sample_indices, scaled_atol
from lstmcore import reference


def make_layer(shape, options, dtype=np.float64, seed=0):
    """An LSTM of ``shape`` = (steps, batch, input_size, hidden, num_layers, bidirectional,
    batch_first) with ``options``; proj_size "half" is hidden // 2 (it must be below hidden)."""
    _, _, input_size, hidden, num_layers, bidirectional, batch_first = shape
    options = dict(options)
    if options.get("proj_size") == "half":
        options["proj_size"] = hidden // 2
    return lstmcore.LSTM(
        input_size, hidden, num_layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype,
        seed=seed, **options,
    )  # fmt: skip


def reference_kind(layer):
    """The lstmcore.reference cell kind of an LSTM layer (a projection rides on any of them)."""
    if layer.layer_norm:
        return "layer_norm_lstm"
    if layer.peephole:
        return "peephole_coupled_lstm" if layer.coupled else "peephole_lstm"
    if layer.coupled:
        return "coupled_lstm"
    return "projected_lstm" if layer.proj_size else "lstm"


def clamps_from_ablate(ablate, layer):
    """The reference's clamps, one dict per layer-direction, from a layer's ``ablate`` argument.

    Written from the documented meaning (a number, an (H,) or an (L*D, H) array per gate),
    with values rounded to the layer's dtype as the layer holds them.
    """
    count = layer.num_layers * layer.num_directions
    clamps = [{} for _ in range(count)]
    for gate, value in (ablate or {}).items():
        value = np.asarray(value, layer.dtype).astype(np.float64)
        rows = value if value.ndim == 2 else np.broadcast_to(value, (count, layer.hidden_size))
        for index in range(count):
            clamps[index][gate] = rows[index]
    return clamps


def tape_options(tape):
    """Per layer-direction, the recurrent-dropout and zoneout options the layer used (float64)."""
    options = []
    for run in tape.runs:
        used = run.tape.options  # the core's tape keeps the options its forward ran with
        found = {name: getattr(used, name) for name in ("recurrent_mask", "zoneout_h", "zoneout_c", "zoneout_rate")}
        chosen = {k: np.asarray(v, np.float64) for k, v in found.items() if k != "zoneout_rate" and v is not None}
        if found["zoneout_rate"]:
            chosen["zoneout_rate"] = found["zoneout_rate"]
        options.append(chosen)
    return options


def random_inputs(layer, steps, batch, rng, with_state=True, with_dstate=True):
    """x, state, dy, dstate for ``layer`` in its dtype and layout (None where not wanted)."""
    dtype = layer.dtype
    shape = (batch, steps) if layer.batch_first else (steps, batch)
    x = rng.normal(size=shape + (layer.input_size,)).astype(dtype)
    count = layer.num_layers * layer.num_directions
    sizes = (layer.proj_size or layer.hidden_size, layer.hidden_size)  # h, c

    def state_pair():
        return tuple(rng.normal(size=(count, batch, size)).astype(dtype) for size in sizes)

    state = state_pair() if with_state else None
    dy = rng.normal(size=shape + (layer.num_directions * sizes[0],)).astype(dtype)
    dstate = state_pair() if with_dstate else None
    return x, state, dy, dstate


def run_both(layer, x, state=None, dy=None, dstate=None, *, ablate=None, training=True, zoneout_rate=None):
    """Forward (and backward when dy is given) through the layer and through the reference.

    Returns three dicts of named tensors: the layer's; the reference's in float64; the
    reference's in the layer's dtype, on the same inputs (what a plain evaluation of the
    equations in that dtype gives: ``assert_matches_reference`` measures the problem's
    conditioning with it). Names: y, h_n, c_n and, with dy, dx, dh0, dc0, hidden_gradients
    (dL/dh_t of every layer-direction at every step) and every parameter gradient. The
    layer's grads start from zero. zoneout_rate: the keep weight to give the reference at
    inference.
    """
    layer.zero_grad()
    y, final, tape = layer.forward(x, state, ablate=ablate, training=training)
    got = {"y": y, "h_n": final[0], "c_n": final[1]}
    if dy is not None:
        dx, dstate0, hidden = layer.backward(tape, dy, dstate, return_hidden_gradients=True)
        got.update(dx=dx, dh0=dstate0[0], dc0=dstate0[1], hidden_gradients=hidden)
        got.update({k: v.copy() for k, v in layer.grads.items()})

    options = tape_options(tape)
    for index, clamps in enumerate(clamps_from_ablate(ablate, layer)):
        if clamps:
            options[index]["clamps"] = clamps
        if zoneout_rate is not None:
            options[index]["zoneout_rate"] = zoneout_rate

    def reference_pass(dtype):
        def cast(a):
            return None if a is None else np.asarray(a, dtype)

        params = {k: cast(v) for k, v in layer.params.items()}
        r_y, r_final, cache = reference.rnn_forward(
            reference_kind(layer), params, cast(x), None if state is None else tuple(map(cast, state)),
            num_layers=layer.num_layers, bidirectional=layer.bidirectional, batch_first=layer.batch_first,
            options=options, input_masks=[cast(m) for m in tape.masks],
        )  # fmt: skip
        result = {"y": r_y, "h_n": r_final[0], "c_n": r_final[1]}
        if dy is not None:
            r_dx, r_dstate0, r_grads, r_hidden = reference.rnn_backward(
                cache, cast(dy), None if dstate is None else tuple(map(cast, dstate)), return_hidden_gradients=True
            )
            result.update(dx=r_dx, dh0=r_dstate0[0], dc0=r_dstate0[1], hidden_gradients=r_hidden, **r_grads)
            assert set(r_grads) == set(layer.grads), f"gradients: layer {sorted(layer.grads)}, reference {sorted(r_grads)}"
        return result

    return got, reference_pass(np.float64), reference_pass(layer.dtype)


# Tolerances (tests/test_variants.py explains them): tol * scale + tol * |expected| with
# scale = max(1, max|expected|) of the tensor.
FLOAT64_TOLERANCE = 1e-12
FLOAT32_TOLERANCE = 1e-5
# float32 with layer_norm: FLOAT32_TOLERANCE plus this many times the error (in the same
# measure) of the reference evaluated in float32 on the same inputs.
CONDITIONING_FACTOR = 3


def relative_error(got, expected):
    """max |got - expected| / (scale + |expected|): the measure the tolerances bound."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    return float(np.max(np.abs(got - expected) / (scale + np.abs(expected)), initial=0.0))


def assert_matches_reference(layer, got, expected, expected_in_dtype):
    """Every tensor of ``expected`` (float64 reference) against the layer's, in the layer's dtype."""
    dtype = layer.dtype
    for name in expected:
        assert got[name].dtype == dtype, f"{name} is {got[name].dtype}, the layer is {dtype.name}"
        if dtype == np.float64:
            tol = FLOAT64_TOLERANCE
        elif not getattr(layer, "layer_norm", False):  # a GRU has no layer_norm option
            tol = FLOAT32_TOLERANCE
        else:
            tol = FLOAT32_TOLERANCE + CONDITIONING_FACTOR * relative_error(expected_in_dtype[name], expected[name])
        assert_close(name, got[name], expected[name], tol, scaled_atol(tol, expected[name]))


def assert_gradients_match_finite_differences(layer, x, state, dy, dstate, rng, rtol, atol, **forward_options):
    """The layer's backward against central differences of loss = sum(y * dy) + sum(finals * dstate).

    Float64 only. The layer's generator is reset before every forward, so each forward
    draws the same dropout and zoneout masks and the loss is a smooth function of x, the
    initial state and the parameters. dx and the initial state's gradients are checked
    whole; each parameter at 6 sampled entries (a finite difference costs two forwards).
    """

    def forward():
        layer._dropout_rng = np.random.default_rng(123)
        return layer.forward(x, state, **forward_options)

    def loss():
        y, final, _ = forward()
        return np.sum(y * dy) + sum(np.sum(f * d) for f, d in zip(final, dstate))

    _, _, tape = forward()
    layer.zero_grad()
    dx, dstate0 = layer.backward(tape, dy, dstate)
    assert_close("dx", dx, numerical_gradient(loss, x), rtol, atol)
    for name, got, initial in zip(("dh0", "dc0"), dstate0, state):
        assert_close(name, got, numerical_gradient(loss, initial), rtol, atol)
    for name, value in layer.params.items():
        indices = sample_indices(value.shape, 6, rng)
        sampled = np.full(value.shape, np.nan)
        for index in indices:
            sampled[index] = layer.grads[name][index]
        assert_close(name, sampled, numerical_gradient(loss, value, indices), rtol, atol, equal_nan=True)
