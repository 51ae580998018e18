"""The NumPy reference (lstmcore.reference) against finite differences and against PyTorch.

The reference is the oracle of every other numerical test, so it is checked on its own:
its backward against central differences of its forward (float64), and both passes
against torch.nn.LSTM / nn.GRU when torch is installed.

Tolerances:
- Finite differences, eps = 1e-6 in float64: truncation error ~ eps^2 * |f'''| ~ 1e-12 and
  rounding error ~ 1e-16 * |loss| / eps ~ 1e-9 for losses of order 10, so atol 1e-7 and
  rtol 1e-6 leave two orders of magnitude (observed <= 1.5e-9); a wrong term in a
  gradient is off by O(0.1).
- Against torch, float64: both compute the same expressions, only in a different order,
  so 1e-12 times the tensor's scale (observed ~2e-15).
"""

import numpy as np
import pytest

from _compare import FD_ATOL, FD_RTOL, assert_close, numerical_gradient, sample_indices, scaled_atol
from lstmcore import reference

TORCH_TOL = 1e-12
STATES = {"lstm": ("h", "c"), "gru": ("h",)}
GATES = {"lstm": 4, "gru": 3}


def random_params(kind, input_size, hidden, num_layers, directions, rng, dtype=np.float64):
    gates = GATES[kind] * hidden
    params = {}
    for layer in range(num_layers):
        features = input_size if layer == 0 else directions * hidden
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            params["weight_ih" + suffix] = rng.uniform(-0.6, 0.6, (gates, features)).astype(dtype)
            params["weight_hh" + suffix] = rng.uniform(-0.6, 0.6, (gates, hidden)).astype(dtype)
            params["bias_ih" + suffix] = rng.uniform(-0.6, 0.6, gates).astype(dtype)
            params["bias_hh" + suffix] = rng.uniform(-0.6, 0.6, gates).astype(dtype)
    return params


def pack(kind, parts):
    return tuple(parts) if kind == "lstm" else parts[0]


