"""What the reference's cells share: activations, layer normalisation, and the options of
the LSTM family (gate clamps, recurrent dropout, zoneout). Part of ``lstmcore.reference``
(import it from there); every cell family's file uses it.
"""

from __future__ import annotations

import numpy as np

# Gates a clamp can name, in the order of the plain LSTM's weight blocks.
GATE_NAMES = ("input", "forget", "candidate", "output")

# Added to the variance inside layer normalisation's square root (README, "LSTM variants").
LAYER_NORM_EPS = 1e-5


def sigmoid(a):
    """The logistic function 1 / (1 + exp(-a)), written as 0.5 * tanh(a / 2) + 0.5.

    The two are equal; the tanh form cannot overflow for large |a| in either dtype.
    """
    return 0.5 * np.tanh(0.5 * a) + 0.5


def compute_dtype(x):
    """x's floating dtype, or float64 for integer input."""
    x = np.asarray(x)
    return x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)


def cast(dtype, *arrays):
    """The arrays in ``dtype``; None stays None (an absent optional weight)."""
    return [None if a is None else np.asarray(a, dtype=dtype) for a in arrays]


# ------------------------------------------------------------------------ layer norm


def layer_norm(v, gain, bias=None):
    """LN(v; γ, β) = γ * (v - mean(v)) / sqrt(var(v) + eps) + β over the last axis (one row).

    v (..., n); gain γ and bias β (n,) (no bias: β = 0); var is the mean squared deviation
    and eps = LAYER_NORM_EPS. Returns the output, v_hat = (v - mean) / sqrt(var + eps)
    (shaped like v) and inv_std = 1 / sqrt(var + eps) (..., 1), which the backward needs.
    """
    mean = v.mean(axis=-1, keepdims=True)
    inv_std = 1 / np.sqrt(((v - mean) ** 2).mean(axis=-1, keepdims=True) + LAYER_NORM_EPS)
    v_hat = (v - mean) * inv_std
    out = gain * v_hat if bias is None else gain * v_hat + bias
    return out, v_hat, inv_std


def layer_norm_backward(d_out, v_hat, inv_std, gain):
    """Gradients of ``layer_norm`` given dL/d(out) (..., n)::

        d_hat = d_out * γ
        dv    = inv_std * (d_hat - mean(d_hat) - v_hat * mean(d_hat * v_hat))   (means over a row)
        dγ    = sum over rows of d_out * v_hat          dβ = sum over rows of d_out

    Returns ``dv`` (shaped like d_out), ``d_gain`` and ``d_bias`` (n,).
    """
    d_hat = d_out * gain
    dv = inv_std * (d_hat - d_hat.mean(axis=-1, keepdims=True) - v_hat * (d_hat * v_hat).mean(axis=-1, keepdims=True))
    rows = tuple(range(d_out.ndim - 1))
    return dv, (d_out * v_hat).sum(axis=rows), d_out.sum(axis=rows)


# ------------------------------------------------------------------------ options


