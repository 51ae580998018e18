"""NumPy reference of every recurrent cell, forward and backward: the specification.

Written to be read, not to be fast: one function per cell kind and pass, the equations in
the docstring, the shapes in comments, one time step per loop iteration. The tests hold
the C++ core to it and the benchmarks time it as the NumPy baseline.

Conventions:

- One layer and one direction per cell function, time-major: x is (T, B, I), the
  outputs y are (T, B, H). A cell always runs forwards in time; the driver
  (``rnn_forward``) feeds the reverse direction the time-reversed sequence.
- Parameters exactly as PyTorch's ``nn.LSTM`` / ``nn.GRU``: ``weight_ih`` (G*H, I),
  ``weight_hh`` (G*H, H), ``bias_ih`` and ``bias_hh`` (G*H,), the G gates stacked in
  PyTorch's order.
- Everything is computed in x's floating dtype (float32 or float64); weights and states
  are cast to it.
- A backward returns *fresh* arrays (a dict of gradients); it never accumulates into the
  caller's buffers. Summing over calls, if wanted, is the caller's business.

A new cell kind is a ``<kind>_forward`` / ``<kind>_backward`` pair beside the others and one
entry in ``cells``; the stacked/bidirectional driver needs nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "sigmoid",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "Cell",
    "cells",
    "rnn_forward",
    "rnn_backward",
]


def sigmoid(a):
    """The logistic function 1 / (1 + exp(-a)), written as 0.5 * tanh(a / 2) + 0.5.

    The two are equal; the tanh form cannot overflow for large |a| in either dtype.
    """
    return 0.5 * np.tanh(0.5 * a) + 0.5


def _compute_dtype(x):
    x = np.asarray(x)
    return x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)


def _cast(dtype, *arrays):
    return [np.asarray(a, dtype=dtype) for a in arrays]


# --------------------------------------------------------------------------------- LSTM


def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0):
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
    """
    dtype = _compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0 = _cast(dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0)
    steps, batch, _ = x.shape
    hidden = weight_hh.shape[1]

    gates = np.empty((steps, batch, 4, hidden), dtype)  # activated i, f, g, o per step
    cell = np.empty((steps, batch, hidden), dtype)  # c_t
    y = np.empty((steps, batch, hidden), dtype)  # h_t
    h, c = h0, c0  # (B, H)
    for t in range(steps):
        pre = x[t] @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4H)
        pre = pre.reshape(batch, 4, hidden)
        i = sigmoid(pre[:, 0])
        f = sigmoid(pre[:, 1])
        g = np.tanh(pre[:, 2])
        o = sigmoid(pre[:, 3])
        c = f * c + i * g
        h = o * np.tanh(c)
        gates[t] = np.stack([i, f, g, o], axis=1)
        cell[t] = c
        y[t] = h

    cache = dict(
        x=x,  # (T, B, I)
        weight_ih=weight_ih,  # (4H, I)
        weight_hh=weight_hh,  # (4H, H)
        h0=h0,  # (B, H)
        c0=c0,  # (B, H)
        gates=gates,  # (T, B, 4, H): i, f, g, o after their activations
        cell=cell,  # (T, B, H)
        y=y,  # (T, B, H)
    )
    return y, h, c, cache


def lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of one ``lstm_forward`` given dL/dy (T, B, H) and optionally dL/dh_n, dL/dc_n.

    Backwards in time, with dh and dc the total gradients reaching h_t and c_t::

        dh  = dy[t] + (gradient from step t+1, or dh_n at t = T-1)
        do  = dh * tanh(c_t)
        dc  = dc (from step t+1, or dc_n) + dh * o * (1 - tanh(c_t)^2)
        di  = dc * g          df = dc * c_{t-1}          dg = dc * i
        d_pre = [di * i(1-i), df * f(1-f), dg * (1-g^2), do * o(1-o)]      (B, 4H)
        dx[t] = d_pre W_ih      dh_{t-1} = d_pre W_hh      dc_{t-1} = dc * f
        dW_ih += d_pre^T x[t]   dW_hh += d_pre^T h_{t-1}   db_ih = db_hh += sum_b d_pre

    Returns a dict of fresh arrays: ``dx`` (T, B, I), ``dh0``, ``dc0`` (B, H) and the
    parameter gradients ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``.
    """
    x, weight_ih, weight_hh = cache["x"], cache["weight_ih"], cache["weight_hh"]
    gates, cell, y = cache["gates"], cache["cell"], cache["y"]
    dtype = x.dtype
    steps, batch, _ = x.shape
    hidden = weight_hh.shape[1]
    dy = np.asarray(dy, dtype)

    dx = np.empty_like(x)  # (T, B, I)
    d_weight_ih = np.zeros_like(weight_ih)  # (4H, I)
    d_weight_hh = np.zeros_like(weight_hh)  # (4H, H)
    d_bias = np.zeros(4 * hidden, dtype)  # (4H,): the same for bias_ih and bias_hh
    dh = np.zeros((batch, hidden), dtype) if dh_n is None else np.array(dh_n, dtype)  # dL/dh_t
    dc = np.zeros((batch, hidden), dtype) if dc_n is None else np.array(dc_n, dtype)  # dL/dc_t
    for t in reversed(range(steps)):
        i, f, g, o = (gates[t][:, k] for k in range(4))  # each (B, H)
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        c_prev = cache["c0"] if t == 0 else cell[t - 1]
        dh = dh + dy[t]
        tanh_c = np.tanh(cell[t])
        do = dh * tanh_c
        dc = dc + dh * o * (1 - tanh_c**2)
        di = dc * g
        df = dc * c_prev
        dg = dc * i
        d_pre = np.concatenate(
            [di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=1
        )  # (B, 4H)
        dx[t] = d_pre @ weight_ih
        d_weight_ih += d_pre.T @ x[t]
        d_weight_hh += d_pre.T @ h_prev
        d_bias += d_pre.sum(axis=0)
        dh = d_pre @ weight_hh
        dc = dc * f

    return {
        "dx": dx,
        "dh0": dh,
        "dc0": dc,
        "weight_ih": d_weight_ih,
        "weight_hh": d_weight_hh,
        "bias_ih": d_bias,
        "bias_hh": d_bias.copy(),
    }


# --------------------------------------------------------------------------------- GRU


def gru_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0):
    """GRU (PyTorch's, the reset gate applied after the recurrent bias), one layer, one direction.

    Per step t, with x = x[t], h = h_{t-1} and the rows of the weights split into the gates
    r, z, n (H rows each)::

        r = σ(W_ir x + b_ir + W_hr h + b_hr)
        z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h_t = (1 - z) * n + z * h          y[t] = h_t

    x (T, B, I); weight_ih (3H, I); weight_hh (3H, H); bias_ih, bias_hh (3H,); h0 (B, H).
    Returns ``y`` (T, B, H), ``h_n`` (B, H) and the cache ``gru_backward`` needs (a dict).
    """
    dtype = _compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, h0 = _cast(dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, h0)
    steps, batch, _ = x.shape
    hidden = weight_hh.shape[1]

    gates = np.empty((steps, batch, 3, hidden), dtype)  # activated r, z, n per step
    hidden_n = np.empty((steps, batch, hidden), dtype)  # W_hn h + b_hn, before the reset gate
    y = np.empty((steps, batch, hidden), dtype)  # h_t
    h = h0  # (B, H)
    for t in range(steps):
        from_input = (x[t] @ weight_ih.T + bias_ih).reshape(batch, 3, hidden)
        from_hidden = (h @ weight_hh.T + bias_hh).reshape(batch, 3, hidden)
        r = sigmoid(from_input[:, 0] + from_hidden[:, 0])
        z = sigmoid(from_input[:, 1] + from_hidden[:, 1])
        n = np.tanh(from_input[:, 2] + r * from_hidden[:, 2])
        h = (1 - z) * n + z * h
        gates[t] = np.stack([r, z, n], axis=1)
        hidden_n[t] = from_hidden[:, 2]
        y[t] = h

    cache = dict(
        x=x,  # (T, B, I)
        weight_ih=weight_ih,  # (3H, I)
        weight_hh=weight_hh,  # (3H, H)
        h0=h0,  # (B, H)
        gates=gates,  # (T, B, 3, H): r, z, n after their activations
        hidden_n=hidden_n,  # (T, B, H): W_hn h_{t-1} + b_hn
        y=y,  # (T, B, H)
    )
    return y, h, cache


def gru_backward(cache, dy, dh_n=None):
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

    Returns a dict of fresh arrays: ``dx`` (T, B, I), ``dh0`` (B, H) and the parameter
    gradients ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``.
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
    for t in reversed(range(steps)):
        r, z, n = (gates[t][:, k] for k in range(3))  # each (B, H)
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        dh = dh + dy[t]
        dn_pre = dh * (1 - z) * (1 - n**2)
        dz_pre = dh * (h_prev - n) * z * (1 - z)
        dr_pre = dn_pre * hidden_n[t] * r * (1 - r)
        d_input = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)  # (B, 3H)
        d_hidden = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)  # (B, 3H)
        dx[t] = d_input @ weight_ih
        d_weight_ih += d_input.T @ x[t]
        d_weight_hh += d_hidden.T @ h_prev
        d_bias_ih += d_input.sum(axis=0)
        d_bias_hh += d_hidden.sum(axis=0)
        dh = dh * z + d_hidden @ weight_hh

    return {
        "dx": dx,
        "dh0": dh,
        "weight_ih": d_weight_ih,
        "weight_hh": d_weight_hh,
        "bias_ih": d_bias_ih,
        "bias_hh": d_bias_hh,
    }


# --------------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    """One cell kind as the driver sees it.

    ``forward(x, **weights, **{s + "0": initial})`` returns ``(y, *finals, cache)``, one
    final per state name; ``backward(cache, dy, **{"d" + s + "_n": ...})`` returns a dict
    with ``dx``, ``"d" + s + "0"`` per state, and one gradient per weight name.
    """

    forward: object
    backward: object
    states: tuple  # state names in the user's order, e.g. ("h", "c")


cells = {
    "lstm": Cell(lstm_forward, lstm_backward, states=("h", "c")),
    "gru": Cell(gru_forward, gru_backward, states=("h",)),
}


# --------------------------------------------------------------------------------- driver

_PARAM_NAME = re.compile(r"^(?P<base>.+)_l(?P<layer>\d+)(?P<reverse>_reverse)?$")


def _direction_weights(params, layer, direction):
    """The weights of one layer-direction, keyed without the suffix: {"weight_ih": ..., ...}."""
    weights = {}
    for name, value in params.items():
        match = _PARAM_NAME.match(name)
        if match and int(match["layer"]) == layer and bool(match["reverse"]) == (direction == 1):
            weights[match["base"]] = value
    if not weights:
        raise ValueError(f"params hold no weights for layer {layer} direction {direction}: {sorted(params)}")
    return weights


def _param_name(base, layer, direction):
    return f"{base}_l{layer}" + ("_reverse" if direction == 1 else "")


def _state_tuple(cell, state):
    """A user state (h or (h, c)) as a tuple with one entry per state name."""
    return tuple(state) if len(cell.states) > 1 else (state,)


def _user_state(cell, parts):
    return tuple(parts) if len(cell.states) > 1 else parts[0]


def rnn_forward(kind, params, x, state=None, *, num_layers, bidirectional, batch_first=True):
    """A stacked, optionally bidirectional network of one cell kind, as PyTorch's nn.LSTM / nn.GRU.

    kind: a key of ``cells`` ("lstm", "gru"). params: PyTorch's names (``weight_ih_l0``, ...,
    ``bias_hh_l{k}_reverse``). x: (B, T, I) if batch_first else (T, B, I). state: None for
    zeros, else h (GRU) or (h, c) (LSTM), each (num_layers * D, B, H), index layer * D + direction.

    Layer k > 0 takes the concatenated outputs of layer k-1 (forward direction first). The
    reverse direction runs the cell on the time-reversed sequence and reverses its output
    back, so its final state belongs to t = 0, as in PyTorch.

    Returns ``y`` ((B, T, D*H) or (T, B, D*H)), the final state (shaped like ``state``) and
    the cache ``rnn_backward`` needs.
    """
    cell = cells[kind]
    dtype = _compute_dtype(x)
    x = np.asarray(x, dtype)
    if batch_first:
        x = x.transpose(1, 0, 2)  # (T, B, I)
    steps, batch, _ = x.shape
    directions = 2 if bidirectional else 1
    hidden = np.shape(params[_param_name("weight_hh", 0, 0)])[1]
    if state is None:
        initial = tuple(np.zeros((num_layers * directions, batch, hidden), dtype) for _ in cell.states)
    else:
        initial = tuple(np.asarray(s, dtype) for s in _state_tuple(cell, state))  # each (L*D, B, H)

    finals = [np.empty((num_layers * directions, batch, hidden), dtype) for _ in cell.states]
    caches = {}  # (layer, direction) -> the cell's cache
    layer_input = x  # (T, B, I) then (T, B, D*H)
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            weights = _direction_weights(params, layer, direction)
            seq = layer_input if direction == 0 else layer_input[::-1]
            states0 = {name + "0": s[index] for name, s in zip(cell.states, initial)}
            y, *final, caches[layer, direction] = cell.forward(seq, **weights, **states0)
            outputs.append(y if direction == 0 else y[::-1])
            for k, value in enumerate(final):
                finals[k][index] = value
        layer_input = np.concatenate(outputs, axis=2)  # (T, B, D*H)

    y = layer_input.transpose(1, 0, 2) if batch_first else layer_input
    cache = dict(
        kind=kind,
        num_layers=num_layers,
        directions=directions,
        batch_first=batch_first,
        hidden=hidden,
        input_dtype=dtype,
        caches=caches,
    )
    return np.ascontiguousarray(y), _user_state(cell, finals), cache


def rnn_backward(cache, dy, dstate=None):
    """Gradients of one ``rnn_forward``: dy shaped like y, dstate None or shaped like the final state.

    Returns ``dx`` (x's layout), ``dstate0`` (shaped like the state) and ``grads``, a dict
    of fresh arrays keyed by the parameter names.
    """
    cell = cells[cache["kind"]]
    num_layers, directions, hidden = cache["num_layers"], cache["directions"], cache["hidden"]
    dtype = cache["input_dtype"]
    dy = np.asarray(dy, dtype)
    if cache["batch_first"]:
        dy = dy.transpose(1, 0, 2)  # (T, B, D*H)
    d_final = None if dstate is None else tuple(np.asarray(s, dtype) for s in _state_tuple(cell, dstate))
    d_initial = [np.empty((num_layers * directions,) + dy.shape[1:2] + (hidden,), dtype) for _ in cell.states]
    grads = {}

    d_output = dy  # gradient of the current layer's output, (T, B, D*H)
    for layer in reversed(range(num_layers)):
        d_input = None  # gradient of the current layer's input, (T, B, features)
        for direction in range(directions):
            index = layer * directions + direction
            dy_direction = d_output[:, :, direction * hidden : (direction + 1) * hidden]
            if direction == 1:
                dy_direction = dy_direction[::-1]
            d_finals = {} if d_final is None else {f"d{name}_n": s[index] for name, s in zip(cell.states, d_final)}
            result = cell.backward(cache["caches"][layer, direction], dy_direction, **d_finals)
            dx = result.pop("dx")
            dx = dx if direction == 0 else dx[::-1]
            d_input = dx if d_input is None else d_input + dx
            for k, name in enumerate(cell.states):
                d_initial[k][index] = result.pop(f"d{name}0")
            for base, grad in result.items():
                grads[_param_name(base, layer, direction)] = grad
        d_output = d_input

    dx = d_output.transpose(1, 0, 2) if cache["batch_first"] else d_output
    return np.ascontiguousarray(dx), _user_state(cell, d_initial), grads
