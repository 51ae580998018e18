"""The reference's LSTM variants: peephole, coupled input-forget gate, layer-normalised.

Part of ``lstmcore.reference`` (import them from there, where ``cells`` registers them);
the conventions are that module's. The projected LSTM is an option of every LSTM cell
(``weight_hr``), documented with ``lstm_forward``.
"""

from __future__ import annotations

import numpy as np

from lstmcore._reference_ops import (
    CellOptions,
    GateGradientSums,
    cast,
    compute_dtype,
    layer_norm,
    layer_norm_backward,
    sigmoid,
)

# ------------------------------------------------------------------------ peephole


def peephole_lstm_forward(
    x, weight_ih, weight_hh, bias_ih, bias_hh, weight_peephole, h0, c0, *, weight_hr=None, **options
):
    """Peephole LSTM (Gers and Schmidhuber 2000), one layer, one direction.

    Per step, with a = x W_ih^T + b_ih + h W_hh^T + b_hh split into the gate blocks
    i, f, g, o (H each, as ``lstm_forward``), c = c_{t-1} and the rows p_i, p_f, p_o of
    weight_peephole (3, H)::

        i = σ(a_i + p_i * c)     f = σ(a_f + p_f * c)     g = tanh(a_g)
        c_t = f * c + i * g
        o = σ(a_o + p_o * c_t)   h_t = o * tanh(c_t)       y[t] = h_t

    Options as ``lstm_forward`` (weight_hr, clamps, recurrent_mask, zoneout); under
    zoneout, o sees the cell's own update c~_t (the c_t above), not the zoned state.
    Returns ``y``, ``h_n``, ``c_n`` and the cache.
    """
    dtype = compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, weight_peephole, weight_hr, h0, c0 = cast(
        dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, weight_peephole, weight_hr, h0, c0
    )
    steps, batch, _ = x.shape
    hidden = weight_ih.shape[0] // 4
    opts = CellOptions(dtype, hidden, **options)
    p_i, p_f, p_o = weight_peephole  # each (H,)

    gates = np.empty((steps, batch, 4, hidden), dtype)  # i, f, g, o as used
    cell_update = np.empty((steps, batch, hidden), dtype)  # c~_t
    cell = np.empty((steps, batch, hidden), dtype)  # c_t, the carried state
    cell_out = np.empty((steps, batch, hidden), dtype)  # o * tanh(c~_t)
    y = np.empty((steps, batch, h0.shape[1]), dtype)  # h_t
    h, c = h0, c0
    for t in range(steps):
        a = x[t] @ weight_ih.T + bias_ih + opts.recurrent_input(h) @ weight_hh.T + bias_hh  # (B, 4H)
        a = a.reshape(batch, 4, hidden)
        i = opts.gate("input", sigmoid(a[:, 0] + p_i * c))
        f = opts.gate("forget", sigmoid(a[:, 1] + p_f * c))
        g = opts.gate("candidate", np.tanh(a[:, 2]))
        c_new = f * c + i * g
        o = opts.gate("output", sigmoid(a[:, 3] + p_o * c_new))
        r = o * np.tanh(c_new)
        h_new = r if weight_hr is None else r @ weight_hr.T
        keep_h, keep_c = opts.keep(t)
        c = keep_c * c + (1 - keep_c) * c_new
        h = keep_h * h + (1 - keep_h) * h_new
        gates[t] = np.stack([i, f, g, o], axis=1)
        cell_update[t], cell[t], cell_out[t], y[t] = c_new, c, r, h

    cache = dict(
        x=x, weight_ih=weight_ih, weight_hh=weight_hh, weight_peephole=weight_peephole, weight_hr=weight_hr,
        h0=h0, c0=c0, options=opts, gates=gates, cell_update=cell_update, cell=cell, cell_out=cell_out, y=y,
    )  # fmt: skip
    return y, h, c, cache


