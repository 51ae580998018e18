"""The reference LSTM and its variants: plain, projected (``weight_hr``, an option of every
cell here), peephole, coupled input-forget gate. Part of ``lstmcore.reference`` (import
them from there); the conventions are that package's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmcore.reference._activations import Activations
from lstmcore.reference._ops import GATE_NAMES, CellOptions, GateGradientSums, cast, compute_dtype, sigmoid


def lstm_forward(
    x: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    *,
    weight_hr: np.ndarray | None = None,
    activations: Activations | None = None,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """LSTM (PyTorch's), one layer, one direction, forwards in time.

    Per step t, with x = x[t], h = h_{t-1}, c = c_{t-1}, σ the logistic sigmoid and the
    rows of the weights split into the gates i, f, g, o (H rows each)::

        i = σ(W_ii x + b_ii + W_hi h + b_hi)
        f = σ(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        o = σ(W_io x + b_io + W_ho h + b_ho)
        c_t = f * c + i * g
        h_t = o * tanh(c_t)          y[t] = h_t

    x (T, B, I); weight_ih (4H, I); weight_hh (4H, H); bias_ih, bias_hh (4H,);
    h0, c0 (B, H). Returns ``y`` (T, B, H), ``h_n`` (B, H), ``c_n`` (B, H) and the cache
    ``lstm_backward`` needs (a dict).

    Options, each off by default:

    - ``weight_hr`` (P, H), PyTorch's ``proj_size``: the state passed on is projected,
      h_t = (o * tanh(c_t)) W_hr^T (B, P); then weight_hh is (4H, P), h0 and y have P
      features.
    - ``clamps``, ``recurrent_mask``, ``zoneout_h``/``zoneout_c``/``zoneout_rate``: see
      ``CellOptions``. With them, per step::

          a = x W_ih^T + b_ih + (h * m) W_hh^T + b_hh     (m: recurrent_mask, else 1)
          i, f, g, o from a as above, each replaced by its clamp where one is set
          c~ = f * c + i * g       h~ = o * tanh(c~)  (times W_hr^T with weight_hr)
          c_t = k_c * c + (1 - k_c) * c~       h_t = k_h * h + (1 - k_h) * h~     y[t] = h_t

    - ``activations`` (``Activations``): σ of i, f, o becomes ``activations.gate``, tanh of g
      ``activations.candidate``, both after ONNX's clip; tanh(c_t) becomes
      ``activations.output``(c_t).
    """
    dtype = compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, h0, c0 = cast(
        dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, h0, c0
    )
    steps, batch, _ = x.shape
    hidden = weight_ih.shape[0] // 4
    opts = CellOptions(dtype, hidden, **options)

    gates = np.empty((steps, batch, 4, hidden), dtype)  # i, f, g, o as used (after clamps)
    slopes = np.empty((steps, batch, 4, hidden), dtype)  # with activations: d gate / d pre-activation
    cell_update = np.empty((steps, batch, hidden), dtype)  # c~_t, the cell's own update
    cell = np.empty((steps, batch, hidden), dtype)  # c_t, the carried state
    cell_out = np.empty((steps, batch, hidden), dtype)  # o * tanh(c~_t), before any projection
    y = np.empty((steps, batch, h0.shape[1]), dtype)  # h_t
    h, c = h0, c0  # (B, H) or (B, P); (B, H)
    for t in range(steps):
        pre = x[t] @ weight_ih.T + bias_ih + opts.recurrent_input(h) @ weight_hh.T + bias_hh  # (B, 4H)
        pre = pre.reshape(batch, 4, hidden)
        if activations is None:
            i = opts.gate("input", sigmoid(pre[:, 0]))
            f = opts.gate("forget", sigmoid(pre[:, 1]))
            g = opts.gate("candidate", np.tanh(pre[:, 2]))
            o = opts.gate("output", sigmoid(pre[:, 3]))
            c_new = f * c + i * g
            r = o * np.tanh(c_new)
        else:
            chosen = [activations.candidate(pre[:, k]) if k == 2 else activations.gate(pre[:, k]) for k in range(4)]
            i, f, g, o = (opts.gate(name, value) for name, (value, _) in zip(GATE_NAMES, chosen))
            slopes[t] = np.stack([slope for _, slope in chosen], axis=1)
            c_new = f * c + i * g
            r = o * activations.output(c_new)[0]
        h_new = r if weight_hr is None else r @ weight_hr.T
        keep_h, keep_c = opts.keep(t)
        c = keep_c * c + (1 - keep_c) * c_new
        h = keep_h * h + (1 - keep_h) * h_new
        gates[t] = np.stack([i, f, g, o], axis=1)
        cell_update[t], cell[t], cell_out[t], y[t] = c_new, c, r, h

    cache = dict(
        x=x,  # (T, B, I)
        weight_ih=weight_ih,  # (4H, I)
        weight_hh=weight_hh,  # (4H, H) or (4H, P)
        weight_hr=weight_hr,  # (P, H) or None
        h0=h0,  # (B, H) or (B, P)
        c0=c0,  # (B, H)
        options=opts,
        gates=gates,  # (T, B, 4, H): i, f, g, o as used
        activations=activations,
        slopes=slopes,  # (T, B, 4, H): with activations, each gate's d value / d pre-activation
        cell_update=cell_update,  # (T, B, H)
        cell=cell,  # (T, B, H)
        cell_out=cell_out,  # (T, B, H)
        y=y,  # (T, B, H) or (T, B, P)
    )
    return y, h, c, cache


def lstm_backward(
    cache: dict[str, Any], dy: np.ndarray, dh_n: np.ndarray | None = None, dc_n: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Gradients of one ``lstm_forward`` given dL/dy (T, B, H) and optionally dL/dh_n, dL/dc_n.

    Backwards in time, with dh and dc the total gradients reaching h_t and c_t::

        dh  = dy[t] + (gradient from step t+1, or dh_n at t = T-1)
        do  = dh * tanh(c_t)
        dc  = dc (from step t+1, or dc_n) + dh * o * (1 - tanh(c_t)^2)
        di  = dc * g          df = dc * c_{t-1}          dg = dc * i
        d_pre = [di * i(1-i), df * f(1-f), dg * (1-g^2), do * o(1-o)]      (B, 4H)
        dx[t] = d_pre W_ih      dh_{t-1} = d_pre W_hh      dc_{t-1} = dc * f
        dW_ih += d_pre^T x[t]   dW_hh += d_pre^T h_{t-1}   db_ih = db_hh += sum_b d_pre

    With the options of ``lstm_forward``: a clamped gate's block of d_pre is zero;
    zoneout sends (1 - k) of dh, dc into the update (c~_t in place of c_t above) and k
    of them straight to h_{t-1}, c_{t-1}; with weight_hr the update's dh reaches
    r = o * tanh(c~) as dh W_hr (and dW_hr += dh^T r); the recurrent mask m multiplies
    d_pre W_hh and the h_{t-1} of dW_hh.

    Returns a dict of fresh arrays: ``dx`` (T, B, I), ``dh0``, ``dc0`` (B, H),
    ``hidden_gradients`` (T, B, H or P: each step's dh above, dL/dh_t) and the parameter
    gradients ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` (and ``weight_hr``
    when the forward had it).
    """
    x = cache["x"]
    gates, cell_update, cell, y, opts = cache["gates"], cache["cell_update"], cache["cell"], cache["y"], cache["options"]
    dtype = x.dtype
    steps, batch, _ = x.shape
    hidden = cell.shape[2]
    dy = np.asarray(dy, dtype)

    sums = GateGradientSums(cache)
    dh = np.zeros(y.shape[1:], dtype) if dh_n is None else np.array(dh_n, dtype)  # dL/dh_t
    dc = np.zeros((batch, hidden), dtype) if dc_n is None else np.array(dc_n, dtype)  # dL/dc_t
    hidden_gradients = np.empty((steps,) + dh.shape, dtype)  # dL/dh_t, (T, B, H or P)
    for t in reversed(range(steps)):
        i, f, g, o = (gates[t][:, k] for k in range(4))  # each (B, H)
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        c_prev = cache["c0"] if t == 0 else cell[t - 1]
        keep_h, keep_c = opts.keep(t)
        dh = dh + dy[t]
        hidden_gradients[t] = dh
        d_update = sums.update_gradient(t, dh, keep_h)  # reaches o * tanh(c~_t)
        if cache["activations"] is None:
            tanh_c = np.tanh(cell_update[t])
            do = d_update * tanh_c
            dc_update = (1 - keep_c) * dc + d_update * o * (1 - tanh_c**2)  # reaches c~_t
            di = dc_update * g
            df = dc_update * c_prev
            dg = dc_update * i
            d_gates = [di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)]
        else:  # the gates' slopes from the forward; output(c~_t) and its slope again
            out, out_slope = cache["activations"].output(cell_update[t])
            do = d_update * out
            dc_update = (1 - keep_c) * dc + d_update * o * out_slope
            slope = cache["slopes"][t]
            d_gates = [dc_update * g, dc_update * c_prev, dc_update * i, do]
            d_gates = [d * slope[:, k] for k, d in enumerate(d_gates)]
        d_pre = np.concatenate([opts.gate_gradient(name, d) for name, d in zip(GATE_NAMES, d_gates)], axis=1)  # (B, 4H)
        dh = sums.add(t, d_pre, h_prev) + keep_h * dh
        dc = dc_update * f + keep_c * dc
    return sums.result(dh, dc, hidden_gradients=hidden_gradients)


def projected_lstm_forward(
    x: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
    weight_hr: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The projected LSTM (Sak et al. 2014; PyTorch's ``proj_size``): ``lstm_forward`` with
    ``weight_hr`` (P, H) required, so h_t = (o * tanh(c_t)) W_hr^T is (B, P) and
    weight_hh is (4H, P). The peephole and coupled cells take ``weight_hr`` the same way."""
    return lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, weight_hr=weight_hr, **options)


def projected_lstm_backward(
    cache: dict[str, Any], dy: np.ndarray, dh_n: np.ndarray | None = None, dc_n: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Gradients of one ``projected_lstm_forward``: ``lstm_backward``, with ``weight_hr``."""
    return lstm_backward(cache, dy, dh_n, dc_n)


# ------------------------------------------------------------------------ peephole


def peephole_lstm_forward(
    x, weight_ih, weight_hh, bias_ih, bias_hh, weight_peephole, h0, c0, *, weight_hr=None, activations=None, **options
):
    """Peephole LSTM (Gers and Schmidhuber 2000), one layer, one direction.

    Per step, with a = x W_ih^T + b_ih + h W_hh^T + b_hh split into the gate blocks
    i, f, g, o (H each, as ``lstm_forward``), c = c_{t-1} and the rows p_i, p_f, p_o of
    weight_peephole (3, H)::

        i = σ(a_i + p_i * c)     f = σ(a_f + p_f * c)     g = tanh(a_g)
        c_t = f * c + i * g
        o = σ(a_o + p_o * c_t)   h_t = o * tanh(c_t)       y[t] = h_t

    Options as ``lstm_forward`` (weight_hr, clamps, recurrent_mask, zoneout, activations);
    under zoneout, o sees the cell's own update c~_t (the c_t above), not the zoned state.
    With ``activations`` (ONNX's LSTM with P), σ becomes ``activations.gate`` and tanh of g
    ``activations.candidate``, each after the clip of its whole input (peephole term
    included); tanh(c_t) becomes ``activations.output``(c_t).
    Returns ``y``, ``h_n``, ``c_n`` and the cache.
    """
    dtype = compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, weight_peephole, weight_hr, h0, c0 = cast(
        dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, weight_peephole, weight_hr, h0, c0
    )
    steps, batch, _ = x.shape
    hidden = weight_ih.shape[0] // 4
    opts = CellOptions(dtype, hidden, **options)
    acts = Activations() if activations is None else activations
    p_i, p_f, p_o = weight_peephole  # each (H,)

    gates = np.empty((steps, batch, 4, hidden), dtype)  # i, f, g, o as used
    slopes = np.empty((steps, batch, 4, hidden), dtype)  # d gate / d its activation's input
    cell_update = np.empty((steps, batch, hidden), dtype)  # c~_t
    cell = np.empty((steps, batch, hidden), dtype)  # c_t, the carried state
    cell_out = np.empty((steps, batch, hidden), dtype)  # o * tanh(c~_t)
    y = np.empty((steps, batch, h0.shape[1]), dtype)  # h_t
    h, c = h0, c0
    for t in range(steps):
        a = x[t] @ weight_ih.T + bias_ih + opts.recurrent_input(h) @ weight_hh.T + bias_hh  # (B, 4H)
        a = a.reshape(batch, 4, hidden)
        (i, s_i), (f, s_f), (g, s_g) = acts.gate(a[:, 0] + p_i * c), acts.gate(a[:, 1] + p_f * c), acts.candidate(a[:, 2])
        i, f, g = opts.gate("input", i), opts.gate("forget", f), opts.gate("candidate", g)
        c_new = f * c + i * g
        o, s_o = acts.gate(a[:, 3] + p_o * c_new)
        o = opts.gate("output", o)
        r = o * acts.output(c_new)[0]
        h_new = r if weight_hr is None else r @ weight_hr.T
        keep_h, keep_c = opts.keep(t)
        c = keep_c * c + (1 - keep_c) * c_new
        h = keep_h * h + (1 - keep_h) * h_new
        gates[t] = np.stack([i, f, g, o], axis=1)
        slopes[t] = np.stack([s_i, s_f, s_g, s_o], axis=1)
        cell_update[t], cell[t], cell_out[t], y[t] = c_new, c, r, h

    cache = dict(
        x=x, weight_ih=weight_ih, weight_hh=weight_hh, weight_peephole=weight_peephole, weight_hr=weight_hr,
        h0=h0, c0=c0, options=opts, activations=acts, gates=gates, slopes=slopes, cell_update=cell_update, cell=cell,
        cell_out=cell_out, y=y,
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
    options (clamps, zoneout, projection, recurrent mask) act as they do there. With
    activations, each gate's slope (i(1-i), ...) is its activation's, zero where the clip
    held its input, and tanh(c_t) and its slope are the output activation's.
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
    hidden_gradients = np.empty((steps,) + dh.shape, dtype)  # dL/dh_t, (T, B, H or P)
    for t in reversed(range(steps)):
        i, f, g, o = (gates[t][:, k] for k in range(4))
        s_i, s_f, s_g, s_o = (cache["slopes"][t][:, k] for k in range(4))
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        c_prev = cache["c0"] if t == 0 else cell[t - 1]
        c_new = cell_update[t]
        keep_h, keep_c = opts.keep(t)
        dh = dh + dy[t]
        hidden_gradients[t] = dh
        d_update = sums.update_gradient(t, dh, keep_h)
        out, out_slope = cache["activations"].output(c_new)
        d_o = opts.gate_gradient("output", d_update * out * s_o)
        dc_update = (1 - keep_c) * dc + d_update * o * out_slope + d_o * p_o
        d_i = opts.gate_gradient("input", dc_update * g * s_i)
        d_f = opts.gate_gradient("forget", dc_update * c_prev * s_f)
        d_g = opts.gate_gradient("candidate", dc_update * i * s_g)
        d_pre = np.concatenate([d_i, d_f, d_g, d_o], axis=1)  # (B, 4H)
        d_peephole += np.stack([(d_i * c_prev).sum(0), (d_f * c_prev).sum(0), (d_o * c_new).sum(0)])
        dh = sums.add(t, d_pre, h_prev) + keep_h * dh
        dc = dc_update * f + d_i * p_i + d_f * p_f + keep_c * dc
    return sums.result(dh, dc, weight_peephole=d_peephole, hidden_gradients=hidden_gradients)


# ------------------------------------------------------------------------ coupled


def coupled_lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, *, weight_hr=None, activations=None, **options):
    """Coupled input-forget gate LSTM (CIFG, Greff et al. 2017), one layer, one direction.

    The weights hold 3 gate blocks i, g, o (weight_ih (3H, I), weight_hh (3H, H), biases
    (3H,)); the forget gate is 1 - i. Per step, with a = x W_ih^T + b_ih + h W_hh^T + b_hh::

        i = σ(a_i)     g = tanh(a_g)     o = σ(a_o)
        c_t = (1 - i) * c + i * g
        h_t = o * tanh(c_t)              y[t] = h_t

    Options as ``lstm_forward``; clamps name "input", "candidate", "output" (a clamped i
    also fixes the forget gate 1 - i). ``activations`` (ONNX's LSTM with input_forget=1)
    replace σ, tanh of g and tanh(c_t) as in ``peephole_lstm_forward``; the forget gate
    stays 1 - i. Returns ``y``, ``h_n``, ``c_n`` and the cache.
    """
    dtype = compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, h0, c0 = cast(
        dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, h0, c0
    )
    steps, batch, _ = x.shape
    hidden = weight_ih.shape[0] // 3
    opts = CellOptions(dtype, hidden, ("input", "candidate", "output"), **options)
    acts = Activations() if activations is None else activations

    gates = np.empty((steps, batch, 3, hidden), dtype)  # i, g, o as used
    slopes = np.empty((steps, batch, 3, hidden), dtype)  # d gate / d its activation's input
    cell_update = np.empty((steps, batch, hidden), dtype)  # c~_t
    cell = np.empty((steps, batch, hidden), dtype)  # c_t
    cell_out = np.empty((steps, batch, hidden), dtype)  # o * tanh(c~_t)
    y = np.empty((steps, batch, h0.shape[1]), dtype)  # h_t
    h, c = h0, c0
    for t in range(steps):
        a = x[t] @ weight_ih.T + bias_ih + opts.recurrent_input(h) @ weight_hh.T + bias_hh  # (B, 3H)
        a = a.reshape(batch, 3, hidden)
        (i, s_i), (g, s_g), (o, s_o) = acts.gate(a[:, 0]), acts.candidate(a[:, 1]), acts.gate(a[:, 2])
        i, g, o = opts.gate("input", i), opts.gate("candidate", g), opts.gate("output", o)
        c_new = (1 - i) * c + i * g
        r = o * acts.output(c_new)[0]
        h_new = r if weight_hr is None else r @ weight_hr.T
        keep_h, keep_c = opts.keep(t)
        c = keep_c * c + (1 - keep_c) * c_new
        h = keep_h * h + (1 - keep_h) * h_new
        gates[t] = np.stack([i, g, o], axis=1)
        slopes[t] = np.stack([s_i, s_g, s_o], axis=1)
        cell_update[t], cell[t], cell_out[t], y[t] = c_new, c, r, h

    cache = dict(
        x=x, weight_ih=weight_ih, weight_hh=weight_hh, weight_hr=weight_hr, h0=h0, c0=c0, options=opts,
        activations=acts, gates=gates, slopes=slopes, cell_update=cell_update, cell=cell, cell_out=cell_out, y=y,
    )  # fmt: skip
    return y, h, c, cache


def coupled_lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of one ``coupled_lstm_forward`` (as ``lstm_backward`` with f = 1 - i).

    Per step, with dh, dc the total gradients of h_t, c_t::

        do = dh * tanh(c_t)       dc = dc + dh * o * (1 - tanh(c_t)^2)
        di = dc * (g - c_{t-1})   (i enters through i * g and through f = 1 - i)
        dg = dc * i               dc_{t-1} = dc * (1 - i)
        d_pre = [di * i(1-i), dg * (1-g^2), do * o(1-o)]      (B, 3H)

    and d_pre through the weights as in ``lstm_backward``; the slopes are the activations'
    with ``activations``, as in ``peephole_lstm_backward``. Returns a dict of fresh arrays.
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
    hidden_gradients = np.empty((steps,) + dh.shape, dtype)  # dL/dh_t, (T, B, H or P)
    for t in reversed(range(steps)):
        i, g, o = (gates[t][:, k] for k in range(3))
        s_i, s_g, s_o = (cache["slopes"][t][:, k] for k in range(3))
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        c_prev = cache["c0"] if t == 0 else cell[t - 1]
        keep_h, keep_c = opts.keep(t)
        dh = dh + dy[t]
        hidden_gradients[t] = dh
        d_update = sums.update_gradient(t, dh, keep_h)
        out, out_slope = cache["activations"].output(cell_update[t])
        do = d_update * out
        dc_update = (1 - keep_c) * dc + d_update * o * out_slope
        di = dc_update * (g - c_prev)
        dg = dc_update * i
        d_pre = np.concatenate(
            [
                opts.gate_gradient("input", di * s_i),
                opts.gate_gradient("candidate", dg * s_g),
                opts.gate_gradient("output", do * s_o),
            ],
            axis=1,
        )  # (B, 3H)
        dh = sums.add(t, d_pre, h_prev) + keep_h * dh
        dc = dc_update * (1 - i) + keep_c * dc
    return sums.result(dh, dc, hidden_gradients=hidden_gradients)


# ------------------------------------------------------------------------ peephole and coupled


def peephole_coupled_lstm_forward(
    x, weight_ih, weight_hh, bias_ih, bias_hh, weight_peephole, h0, c0, *, weight_hr=None, activations=None, **options
):
    """Coupled input-forget gate LSTM with peepholes (CIFG with peepholes, Greff et al.
    2017; ONNX's LSTM with input_forget=1 and P), one layer, one direction.

    Gate blocks i, g, o as ``coupled_lstm_forward``; weight_peephole (2, H) holds rows
    p_i, p_o (there is no forget gate of its own to see the cell)::

        i = σ(a_i + p_i * c)     g = tanh(a_g)
        c_t = (1 - i) * c + i * g
        o = σ(a_o + p_o * c_t)   h_t = o * tanh(c_t)       y[t] = h_t

    Options as ``coupled_lstm_forward``; ``activations`` as in ``peephole_lstm_forward``.
    Returns ``y``, ``h_n``, ``c_n`` and the cache.
    """
    dtype = compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, weight_peephole, weight_hr, h0, c0 = cast(
        dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, weight_peephole, weight_hr, h0, c0
    )
    steps, batch, _ = x.shape
    hidden = weight_ih.shape[0] // 3
    opts = CellOptions(dtype, hidden, ("input", "candidate", "output"), **options)
    acts = Activations() if activations is None else activations
    p_i, p_o = weight_peephole  # each (H,)

    gates = np.empty((steps, batch, 3, hidden), dtype)  # i, g, o as used
    slopes = np.empty((steps, batch, 3, hidden), dtype)  # d gate / d its activation's input
    cell_update = np.empty((steps, batch, hidden), dtype)  # c~_t
    cell = np.empty((steps, batch, hidden), dtype)  # c_t
    cell_out = np.empty((steps, batch, hidden), dtype)  # o * tanh(c~_t)
    y = np.empty((steps, batch, h0.shape[1]), dtype)  # h_t
    h, c = h0, c0
    for t in range(steps):
        a = x[t] @ weight_ih.T + bias_ih + opts.recurrent_input(h) @ weight_hh.T + bias_hh  # (B, 3H)
        a = a.reshape(batch, 3, hidden)
        (i, s_i), (g, s_g) = acts.gate(a[:, 0] + p_i * c), acts.candidate(a[:, 1])
        i, g = opts.gate("input", i), opts.gate("candidate", g)
        c_new = (1 - i) * c + i * g
        o, s_o = acts.gate(a[:, 2] + p_o * c_new)
        o = opts.gate("output", o)
        r = o * acts.output(c_new)[0]
        h_new = r if weight_hr is None else r @ weight_hr.T
        keep_h, keep_c = opts.keep(t)
        c = keep_c * c + (1 - keep_c) * c_new
        h = keep_h * h + (1 - keep_h) * h_new
        gates[t] = np.stack([i, g, o], axis=1)
        slopes[t] = np.stack([s_i, s_g, s_o], axis=1)
        cell_update[t], cell[t], cell_out[t], y[t] = c_new, c, r, h

    cache = dict(
        x=x, weight_ih=weight_ih, weight_hh=weight_hh, weight_peephole=weight_peephole, weight_hr=weight_hr,
        h0=h0, c0=c0, options=opts, activations=acts, gates=gates, slopes=slopes, cell_update=cell_update, cell=cell,
        cell_out=cell_out, y=y,
    )  # fmt: skip
    return y, h, c, cache


def peephole_coupled_lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of one ``peephole_coupled_lstm_forward``.

    Per step, with dh, dc the total gradients of h_t, c_t from later steps::

        d_o = dh * tanh(c_t) * o(1-o)
        dc = dc + dh * o * (1 - tanh(c_t)^2) + d_o * p_o           (c_t also feeds o)
        d_i = dc * (g - c_{t-1}) * i(1-i)   d_g = dc * i * (1-g^2)
        dc_{t-1} = dc * (1 - i) + d_i * p_i                         (c_{t-1} feeds i)
        dp_i += sum_b d_i c_{t-1}           dp_o += sum_b d_o c_t

    and d_pre = [d_i, d_g, d_o] through the weights as in ``lstm_backward``; the slopes are
    the activations' with ``activations``, as in ``peephole_lstm_backward``. Returns a dict
    of fresh arrays, ``weight_peephole`` (2, H) among them.
    """
    x = cache["x"]
    gates, cell_update, cell, y, opts = cache["gates"], cache["cell_update"], cache["cell"], cache["y"], cache["options"]
    p_i, p_o = cache["weight_peephole"]
    dtype = x.dtype
    steps, batch, _ = x.shape
    hidden = cell.shape[2]
    dy = np.asarray(dy, dtype)

    sums = GateGradientSums(cache)
    d_peephole = np.zeros((2, hidden), dtype)  # rows p_i, p_o
    dh = np.zeros(y.shape[1:], dtype) if dh_n is None else np.array(dh_n, dtype)
    dc = np.zeros((batch, hidden), dtype) if dc_n is None else np.array(dc_n, dtype)
    hidden_gradients = np.empty((steps,) + dh.shape, dtype)  # dL/dh_t, (T, B, H or P)
    for t in reversed(range(steps)):
        i, g, o = (gates[t][:, k] for k in range(3))
        s_i, s_g, s_o = (cache["slopes"][t][:, k] for k in range(3))
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        c_prev = cache["c0"] if t == 0 else cell[t - 1]
        c_new = cell_update[t]
        keep_h, keep_c = opts.keep(t)
        dh = dh + dy[t]
        hidden_gradients[t] = dh
        d_update = sums.update_gradient(t, dh, keep_h)
        out, out_slope = cache["activations"].output(c_new)
        d_o = opts.gate_gradient("output", d_update * out * s_o)
        dc_update = (1 - keep_c) * dc + d_update * o * out_slope + d_o * p_o
        d_i = opts.gate_gradient("input", dc_update * (g - c_prev) * s_i)
        d_g = opts.gate_gradient("candidate", dc_update * i * s_g)
        d_pre = np.concatenate([d_i, d_g, d_o], axis=1)  # (B, 3H)
        d_peephole += np.stack([(d_i * c_prev).sum(0), (d_o * c_new).sum(0)])
        dh = sums.add(t, d_pre, h_prev) + keep_h * dh
        dc = dc_update * (1 - i) + d_i * p_i + keep_c * dc
    return sums.result(dh, dc, weight_peephole=d_peephole, hidden_gradients=hidden_gradients)