def unpack(kind, state):
    return tuple(state) if kind == "lstm" else (state,)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cell_backward_matches_finite_differences(kind):
    rng = np.random.default_rng(10)
    steps, batch, input_size, hidden = 3, 2, 3, 4
    forward, backward = reference.cells[kind].forward, reference.cells[kind].backward
    x = rng.normal(size=(steps, batch, input_size))
    weights = {k.removesuffix("_l0"): v for k, v in random_params(kind, input_size, hidden, 1, 1, rng).items()}
    states0 = {f"{s}0": rng.normal(size=(batch, hidden)) for s in STATES[kind]}
    dy = rng.normal(size=(steps, batch, hidden))
    d_finals = {f"d{s}_n": rng.normal(size=(batch, hidden)) for s in STATES[kind]}

    def loss():
        y, *finals, _ = forward(x, **weights, **states0)
        return np.sum(y * dy) + sum(np.sum(f * d) for f, d in zip(finals, d_finals.values()))

    *_, cache = forward(x, **weights, **states0)
    grads = backward(cache, dy, **d_finals)
    assert sorted(grads) == sorted(["dx", *(f"d{s}0" for s in STATES[kind]), "hidden_gradients", *weights])
    checked = {"dx": x, **{f"d{s}0": states0[f"{s}0"] for s in STATES[kind]}, **weights}
    for name, array in checked.items():
        assert_close(name, grads[name], numerical_gradient(loss, array), FD_RTOL, FD_ATOL)
    # dL/dh_t: the loss as a function of the state carried out of step t, the steps after
    # t run again from it (an LSTM carries c_t unchanged).
    for t in range(steps):
        carried = {"h0": cache["y"][t].copy()}
        if kind == "lstm":
            carried["c0"] = cache["cell"][t]

        def loss_from_step(t=t, carried=carried):
            total = np.sum(carried["h0"] * dy[t])
            if t == steps - 1:  # h_t is the final state (c_t's term does not depend on it)
                return total + np.sum(carried["h0"] * d_finals["dh_n"])
            y, *finals, _ = forward(x[t + 1 :], **weights, **carried)
            return total + np.sum(y * dy[t + 1 :]) + sum(np.sum(f * d) for f, d in zip(finals, d_finals.values()))

        expected = numerical_gradient(loss_from_step, carried["h0"])
        assert_close(f"hidden_gradients[{t}]", grads["hidden_gradients"][t], expected, FD_RTOL, FD_ATOL)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stacked_bidirectional_backward_matches_finite_differences(kind):
    rng = np.random.default_rng(11)
    steps, batch, input_size, hidden, num_layers = 3, 2, 3, 4, 2
    params = random_params(kind, input_size, hidden, num_layers, 2, rng)
    x = rng.normal(size=(steps, batch, input_size))  # time-major
    state = [rng.normal(size=(num_layers * 2, batch, hidden)) for _ in STATES[kind]]
    dy = rng.normal(size=(steps, batch, 2 * hidden))
    dstate = [rng.normal(size=s.shape) for s in state]
    options = dict(num_layers=num_layers, bidirectional=True, batch_first=False)

    def loss():
        y, final, _ = reference.rnn_forward(kind, params, x, pack(kind, state), **options)
        return np.sum(y * dy) + sum(np.sum(f * d) for f, d in zip(unpack(kind, final), dstate))

    _, _, cache = reference.rnn_forward(kind, params, x, pack(kind, state), **options)
    dx, dstate0, grads = reference.rnn_backward(cache, dy, pack(kind, dstate))
    assert sorted(grads) == sorted(params)
    assert_close("dx", dx, numerical_gradient(loss, x), FD_RTOL, FD_ATOL)
    for name, got, initial in zip(STATES[kind], unpack(kind, dstate0), state):
        assert_close(f"d{name}0", got, numerical_gradient(loss, initial), FD_RTOL, FD_ATOL)
    for name, value in params.items():
        assert_close(name, grads[name], numerical_gradient(loss, value), FD_RTOL, FD_ATOL)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_reference_computes_in_float32_and_agrees_with_float64(kind):
    # float32 end to end (no silent promotion), and close to float64: a few dozen rounding
    # steps of eps32 = 1.2e-7 over T=4 steps and 2 layers; 1e-5 of the scale (observed 1.7e-7).
    rng = np.random.default_rng(12)
    params = random_params(kind, 3, 5, 2, 2, rng, np.float32)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    dy = rng.normal(size=(2, 4, 10)).astype(np.float32)
    results = {}
    for dtype in (np.float32, np.float64):
        cast = {k: v.astype(dtype) for k, v in params.items()}
        y, final, cache = reference.rnn_forward(kind, cast, x.astype(dtype), num_layers=2, bidirectional=True)
        dx, dstate0, grads = reference.rnn_backward(cache, dy.astype(dtype))
        results[dtype] = {"y": y, "dx": dx, **{f"d{s}0": d for s, d in zip(STATES[kind], unpack(kind, dstate0))}}
        results[dtype].update({f"{s}_n": f for s, f in zip(STATES[kind], unpack(kind, final))}, **grads)
    for name, got in results[np.float32].items():
        assert got.dtype == np.float32, f"{name} is {got.dtype}, expected float32"
        expected = results[np.float64][name]
        assert_close(name, got, expected, 1e-5, scaled_atol(1e-5, expected))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_backward_returns_fresh_arrays(kind):
    rng = np.random.default_rng(13)
    forward, backward = reference.cells[kind].forward, reference.cells[kind].backward
    weights = {k.removesuffix("_l0"): v for k, v in random_params(kind, 2, 3, 1, 1, rng).items()}
    states0 = {f"{s}0": rng.normal(size=(2, 3)) for s in STATES[kind]}
    *_, cache = forward(rng.normal(size=(4, 2, 2)), **weights, **states0)
    dy = rng.normal(size=(4, 2, 3))
    first = backward(cache, dy)
    second = backward(cache, dy)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)  # no accumulation
    arrays = list(first.values()) + list(second.values())
    assert len({id(a) for a in arrays}) == len(arrays), "a gradient array is shared"
    assert not any(np.shares_memory(a, b) for k, a in enumerate(arrays) for b in arrays[k + 1 :])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers, bidirectional, batch_first", [(1, False, True), (2, True, False), (3, True, True)])