def peephole_lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of one ``peephole_lstm_forward`` (as ``lstm_backward``, plus the peepholes).

    Per step, with dh the total gradient of h_t and dc that of c_t from later steps::

        do = dh * tanh(c_t)                  d_o = do * o(1-o)
        dc = dc + dh * o * (1 - tanh(c_t)^2) + d_o * p_o         (c_t also feeds o)
        d_i = dc * g * i(1-i)   d_f = dc * c_{t-1} * f(1-f)   d_g = dc * i * (1-g^2)
        dc_{t-1} = dc * f + d_i * p_i + d_f * p_f               (c_{t-1} feeds i and f)
        dp_i += sum_b d_i c_{t-1}   dp_f += sum_b d_f c_{t-1}   dp_o += sum_b d_o c_t

    and d_pre = [d_i, d_f, d_g, d_o] through the weights as in ``lstm_backward``; the
    options (clamps, zoneout, projection, recurrent mask) act as they do there.
    Returns a dict of fresh arrays, ``weight_peephole`` (3, H) among them.
    """
    x = cache["x"]
    gates, cell_update, cell, y, opts = cache["gates"], cache["cell_update"], cache["cell"], cache["y"], cache["options"]
    p_i, p_f, p_o = cache["weight_peephole"]
    dtype = x.dtype
    steps, batch, _ = x.shape
    hidden = cell.shape[2]
    dy = np.asarray(dy, dtype)

    sums = GateGradientSums(cache)
    d_peephole = np.zeros((3, hidden), dtype)  # rows p_i, p_f, p_o
    dh = np.zeros(y.shape[1:], dtype) if dh_n is None else np.array(dh_n, dtype)  # dL/dh_t
    dc = np.zeros((batch, hidden), dtype) if dc_n is None else np.array(dc_n, dtype)  # dL/dc_t
    for t in reversed(range(steps)):
        i, f, g, o = (gates[t][:, k] for k in range(4))
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        c_prev = cache["c0"] if t == 0 else cell[t - 1]
        c_new = cell_update[t]
        keep_h, keep_c = opts.keep(t)
        dh = dh + dy[t]
        d_update = sums.update_gradient(t, dh, keep_h)
        tanh_c = np.tanh(c_new)
        d_o = opts.gate_gradient("output", d_update * tanh_c * o * (1 - o))
        dc_update = (1 - keep_c) * dc + d_update * o * (1 - tanh_c**2) + d_o * p_o
        d_i = opts.gate_gradient("input", dc_update * g * i * (1 - i))
        d_f = opts.gate_gradient("forget", dc_update * c_prev * f * (1 - f))
        d_g = opts.gate_gradient("candidate", dc_update * i * (1 - g**2))
        d_pre = np.concatenate([d_i, d_f, d_g, d_o], axis=1)  # (B, 4H)
        d_peephole += np.stack([(d_i * c_prev).sum(0), (d_f * c_prev).sum(0), (d_o * c_new).sum(0)])
        dh = sums.add(t, d_pre, h_prev) + keep_h * dh
        dc = dc_update * f + d_i * p_i + d_f * p_f + keep_c * dc
    return sums.result(dh, dc, weight_peephole=d_peephole)


# ------------------------------------------------------------------------ coupled


def coupled_lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, *, weight_hr=None, **options):
    """Coupled input-forget gate LSTM (CIFG, Greff et al. 2017), one layer, one direction.

    The weights hold 3 gate blocks i, g, o (weight_ih (3H, I), weight_hh (3H, H), biases
    (3H,)); the forget gate is 1 - i. Per step, with a = x W_ih^T + b_ih + h W_hh^T + b_hh::

        i = σ(a_i)     g = tanh(a_g)     o = σ(a_o)
        c_t = (1 - i) * c + i * g
        h_t = o * tanh(c_t)              y[t] = h_t

    Options as ``lstm_forward``; clamps name "input", "candidate", "output" (a clamped i
    also fixes the forget gate 1 - i). Returns ``y``, ``h_n``, ``c_n`` and the cache.
    """
    dtype = compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, h0, c0 = cast(
        dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, h0, c0
    )
    steps, batch, _ = x.shape
    hidden = weight_ih.shape[0] // 3
    opts = CellOptions(dtype, hidden, ("input", "candidate", "output"), **options)

    gates = np.empty((steps, batch, 3, hidden), dtype)  # i, g, o as used
    cell_update = np.empty((steps, batch, hidden), dtype)  # c~_t
    cell = np.empty((steps, batch, hidden), dtype)  # c_t
    cell_out = np.empty((steps, batch, hidden), dtype)  # o * tanh(c~_t)
    y = np.empty((steps, batch, h0.shape[1]), dtype)  # h_t
    h, c = h0, c0
    for t in range(steps):
        a = x[t] @ weight_ih.T + bias_ih + opts.recurrent_input(h) @ weight_hh.T + bias_hh  # (B, 3H)
        a = a.reshape(batch, 3, hidden)
        i = opts.gate("input", sigmoid(a[:, 0]))
        g = opts.gate("candidate", np.tanh(a[:, 1]))
        o = opts.gate("output", sigmoid(a[:, 2]))
        c_new = (1 - i) * c + i * g
        r = o * np.tanh(c_new)
        h_new = r if weight_hr is None else r @ weight_hr.T
        keep_h, keep_c = opts.keep(t)
        c = keep_c * c + (1 - keep_c) * c_new
        h = keep_h * h + (1 - keep_h) * h_new
        gates[t] = np.stack([i, g, o], axis=1)
        cell_update[t], cell[t], cell_out[t], y[t] = c_new, c, r, h

    cache = dict(
        x=x, weight_ih=weight_ih, weight_hh=weight_hh, weight_hr=weight_hr, h0=h0, c0=c0, options=opts,
        gates=gates, cell_update=cell_update, cell=cell, cell_out=cell_out, y=y,
    )  # fmt: skip
    return y, h, c, cache


def coupled_lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of one ``coupled_lstm_forward`` (as ``lstm_backward`` with f = 1 - i).

    Per step, with dh, dc the total gradients of h_t, c_t::

        do = dh * tanh(c_t)       dc = dc + dh * o * (1 - tanh(c_t)^2)
        di = dc * (g - c_{t-1})   (i enters through i * g and through f = 1 - i)
        dg = dc * i               dc_{t-1} = dc * (1 - i)
        d_pre = [di * i(1-i), dg * (1-g^2), do * o(1-o)]      (B, 3H)

    and d_pre through the weights as in ``lstm_backward``. Returns a dict of fresh arrays.
    """
    x = cache["x"]
    gates, cell_update, cell, y, opts = cache["gates"], cache["cell_update"], cache["cell"], cache["y"], cache["options"]
    dtype = x.dtype
    steps, batch, _ = x.shape
    hidden = cell.shape[2]
    dy = np.asarray(dy, dtype)

    sums = GateGradientSums(cache)
    dh = np.zeros(y.shape[1:], dtype) if dh_n is None else np.array(dh_n, dtype)
    dc = np.zeros((batch, hidden), dtype) if dc_n is None else np.array(dc_n, dtype)
    for t in reversed(range(steps)):
        i, g, o = (gates[t][:, k] for k in range(3))
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        c_prev = cache["c0"] if t == 0 else cell[t - 1]
        keep_h, keep_c = opts.keep(t)
        dh = dh + dy[t]
        d_update = sums.update_gradient(t, dh, keep_h)
        tanh_c = np.tanh(cell_update[t])
        do = d_update * tanh_c
        dc_update = (1 - keep_c) * dc + d_update * o * (1 - tanh_c**2)
        di = dc_update * (g - c_prev)
        dg = dc_update * i
        d_pre = np.concatenate(
            [
                opts.gate_gradient("input", di * i * (1 - i)),
                opts.gate_gradient("candidate", dg * (1 - g**2)),
                opts.gate_gradient("output", do * o * (1 - o)),
            ],
            axis=1,
        )  # (B, 3H)
        dh = sums.add(t, d_pre, h_prev) + keep_h * dh
        dc = dc_update * (1 - i) + keep_c * dc
    return sums.result(dh, dc)