class CellOptions:
    """The options of one layer-direction of an LSTM-family cell, all off by default.

    clamps: None or {gate: value} with gate among ``gates`` (the cell's own: a coupled
        cell has no "forget") and value a number or an (H,) array. Where a value is not
        NaN, it replaces the gate's activation (ablation); the clamped gate is then a
        constant, so its pre-activation gets no gradient. NaN leaves that unit alone.
    recurrent_mask: None or an array shaped like h (B, H): h_{t-1} * mask enters the
        recurrent product W_hh, and nothing else sees the mask (variational dropout).
    zoneout_h, zoneout_c: None, or both (T, B, H) keep masks in the cell's own time order:
        1 where a unit keeps its previous h (c) at step t.
    zoneout_rate: without masks, the keep weight of every unit and step (the expectation
        of the masks, used at inference); 0 is no zoneout.

    With keep weights k_h, k_c the cell's update h~, c~ becomes the carried state::

        c_t = k_c * c_{t-1} + (1 - k_c) * c~_t          h_t = k_h * h_{t-1} + (1 - k_h) * h~_t
    """

    def __init__(
        self, dtype, hidden, gates=GATE_NAMES, *, clamps=None, recurrent_mask=None, zoneout_h=None,
        zoneout_c=None, zoneout_rate=0.0,
    ):  # fmt: skip
        self.clamps = {}
        for gate, value in (clamps or {}).items():
            if gate not in gates:
                raise ValueError(f"expected clamps among {list(gates)}, got {gate!r}")
            self.clamps[gate] = np.broadcast_to(np.asarray(value, dtype), (hidden,))
        self.recurrent_mask = None if recurrent_mask is None else np.asarray(recurrent_mask, dtype)
        if (zoneout_h is None) != (zoneout_c is None):
            raise ValueError("zoneout needs both masks, zoneout_h and zoneout_c, or neither")
        if not 0 <= zoneout_rate < 1:
            raise ValueError(f"expected zoneout_rate in [0, 1), got {zoneout_rate}")
        self.zoneout_h, self.zoneout_c = cast(dtype, zoneout_h, zoneout_c)
        self.zoneout_rate = dtype.type(zoneout_rate)

    def gate(self, name, activated):
        """The gate's value: its clamp where one is set, else its activation."""
        clamp = self.clamps.get(name)
        return activated if clamp is None else np.where(np.isnan(clamp), activated, clamp)

    def gate_gradient(self, name, d_pre):
        """The gradient of the gate's pre-activation: zero where the gate is clamped."""
        clamp = self.clamps.get(name)
        return d_pre if clamp is None else np.where(np.isnan(clamp), d_pre, 0)

    def recurrent_input(self, h):
        """h_{t-1} as the recurrent product sees it (and its gradient on the way back)."""
        return h if self.recurrent_mask is None else h * self.recurrent_mask

    def keep(self, t):
        """(k_h, k_c) at step t: the masks' rows, or the rate (0 without zoneout)."""
        if self.zoneout_h is not None:
            return self.zoneout_h[t], self.zoneout_c[t]
        return self.zoneout_rate, self.zoneout_rate


class GateGradientSums:
    """What every LSTM-family backward accumulates around its own cell's step.

    The cell turns the gradients reaching its update h~_t, c~_t into the gradients of its
    gate pre-activations d_pre (B, kH); the rest is the same for every member::

        dh~ = (1 - k_h) dh   (through W_hr with a projection: dW_hr += dh~^T r, dh~ = dh~ W_hr)
        dx[t] = d_pre W_ih   dW_ih += d_pre^T x[t]   dW_hh += d_pre^T (h_{t-1} * mask)
        db_ih = db_hh += sum_b d_pre                 dh_{t-1} = (d_pre W_hh) * mask + k_h dh
    """

    def __init__(self, cache):
        self.cache = cache
        x, weight_hr = cache["x"], cache["weight_hr"]
        self.dx = np.empty_like(x)  # (T, B, I)
        self.weight_ih = np.zeros_like(cache["weight_ih"])  # (kH, I)
        self.weight_hh = np.zeros_like(cache["weight_hh"])  # (kH, H) or (kH, P)
        self.weight_hr = None if weight_hr is None else np.zeros_like(weight_hr)  # (P, H)
        self.bias = np.zeros(cache["weight_ih"].shape[0], x.dtype)  # the same for bias_ih and bias_hh

    def update_gradient(self, t, dh, keep_h):
        """The gradient reaching the cell's output o * tanh(c~_t) at step t."""
        d_update = (1 - keep_h) * dh
        if self.weight_hr is None:
            return d_update
        self.weight_hr += d_update.T @ self.cache["cell_out"][t]
        return d_update @ self.cache["weight_hr"]

    def add(self, t, d_pre, h_prev):
        """Accumulates step t's d_pre; returns its part of dh_{t-1}, through W_hh."""
        opts = self.cache["options"]
        self.dx[t] = d_pre @ self.cache["weight_ih"]
        self.weight_ih += d_pre.T @ self.cache["x"][t]
        self.weight_hh += d_pre.T @ opts.recurrent_input(h_prev)
        self.bias += d_pre.sum(axis=0)
        return opts.recurrent_input(d_pre @ self.cache["weight_hh"])

    def result(self, dh0, dc0, **extra):
        """The backward's dict of fresh arrays: dx, dh0, dc0, the parameter gradients, extra."""
        grads = {"dx": self.dx, "dh0": dh0, "dc0": dc0, "weight_ih": self.weight_ih, "weight_hh": self.weight_hh}
        grads.update(bias_ih=self.bias, bias_hh=self.bias.copy(), **extra)
        if self.weight_hr is not None:
            grads["weight_hr"] = self.weight_hr
        return grads