def test_reference_matches_torch(kind, num_layers, bidirectional, batch_first):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    steps, batch, input_size, hidden = 5, 3, 4, 6
    directions = 2 if bidirectional else 1
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    torch.manual_seed(0)
    net = module(input_size, hidden, num_layers, bidirectional=bidirectional, batch_first=batch_first).double()
    params = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}

    x = rng.normal(size=(batch, steps, input_size) if batch_first else (steps, batch, input_size))
    state = [rng.normal(size=(num_layers * directions, batch, hidden)) for _ in STATES[kind]]
    x_t = torch.tensor(x, requires_grad=True)
    state_t = [torch.tensor(s, requires_grad=True) for s in state]
    y_t, final_t = net(x_t, pack(kind, state_t))
    final_t = unpack(kind, final_t)
    dy = rng.normal(size=tuple(y_t.shape))
    dstate = [rng.normal(size=s.shape) for s in state]
    loss = (y_t * torch.tensor(dy)).sum() + sum((f * torch.tensor(d)).sum() for f, d in zip(final_t, dstate))
    loss.backward()

    options = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    y, final, cache = reference.rnn_forward(kind, params, x, pack(kind, state), **options)
    dx, dstate0, grads = reference.rnn_backward(cache, dy, pack(kind, dstate))

    def check(name, got, expected):
        expected = expected.detach().numpy()
        assert_close(name, got, expected, TORCH_TOL, scaled_atol(TORCH_TOL, expected))

    check("y", y, y_t)
    check("dx", dx, x_t.grad)
    for name, got, expected in zip(STATES[kind], unpack(kind, final), final_t):
        check(f"{name}_n", got, expected)
    for name, got, initial in zip(STATES[kind], unpack(kind, dstate0), state_t):
        check(f"d{name}0", got, initial.grad)
    assert sorted(grads) == sorted(name for name, _ in net.named_parameters())
    for name, parameter in net.named_parameters():
        check(name, grads[name], parameter.grad)


# ------------------------------------------------------------------------------ variants
#
# The LSTM variants and options (peephole, coupled, layer norm, projection; clamps,
# recurrent mask, zoneout): backward against finite differences (tolerances above),
# forward and backward against the README's equations written again in PyTorch with
# autograd (float64, same expressions in another order: 1e-12 of the scale, observed
# <= 1.6e-15), and identities that hold exactly or to rounding (1e-12 of the scale).

VARIANT_KINDS = ("lstm", "peephole_lstm", "coupled_lstm", "peephole_coupled_lstm", "layer_norm_lstm")
COUPLED_KINDS = ("coupled_lstm", "peephole_coupled_lstm")


def cell_weights(kind, input_size, hidden, rng, proj=0, dtype=np.float64):
    """Random weights of one layer-direction of ``kind``, keyed by name without the suffix."""
    gates = (3 if kind == "gru" or kind in COUPLED_KINDS else 4) * hidden

    def uniform(*shape, low=-0.6, high=0.6):
        return rng.uniform(low, high, shape).astype(dtype)

    weights = {
        "weight_ih": uniform(gates, input_size),
        "weight_hh": uniform(gates, proj or hidden),
        "bias_ih": uniform(gates),
        "bias_hh": uniform(gates),
    }
    if kind == "peephole_lstm":
        weights["weight_peephole"] = uniform(3, hidden)
    if kind == "peephole_coupled_lstm":
        weights["weight_peephole"] = uniform(2, hidden)
    if kind == "layer_norm_lstm":
        weights.update(
            layer_norm_ih_weight=uniform(gates, low=0.5, high=1.5),
            layer_norm_hh_weight=uniform(gates, low=0.5, high=1.5),
            layer_norm_cell_weight=uniform(hidden, low=0.5, high=1.5),
            layer_norm_cell_bias=uniform(hidden),
        )
    if proj:
        weights["weight_hr"] = uniform(proj, hidden)
    return weights


def stacked_params(kind, input_size, hidden, num_layers, directions, rng, proj=0):
    params = {}
    for layer in range(num_layers):
        features = input_size if layer == 0 else directions * (proj or hidden)
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            params.update({k + suffix: v for k, v in cell_weights(kind, features, hidden, rng, proj).items()})
    return params