# ------------------------------------------------------------------------ layer norm


def layer_norm_lstm_forward(
    x, weight_ih, weight_hh, bias_ih, bias_hh, layer_norm_ih_weight, layer_norm_hh_weight,
    layer_norm_cell_weight, layer_norm_cell_bias, h0, c0, *, clamps=None,
):  # fmt: skip
    """Layer-normalised LSTM (Ba et al. 2016), one layer, one direction (README, "LSTM variants").

    Per step, with LN(v; γ, β) = γ * (v - mean(v)) / sqrt(var(v) + 1e-5) + β over the
    features of one row (``layer_norm``; β = 0 where none is named)::

        a = LN(x W_ih^T; γ_ih) + LN(h W_hh^T; γ_hh) + b_ih + b_hh       (each LN over all 4H)
        i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)             (blocks as lstm_forward)
        c_t = f * c + i * g                                              (the carried cell)
        h_t = o * tanh(LN(c_t; γ_c, β_c))                                (LN over the H cells)

    γ_ih = layer_norm_ih_weight, γ_hh = layer_norm_hh_weight (4H,); γ_c =
    layer_norm_cell_weight, β_c = layer_norm_cell_bias (H,). ``clamps`` as ``CellOptions``.
    Returns ``y``, ``h_n``, ``c_n`` and the cache.
    """
    dtype = compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, gain_ih, gain_hh, gain_cell, bias_cell, h0, c0 = cast(
        dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, layer_norm_ih_weight, layer_norm_hh_weight,
        layer_norm_cell_weight, layer_norm_cell_bias, h0, c0,
    )  # fmt: skip
    steps, batch, _ = x.shape
    hidden = weight_hh.shape[1]
    opts = CellOptions(dtype, hidden, clamps=clamps)

    gates = np.empty((steps, batch, 4, hidden), dtype)  # i, f, g, o as used
    cell = np.empty((steps, batch, hidden), dtype)  # c_t
    norms = {name: [] for name in ("input", "hidden", "cell")}  # per step (v_hat, inv_std) of each LN
    y = np.empty((steps, batch, hidden), dtype)
    h, c = h0, c0
    for t in range(steps):
        from_input, *input_norm = layer_norm(x[t] @ weight_ih.T, gain_ih)  # (B, 4H)
        from_hidden, *hidden_norm = layer_norm(h @ weight_hh.T, gain_hh)  # (B, 4H)
        a = (from_input + from_hidden + bias_ih + bias_hh).reshape(batch, 4, hidden)
        i = opts.gate("input", sigmoid(a[:, 0]))
        f = opts.gate("forget", sigmoid(a[:, 1]))
        g = opts.gate("candidate", np.tanh(a[:, 2]))
        o = opts.gate("output", sigmoid(a[:, 3]))
        c = f * c + i * g
        cell_normed, *cell_norm = layer_norm(c, gain_cell, bias_cell)  # (B, H)
        h = o * np.tanh(cell_normed)
        gates[t] = np.stack([i, f, g, o], axis=1)
        cell[t], y[t] = c, h
        for name, value in zip(norms, (input_norm, hidden_norm, cell_norm)):
            norms[name].append(value)

    cache = dict(
        x=x, weight_ih=weight_ih, weight_hh=weight_hh, gain_ih=gain_ih, gain_hh=gain_hh, gain_cell=gain_cell,
        bias_cell=bias_cell, h0=h0, c0=c0, options=opts, gates=gates, cell=cell, norms=norms, y=y,
    )  # fmt: skip
    return y, h, c, cache


