"""The reference layer-normalised LSTM. Part of ``lstmcore.reference`` (import it from
there); the conventions are that package's. It takes no projection (``weight_hr``).
"""

from __future__ import annotations

import numpy as np

from lstmcore.reference._ops import CellOptions, cast, compute_dtype, layer_norm, layer_norm_backward, sigmoid


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

    Returns a dict of fresh arrays: ``dx``, ``dh0``, ``dc0``, ``hidden_gradients`` (T, B, H:
    dL/dh_t at each step) and one gradient per weight.
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
    hidden_gradients = np.empty((steps, batch, hidden), dtype)  # dL/dh_t
    for t in reversed(range(steps)):
        i, f, g, o = (gates[t][:, k] for k in range(4))
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        c_prev = cache["c0"] if t == 0 else cell[t - 1]
        cell_hat, cell_inv_std = norms["cell"][t]
        dh = dh + dy[t]
        hidden_gradients[t] = dh
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

    grads.update(dx=dx, dh0=dh, dc0=dc, bias_ih=d_bias, bias_hh=d_bias.copy(), hidden_gradients=hidden_gradients)
    return grads