def cell_options(kind, steps, batch, hidden, rng, which, proj=0):
    """Options of one layer-direction: ``which`` among clamps, recurrent_mask, zoneout, zoneout_rate."""
    width = proj or hidden  # features of h
    options = {}
    if "clamps" in which:
        first = "input" if kind in COUPLED_KINDS else "forget"
        options["clamps"] = {}
        for gate in (first, "output"):
            clamp = rng.uniform(0.1, 0.9, hidden)
            clamp[rng.permutation(hidden)[: hidden // 2]] = np.nan  # half the units left alone
            options["clamps"][gate] = clamp
    if "recurrent_mask" in which:
        options["recurrent_mask"] = (rng.random((batch, width)) < 0.7) / 0.7
    if "zoneout" in which:
        options["zoneout_h"] = (rng.random((steps, batch, width)) < 0.4).astype(float)
        options["zoneout_c"] = (rng.random((steps, batch, hidden)) < 0.4).astype(float)
    if "zoneout_rate" in which:
        options["zoneout_rate"] = 0.3
    return options


ALL_OPTIONS = ("clamps", "recurrent_mask", "zoneout")
# (kind, proj, options): every cell with and without its options, projections included.
VARIANT_CASES = {
    "projected": ("lstm", 3, ()),
    "lstm-clamps": ("lstm", 0, ("clamps",)),
    "lstm-recurrent_mask-zoneout": ("lstm", 0, ("recurrent_mask", "zoneout")),
    "lstm-zoneout_rate": ("lstm", 0, ("zoneout_rate",)),
    "projected-all-options": ("lstm", 3, ALL_OPTIONS),
    "peephole": ("peephole_lstm", 0, ()),
    "peephole-all-options": ("peephole_lstm", 0, ALL_OPTIONS),
    "peephole-projected-zoneout_rate": ("peephole_lstm", 2, ("zoneout_rate", "clamps")),
    "coupled": ("coupled_lstm", 0, ()),
    "coupled-projected-all-options": ("coupled_lstm", 3, ALL_OPTIONS),
    "peephole_coupled": ("peephole_coupled_lstm", 0, ()),
    "peephole_coupled-projected-all-options": ("peephole_coupled_lstm", 3, ALL_OPTIONS),
    "layer_norm": ("layer_norm_lstm", 0, ()),
    "layer_norm-clamps": ("layer_norm_lstm", 0, ("clamps",)),
}
variant_cases = pytest.mark.parametrize("case", list(VARIANT_CASES.values()), ids=list(VARIANT_CASES))


def one_cell_case(case, rng, steps=3, batch=2, input_size=3, hidden=4):
    """x, weights, initial states, options, dy and final-state gradients of one cell call."""
    kind, proj, which = case
    x = rng.normal(size=(steps, batch, input_size))
    weights = cell_weights(kind, input_size, hidden, rng, proj)
    states0 = {"h0": rng.normal(size=(batch, proj or hidden)), "c0": rng.normal(size=(batch, hidden))}
    options = cell_options(kind, steps, batch, hidden, rng, which, proj)
    dy = rng.normal(size=(steps, batch, proj or hidden))
    d_finals = {"dh_n": rng.normal(size=(batch, proj or hidden)), "dc_n": rng.normal(size=(batch, hidden))}
    return x, weights, states0, options, dy, d_finals


@variant_cases
def test_variant_cell_backward_matches_finite_differences(case):
    rng = np.random.default_rng(15)
    cell = reference.cells[case[0]]
    x, weights, states0, options, dy, d_finals = one_cell_case(case, rng)

    def loss():
        y, h_n, c_n, _ = cell.forward(x, **weights, **states0, **options)
        return np.sum(y * dy) + np.sum(h_n * d_finals["dh_n"]) + np.sum(c_n * d_finals["dc_n"])

    *_, cache = cell.forward(x, **weights, **states0, **options)
    grads = cell.backward(cache, dy, **d_finals)
    assert sorted(grads) == sorted(["dx", "dh0", "dc0", "hidden_gradients", *weights])
    # The last step's is the identity the others build on (the torch test checks them all).
    assert_close("hidden_gradients[T-1]", grads["hidden_gradients"][-1], dy[-1] + d_finals["dh_n"], 1e-15, 1e-15)
    checked = {"dx": x, "dh0": states0["h0"], "dc0": states0["c0"], **weights}
    for name, array in checked.items():
        assert_close(name, grads[name], numerical_gradient(loss, array), FD_RTOL, FD_ATOL)


STACKED_CASES = {
    "peephole-projected-all-options": ("peephole_lstm", 2, ALL_OPTIONS),
    "coupled-all-options": ("coupled_lstm", 0, ALL_OPTIONS),
    "peephole_coupled-all-options": ("peephole_coupled_lstm", 0, ALL_OPTIONS),
    "layer_norm-clamps": ("layer_norm_lstm", 0, ("clamps",)),
    "projected": ("projected_lstm", 3, ("zoneout_rate",)),
}


@pytest.mark.parametrize("case", list(STACKED_CASES.values()), ids=list(STACKED_CASES))
def test_stacked_bidirectional_variant_backward_matches_finite_differences(case):
    # Per layer-direction options (zoneout masks in the sequence's time order) and a
    # dropout mask on the second layer's input.
    kind, proj, which = case
    rng = np.random.default_rng(16)
    steps, batch, input_size, hidden, num_layers = 3, 2, 3, 4, 2
    width = proj or hidden
    params = stacked_params(kind, input_size, hidden, num_layers, 2, rng, proj)
    options = [cell_options(kind, steps, batch, hidden, rng, which, proj) for _ in range(2 * num_layers)]
    input_masks = [None, (rng.random((steps, batch, 2 * width)) < 0.6) / 0.6]
    x = rng.normal(size=(batch, steps, input_size))
    state = (rng.normal(size=(4, batch, width)), rng.normal(size=(4, batch, hidden)))
    dy = rng.normal(size=(batch, steps, 2 * width))
    dstate = (rng.normal(size=state[0].shape), rng.normal(size=state[1].shape))
    settings = dict(num_layers=num_layers, bidirectional=True, options=options, input_masks=input_masks)

    def loss():
        y, final, _ = reference.rnn_forward(kind, params, x, state, **settings)
        return np.sum(y * dy) + sum(np.sum(f * d) for f, d in zip(final, dstate))

    y, final, cache = reference.rnn_forward(kind, params, x, state, **settings)
    assert y.shape == (batch, steps, 2 * width) and final[0].shape == (4, batch, width)
    dx, dstate0, grads = reference.rnn_backward(cache, dy, dstate)
    assert sorted(grads) == sorted(params)
    assert_close("dx", dx, numerical_gradient(loss, x), FD_RTOL, FD_ATOL)
    for name, got, initial in zip(("dh0", "dc0"), dstate0, state):
        assert_close(name, got, numerical_gradient(loss, initial), FD_RTOL, FD_ATOL)
    for name, value in params.items():
        indices = sample_indices(value.shape, 8, rng)
        sampled = np.full(value.shape, np.nan)
        for index in indices:
            sampled[index] = grads[name][index]
        assert_close(name, sampled, numerical_gradient(loss, value, indices), FD_RTOL, FD_ATOL, equal_nan=True)


def torch_lstm_family(torch, kind, x, w, h0, c0, options, carried=None):
    """The equations of docs/variants.md in torch ops, one step per iteration; each step's
    carried h_t is appended to the list ``carried`` (when given) with its gradient kept."""
    layer_norm = torch.nn.functional.layer_norm
    hidden = c0.shape[1]
    clamps = {gate: torch.tensor(value) for gate, value in options.get("clamps", {}).items()}

    def held(gate, activated):
        return activated if gate not in clamps else torch.where(torch.isnan(clamps[gate]), activated, clamps[gate])

    def keep(name, t):
        if name in options:
            return torch.tensor(options[name][t])
        return options.get("zoneout_rate", 0.0)

    mask = torch.tensor(options["recurrent_mask"]) if "recurrent_mask" in options else 1.0
    h, c, outputs = h0, c0, []
    for t in range(x.shape[0]):
        if kind == "layer_norm_lstm":
            a = (
                layer_norm(x[t] @ w["weight_ih"].T, (4 * hidden,), w["layer_norm_ih_weight"], None, 1e-5)
                + layer_norm(h @ w["weight_hh"].T, (4 * hidden,), w["layer_norm_hh_weight"], None, 1e-5)
                + w["bias_ih"] + w["bias_hh"]
            )  # fmt: skip
        else:
            a = x[t] @ w["weight_ih"].T + w["bias_ih"] + (h * mask) @ w["weight_hh"].T + w["bias_hh"]
        peep = torch.zeros(3, hidden, dtype=torch.float64)
        if kind == "peephole_lstm":
            peep = w["weight_peephole"]
        elif kind == "peephole_coupled_lstm":  # rows p_i, p_o: no forget gate of its own
            peep = torch.stack([w["weight_peephole"][0], peep[1], w["weight_peephole"][1]])
        if kind in COUPLED_KINDS:
            a_i, a_g, a_o = a.split(hidden, dim=1)
            i = held("input", torch.sigmoid(a_i + peep[0] * c))
            f = 1 - i
        else:
            a_i, a_f, a_g, a_o = a.split(hidden, dim=1)
            i = held("input", torch.sigmoid(a_i + peep[0] * c))
            f = held("forget", torch.sigmoid(a_f + peep[1] * c))
        g = held("candidate", torch.tanh(a_g))
        c_new = f * c + i * g
        o = held("output", torch.sigmoid(a_o + peep[2] * c_new))
        if kind == "layer_norm_lstm":
            cell_out = layer_norm(c_new, (hidden,), w["layer_norm_cell_weight"], w["layer_norm_cell_bias"], 1e-5)
            h_new = o * torch.tanh(cell_out)
        else:
            h_new = o * torch.tanh(c_new)
        if "weight_hr" in w:
            h_new = h_new @ w["weight_hr"].T
        k_h, k_c = keep("zoneout_h", t), keep("zoneout_c", t)
        c = k_c * c + (1 - k_c) * c_new
        h = k_h * h + (1 - k_h) * h_new
        outputs.append(h)
        if carried is not None:
            h.retain_grad()
            carried.append(h)
    return torch.stack(outputs), h, c


@variant_cases
def test_variant_cell_matches_the_readme_equations_in_torch(case):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(17)
    cell = reference.cells[case[0]]
    x, weights, states0, options, dy, d_finals = one_cell_case(case, rng, steps=4, batch=3, hidden=5)
    leaves = {name: torch.tensor(value, requires_grad=True) for name, value in {"x": x, **states0, **weights}.items()}
    carried = []
    y_t, h_t, c_t = torch_lstm_family(torch, case[0], leaves["x"], leaves, leaves["h0"], leaves["c0"], options, carried)
    loss = (y_t * torch.tensor(dy)).sum() + (h_t * torch.tensor(d_finals["dh_n"])).sum()
    (loss + (c_t * torch.tensor(d_finals["dc_n"])).sum()).backward()

    y, h_n, c_n, cache = cell.forward(x, **weights, **states0, **options)
    grads = cell.backward(cache, dy, **d_finals)
    expected = {"y": y_t, "h_n": h_t, "c_n": c_t, "dx": leaves["x"].grad, "dh0": leaves["h0"].grad}
    expected.update(dc0=leaves["c0"].grad, **{name: leaves[name].grad for name in weights})
    expected["hidden_gradients"] = torch.stack([h.grad for h in carried])
    got = {"y": y, "h_n": h_n, "c_n": c_n, **grads}
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        value = value.detach().numpy()
        assert_close(name, got[name], value, TORCH_TOL, scaled_atol(TORCH_TOL, value))


def test_layer_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(18)
    v, gain, bias, d_out = rng.normal(size=(3, 7)), rng.uniform(0.5, 1.5, 7), rng.normal(size=7), rng.normal(size=(3, 7))
    leaves = [torch.tensor(a, requires_grad=True) for a in (v, gain, bias)]
    out_t = torch.nn.functional.layer_norm(leaves[0], (7,), leaves[1], leaves[2], eps=1e-5)
    (out_t * torch.tensor(d_out)).sum().backward()
    out, v_hat, inv_std = reference.layer_norm(v, gain, bias)
    dv, d_gain, d_bias = reference.layer_norm_backward(d_out, v_hat, inv_std, gain)
    for name, got, expected in zip(("out", "dv", "d_gain", "d_bias"), (out, dv, d_gain, d_bias),
                                   (out_t, *(leaf.grad for leaf in leaves))):  # fmt: skip
        expected = expected.detach().numpy()
        assert_close(name, got, expected, TORCH_TOL, scaled_atol(TORCH_TOL, expected))


def run_cell(kind, x, weights, states0, options, dy):
    y, h_n, c_n, cache = reference.cells[kind].forward(x, **weights, **states0, **options)
    return {"y": y, "h_n": h_n, "c_n": c_n, **reference.cells[kind].backward(cache, dy)}


def assert_results_close(got, expected, names, tol=1e-12):
    for name in names:
        assert_close(name, got[name], expected[name], tol, scaled_atol(tol, expected[name]))


OUTPUTS = ("y", "h_n", "c_n", "dx", "dh0", "dc0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")


@pytest.mark.parametrize("which", [(), ALL_OPTIONS], ids=["no-options", "all-options"])
def test_peephole_with_zero_peepholes_is_the_plain_lstm(which):
    rng = np.random.default_rng(19)
    x, weights, states0, options, dy, _ = one_cell_case(("peephole_lstm", 0, which), rng)
    weights["weight_peephole"][...] = 0
    peephole = run_cell("peephole_lstm", x, weights, states0, options, dy)
    del weights["weight_peephole"]
    assert_results_close(peephole, run_cell("lstm", x, weights, states0, options, dy), OUTPUTS, tol=1e-15)


def test_coupled_lstm_is_the_plain_lstm_whose_forget_rows_are_minus_the_input_rows():
    # σ(-a) = 1 - σ(a): forget rows -W_i, -b_i give f = 1 - i. The plain LSTM's W_i and W_f
    # stand for the coupled one's W_i, so its W_i gradient is theirs with the sign of each.
    rng = np.random.default_rng(20)
    hidden = 4
    x, coupled, states0, _, dy, _ = one_cell_case(("coupled_lstm", 0, ()), rng, hidden=hidden)
    plain = {}
    for name, value in coupled.items():
        i, g, o = np.split(value, 3)
        plain[name] = np.concatenate([i, -i, g, o])
    got = run_cell("coupled_lstm", x, coupled, states0, {}, dy)
    expected = run_cell("lstm", x, plain, states0, {}, dy)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        i, f, g, o = np.split(expected[name], 4)
        expected[name] = np.concatenate([i - f, g, o])
    assert_results_close(got, expected, OUTPUTS)


def test_projection_by_the_identity_is_the_plain_lstm():
    rng = np.random.default_rng(21)
    x, weights, states0, options, dy, _ = one_cell_case(("lstm", 0, ALL_OPTIONS), rng)
    plain = run_cell("lstm", x, weights, states0, options, dy)
    projected = run_cell("projected_lstm", x, {**weights, "weight_hr": np.eye(4)}, states0, options, dy)
    assert_results_close(projected, plain, OUTPUTS, tol=1e-15)


@pytest.mark.parametrize("kind", ["lstm", "peephole_lstm", "coupled_lstm"])
def test_options_that_change_nothing_change_nothing(kind):
    # NaN clamps, a mask of ones, zoneout masks of zeros or rate 0: the cell without options.
    rng = np.random.default_rng(22)
    x, weights, states0, _, dy, _ = one_cell_case((kind, 0, ()), rng)
    _steps, batch, hidden = dy.shape
    neutral = {
        "clamps": {"input": np.full(hidden, np.nan), "output": np.nan},
        "recurrent_mask": np.ones((batch, hidden)),
        "zoneout_h": np.zeros(dy.shape),
        "zoneout_c": np.zeros(dy.shape),
    }
    expected = run_cell(kind, x, weights, states0, {}, dy)
    for options in (neutral, {"zoneout_rate": 0.0}):
        got = run_cell(kind, x, weights, states0, options, dy)
        assert_results_close(got, expected, [*OUTPUTS, *weights], tol=0)


@pytest.mark.parametrize("kind", VARIANT_KINDS)
def test_forget_one_and_input_zero_keep_the_cell_constant(kind):
    rng = np.random.default_rng(23)
    x, weights, states0, _, _, _ = one_cell_case((kind, 0, ()), rng)
    clamps = {"input": 0.0} if kind in COUPLED_KINDS else {"input": 0.0, "forget": 1.0}
    _y, _, c_n, cache = reference.cells[kind].forward(x, **weights, **states0, clamps=clamps)
    np.testing.assert_array_equal(cache["cell"], np.broadcast_to(states0["c0"], cache["cell"].shape))
    np.testing.assert_array_equal(c_n, states0["c0"])


def test_zoneout_keeping_every_unit_keeps_the_initial_state():
    rng = np.random.default_rng(24)
    x, weights, states0, _, dy, _ = one_cell_case(("peephole_lstm", 0, ()), rng)
    keep = {"zoneout_h": np.ones(dy.shape), "zoneout_c": np.ones(dy.shape)}
    y, _h_n, c_n, _ = reference.peephole_lstm_forward(x, **weights, **states0, **keep)
    np.testing.assert_array_equal(y, np.broadcast_to(states0["h0"], y.shape))
    np.testing.assert_array_equal(c_n, states0["c0"])


def test_zoneout_masks_follow_the_sequence_time_order_in_the_reverse_direction():
    # Masks that keep every unit at the last time step only: the forward direction's output
    # at T-1 repeats its output at T-2, and the reverse direction, which starts at T-1,
    # outputs its initial state there.
    rng = np.random.default_rng(25)
    steps, batch, hidden = 4, 2, 3
    params = stacked_params("lstm", 2, hidden, 1, 2, rng)
    keep_last = np.zeros((steps, batch, hidden))
    keep_last[-1] = 1
    options = {"zoneout_h": keep_last, "zoneout_c": keep_last}
    state = (rng.normal(size=(2, batch, hidden)), rng.normal(size=(2, batch, hidden)))
    x = rng.normal(size=(steps, batch, 2))
    y, _, _ = reference.rnn_forward("lstm", params, x, state, num_layers=1, bidirectional=True, batch_first=False,
                                    options=options)  # fmt: skip
    np.testing.assert_array_equal(y[-1, :, :hidden], y[-2, :, :hidden])
    np.testing.assert_array_equal(y[-1, :, hidden:], state[0][1])
    assert not np.allclose(y[-2, :, hidden:], y[-1, :, hidden:])


def test_input_masks_multiply_the_input_of_their_layer():
    rng = np.random.default_rng(26)
    steps, batch, hidden = 3, 2, 4
    params = stacked_params("peephole_lstm", 3, hidden, 2, 1, rng)
    mask = (rng.random((steps, batch, hidden)) < 0.5) * 2.0
    x = rng.normal(size=(steps, batch, 3))
    settings = dict(bidirectional=False, batch_first=False)
    y, _, _ = reference.rnn_forward("peephole_lstm", params, x, num_layers=2, input_masks=[None, mask], **settings)
    first = {k: v for k, v in params.items() if k.endswith("_l0")}
    second = {k.replace("_l1", "_l0"): v for k, v in params.items() if k.endswith("_l1")}
    y0, _, _ = reference.rnn_forward("peephole_lstm", first, x, num_layers=1, **settings)
    y1, _, _ = reference.rnn_forward("peephole_lstm", second, y0 * mask, num_layers=1, **settings)
    np.testing.assert_array_equal(y, y1)


@pytest.mark.parametrize("kind", ["peephole_lstm", "coupled_lstm", "layer_norm_lstm", "projected_lstm"])
def test_variant_reference_computes_in_float32_and_agrees_with_float64(kind):
    # As for lstm and gru above, 1e-5 of the scale (observed 1.8e-7); layer norm's
    # divisions by a row's std, and the backward's subtraction of row means, amplify
    # float32 rounding (rows of 5 cells here): 1e-4 (observed 2.3e-5).
    rng = np.random.default_rng(27)
    proj = 3 if kind == "projected_lstm" else 0
    params = stacked_params(kind, 3, 5, 2, 2, rng, proj)
    x = rng.normal(size=(2, 4, 3))
    dy = rng.normal(size=(2, 4, 2 * (proj or 5)))
    results = {}
    for dtype in (np.float32, np.float64):
        cast = {k: v.astype(dtype) for k, v in params.items()}
        y, final, cache = reference.rnn_forward(kind, cast, x.astype(dtype), num_layers=2, bidirectional=True)
        dx, dstate0, grads = reference.rnn_backward(cache, dy.astype(dtype))
        results[dtype] = {"y": y, "dx": dx, "dh0": dstate0[0], "dc0": dstate0[1], "h_n": final[0], "c_n": final[1]}
        results[dtype].update(grads)
    tol = 1e-4 if kind == "layer_norm_lstm" else 1e-5
    for name, got in results[np.float32].items():
        assert got.dtype == np.float32, f"{name} is {got.dtype}, expected float32"
        expected = results[np.float64][name]
        assert_close(name, got, expected, tol, scaled_atol(tol, expected))


@pytest.mark.parametrize("kind", ["peephole_lstm", "coupled_lstm", "layer_norm_lstm", "projected_lstm"])
def test_variant_backward_returns_fresh_arrays(kind):
    rng = np.random.default_rng(28)
    proj = 2 if kind == "projected_lstm" else 0
    x, weights, states0, _, dy, _ = one_cell_case((kind, proj, ()), rng)
    cell = reference.cells[kind]
    *_, cache = cell.forward(x, **weights, **states0)
    first, second = cell.backward(cache, dy), cell.backward(cache, dy)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    arrays = list(first.values()) + list(second.values())
    assert not any(np.shares_memory(a, b) for k, a in enumerate(arrays) for b in arrays[k + 1 :])


@pytest.mark.parametrize(
    "kind, options, message",
    [
        (
            "coupled_lstm",
            {"clamps": {"forget": 1.0}},
            r"expected clamps among \['input', 'candidate', 'output'\], got 'forget'",
        ),
        ("lstm", {"clamps": {"cell": 1.0}}, "got 'cell'"),
        ("peephole_lstm", {"zoneout_h": np.zeros((3, 2, 4))}, "zoneout needs both masks"),
        ("lstm", {"zoneout_rate": 1.0}, r"zoneout_rate in \[0, 1\), got 1.0"),
    ],
)
def test_bad_cell_options_are_refused(kind, options, message):
    rng = np.random.default_rng(29)
    x, weights, states0, _, _, _ = one_cell_case((kind, 0, ()), rng)
    with pytest.raises(ValueError, match=message):
        reference.cells[kind].forward(x, **weights, **states0, **options)