def layer_norm_lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of one ``layer_norm_lstm_forward``.

    Per step, with dh, dc the total gradients of h_t, c_t and n = LN(c_t; γ_c, β_c)::

        do = dh * tanh(n)         dn = dh * o * (1 - tanh(n)^2)
        dc = dc + (dn back through LN(c_t))                     (layer_norm_backward)
        d_a = [dc * g * i(1-i), dc * c_{t-1} * f(1-f), dc * i * (1-g^2), do * o(1-o)]
        d(x W_ih^T), d(h W_hh^T) = d_a back through their LNs   dγ_ih, dγ_hh from them
        dx[t] = d(x W_ih^T) W_ih      dh_{t-1} = d(h W_hh^T) W_hh      dc_{t-1} = dc * f
        dW_ih += d(x W_ih^T)^T x[t]   dW_hh += d(h W_hh^T)^T h_{t-1}   db_ih = db_hh += sum_b d_a

    Returns a dict of fresh arrays: ``dx``, ``dh0``, ``dc0`` and one gradient per weight.
    """
    x, weight_ih, weight_hh = cache["x"], cache["weight_ih"], cache["weight_hh"]
    gates, cell, y, norms, opts = cache["gates"], cache["cell"], cache["y"], cache["norms"], cache["options"]
    gain_ih, gain_hh, gain_cell = cache["gain_ih"], cache["gain_hh"], cache["gain_cell"]
    dtype = x.dtype
    steps, batch, _ = x.shape
    hidden = weight_hh.shape[1]
    dy = np.asarray(dy, dtype)

    dx = np.empty_like(x)
    grads = {
        name: np.zeros_like(cache[key])
        for name, key in [
            ("weight_ih", "weight_ih"), ("weight_hh", "weight_hh"), ("layer_norm_ih_weight", "gain_ih"),
            ("layer_norm_hh_weight", "gain_hh"), ("layer_norm_cell_weight", "gain_cell"),
            ("layer_norm_cell_bias", "bias_cell"),
        ]
    }  # fmt: skip
    d_bias = np.zeros(4 * hidden, dtype)
    dh = np.zeros((batch, hidden), dtype) if dh_n is None else np.array(dh_n, dtype)
    dc = np.zeros((batch, hidden), dtype) if dc_n is None else np.array(dc_n, dtype)
    for t in reversed(range(steps)):
        i, f, g, o = (gates[t][:, k] for k in range(4))
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        c_prev = cache["c0"] if t == 0 else cell[t - 1]
        cell_hat, cell_inv_std = norms["cell"][t]
        dh = dh + dy[t]
        tanh_n = np.tanh(gain_cell * cell_hat + cache["bias_cell"])
        do = dh * tanh_n
        dn = dh * o * (1 - tanh_n**2)
        dc_from_h, d_gain_cell, d_bias_cell = layer_norm_backward(dn, cell_hat, cell_inv_std, gain_cell)
        grads["layer_norm_cell_weight"] += d_gain_cell
        grads["layer_norm_cell_bias"] += d_bias_cell
        dc = dc + dc_from_h
        d_a = np.concatenate(
            [
                opts.gate_gradient("input", dc * g * i * (1 - i)),
                opts.gate_gradient("forget", dc * c_prev * f * (1 - f)),
                opts.gate_gradient("candidate", dc * i * (1 - g**2)),
                opts.gate_gradient("output", do * o * (1 - o)),
            ],
            axis=1,
        )  # (B, 4H)
        d_from_input, d_gain_ih, _ = layer_norm_backward(d_a, *norms["input"][t], gain_ih)
        d_from_hidden, d_gain_hh, _ = layer_norm_backward(d_a, *norms["hidden"][t], gain_hh)
        grads["layer_norm_ih_weight"] += d_gain_ih
        grads["layer_norm_hh_weight"] += d_gain_hh
        dx[t] = d_from_input @ weight_ih
        grads["weight_ih"] += d_from_input.T @ x[t]
        grads["weight_hh"] += d_from_hidden.T @ h_prev
        d_bias += d_a.sum(axis=0)
        dh = d_from_hidden @ weight_hh
        dc = dc * f

    grads.update(dx=dx, dh0=dh, dc0=dc, bias_ih=d_bias, bias_hh=d_bias.copy())
    return grads
