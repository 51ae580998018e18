"""The reference GRU: PyTorch's, and the original one of Cho et al. 2014 (reset_after=False).
Part of ``lstmcore.reference`` (import it from there); the conventions are that package's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmcore.reference._activations import Activations
from lstmcore.reference._ops import cast, compute_dtype


def gru_forward(
    x: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
    h0: np.ndarray,
    *,
    reset_after: bool = True,
    activations: Activations | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """GRU (PyTorch's, the reset gate applied after the recurrent bias), one layer, one direction.

    Per step t, with x = x[t], h = h_{t-1} and the rows of the weights split into the gates
    r, z, n (H rows each)::

        r = σ(W_ir x + b_ir + W_hr h + b_hr)
        z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h_t = (1 - z) * n + z * h          y[t] = h_t

    With ``reset_after=False``, the original GRU (Cho et al. 2014; ONNX's default,
    linear_before_reset=0; Keras's reset_after=False), the reset gate scales h before W_hn::

        n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)

    With ``activations`` (``Activations``), σ of r and z becomes ``activations.gate`` and
    tanh of n ``activations.candidate``, each after ONNX's clip of its pre-activation.

    x (T, B, I); weight_ih (3H, I); weight_hh (3H, H); bias_ih, bias_hh (3H,); h0 (B, H).
    Returns ``y`` (T, B, H), ``h_n`` (B, H) and the cache ``gru_backward`` needs (a dict).
    """
    dtype = compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, h0 = cast(dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, h0)
    steps, batch, _ = x.shape
    hidden = weight_hh.shape[1]

    gates = np.empty((steps, batch, 3, hidden), dtype)  # activated r, z, n per step
    slopes = np.empty((steps, batch, 3, hidden), dtype)  # with activations: d gate / d pre-activation
    acts = Activations() if activations is None else activations
    # reset_after: W_hn h + b_hn, before the reset gate; else r * h, W_hn's operand
    hidden_n = np.empty((steps, batch, hidden), dtype)
    y = np.empty((steps, batch, hidden), dtype)  # h_t
    h = h0  # (B, H)
    for t in range(steps):
        from_input = (x[t] @ weight_ih.T + bias_ih).reshape(batch, 3, hidden)
        from_hidden = (h @ weight_hh.T + bias_hh).reshape(batch, 3, hidden)
        (r, r_slope), (z, z_slope) = (acts.gate(from_input[:, k] + from_hidden[:, k]) for k in range(2))
        if reset_after:
            hidden_n[t] = from_hidden[:, 2]
            n, n_slope = acts.candidate(from_input[:, 2] + r * hidden_n[t])
        else:
            hidden_n[t] = r * h
            n, n_slope = acts.candidate(from_input[:, 2] + hidden_n[t] @ weight_hh[2 * hidden :].T + bias_hh[2 * hidden :])
        slopes[t] = np.stack([r_slope, z_slope, n_slope], axis=1)
        h = (1 - z) * n + z * h
        gates[t] = np.stack([r, z, n], axis=1)
        y[t] = h

    cache = dict(
        x=x,  # (T, B, I)
        weight_ih=weight_ih,  # (3H, I)
        weight_hh=weight_hh,  # (3H, H)
        h0=h0,  # (B, H)
        gates=gates,  # (T, B, 3, H): r, z, n after their activations
        slopes=slopes,  # (T, B, 3, H): d r, z, n / d their pre-activations
        activations=activations,
        hidden_n=hidden_n,  # (T, B, H): W_hn h_{t-1} + b_hn (reset_after), else r * h_{t-1}
        y=y,  # (T, B, H)
        reset_after=reset_after,
    )
    return y, h, cache


def gru_backward(cache: dict[str, Any], dy: np.ndarray, dh_n: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Gradients of one ``gru_forward`` given dL/dy (T, B, H) and optionally dL/dh_n.

    Backwards in time, with dh the total gradient reaching h_t and hn = W_hn h + b_hn::

        dh  = dy[t] + (gradient from step t+1, or dh_n at t = T-1)
        dn_pre = dh * (1 - z) * (1 - n^2)
        dz_pre = dh * (h_{t-1} - n) * z(1-z)
        dr_pre = dn_pre * hn * r(1-r)
        d_input  = [dr_pre, dz_pre, dn_pre]          (B, 3H): gradient of W_i. x + b_i.
        d_hidden = [dr_pre, dz_pre, dn_pre * r]      (B, 3H): gradient of W_h. h + b_h.
        dx[t] = d_input W_ih       dh_{t-1} = dh * z + d_hidden W_hh
        dW_ih += d_input^T x[t]    dW_hh += d_hidden^T h_{t-1}
        db_ih += sum_b d_input     db_hh += sum_b d_hidden

    With ``reset_after=False`` (rh = r * h_{t-1}, W_hn's operand), the two sides agree::

        d_rh = dn_pre W_hn                     (B, H): gradient of r * h_{t-1}
        dr_pre = d_rh * h_{t-1} * r(1-r)
        d_input = d_hidden = [dr_pre, dz_pre, dn_pre]
        dh_{t-1} = dh * z + d_rh * r + [dr_pre, dz_pre] [W_hr; W_hz]
        dW_h{r,z} += [dr_pre, dz_pre]^T h_{t-1}     dW_hn += dn_pre^T rh

    Returns a dict of fresh arrays: ``dx`` (T, B, I), ``dh0`` (B, H), ``hidden_gradients``
    (T, B, H: each step's dh above, dL/dh_t) and the parameter gradients ``weight_ih``,
    ``weight_hh``, ``bias_ih``, ``bias_hh``.
    """
    x, weight_ih, weight_hh = cache["x"], cache["weight_ih"], cache["weight_hh"]
    gates, hidden_n, y = cache["gates"], cache["hidden_n"], cache["y"]
    dtype = x.dtype
    steps, batch, _ = x.shape
    hidden = weight_hh.shape[1]
    dy = np.asarray(dy, dtype)

    dx = np.empty_like(x)  # (T, B, I)
    d_weight_ih = np.zeros_like(weight_ih)  # (3H, I)
    d_weight_hh = np.zeros_like(weight_hh)  # (3H, H)
    d_bias_ih = np.zeros(3 * hidden, dtype)  # (3H,)
    d_bias_hh = np.zeros(3 * hidden, dtype)  # (3H,)
    dh = np.zeros((batch, hidden), dtype) if dh_n is None else np.array(dh_n, dtype)  # dL/dh_t
    hidden_gradients = np.empty((steps, batch, hidden), dtype)  # dL/dh_t
    for t in reversed(range(steps)):
        r, z, n = (gates[t][:, k] for k in range(3))  # each (B, H)
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        dh = dh + dy[t]
        hidden_gradients[t] = dh
        if cache["activations"] is None:
            r_slope = r * (1 - r)
            dn_pre = dh * (1 - z) * (1 - n**2)
            dz_pre = dh * (h_prev - n) * z * (1 - z)
        else:
            r_slope, z_slope, n_slope = (cache["slopes"][t][:, k] for k in range(3))
            dn_pre = dh * (1 - z) * n_slope
            dz_pre = dh * (h_prev - n) * z_slope
        if cache["reset_after"]:
            dr_pre = dn_pre * hidden_n[t] * r_slope
            d_input = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)  # (B, 3H)
            d_hidden = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)  # (B, 3H)
            d_weight_hh += d_hidden.T @ h_prev
            dh = dh * z + d_hidden @ weight_hh
        else:
            d_rh = dn_pre @ weight_hh[2 * hidden :]  # (B, H)
            dr_pre = d_rh * h_prev * r_slope
            d_input = d_hidden = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)  # (B, 3H)
            d_weight_hh[: 2 * hidden] += d_input[:, : 2 * hidden].T @ h_prev
            d_weight_hh[2 * hidden :] += dn_pre.T @ hidden_n[t]
            dh = dh * z + d_rh * r + d_input[:, : 2 * hidden] @ weight_hh[: 2 * hidden]
        dx[t] = d_input @ weight_ih
        d_weight_ih += d_input.T @ x[t]
        d_bias_ih += d_input.sum(axis=0)
        d_bias_hh += d_hidden.sum(axis=0)

    return {
        "dx": dx,
        "dh0": dh,
        "hidden_gradients": hidden_gradients,
        "weight_ih": d_weight_ih,
        "weight_hh": d_weight_hh,
        "bias_ih": d_bias_ih,
        "bias_hh": d_bias_hh,
    }
