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
  PyTorch's order; the variants add lstmcore's names (``weight_peephole``,
  ``weight_hr``, ``layer_norm_ih_weight``, ...; README, "LSTM variants").
- Everything is computed in x's floating dtype (float32 or float64); weights and states
  are cast to it.
- A backward returns *fresh* arrays (a dict of gradients); it never accumulates into the
  caller's buffers. Summing over calls, if wanted, is the caller's business.

Where the cells are: the plain and projected LSTM and the GRU below; the peephole,
coupled and layer-normalised LSTM in ``_reference_variants.py``; what they share
(``sigmoid``, ``layer_norm``, the LSTM options ``CellOptions``: gate clamps, recurrent
dropout, zoneout) in ``_reference_ops.py``. Import all of them from here.

A new cell kind is a ``<kind>_forward`` / ``<kind>_backward`` pair beside the others and one
entry in ``cells``; the stacked/bidirectional driver needs nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmcore._reference_ops import CellOptions, GateGradientSums, layer_norm, layer_norm_backward, sigmoid
from lstmcore._reference_ops import cast as _cast
from lstmcore._reference_ops import compute_dtype as _compute_dtype
from lstmcore._reference_variants import (
    coupled_lstm_backward,
    coupled_lstm_forward,
    layer_norm_lstm_backward,
    layer_norm_lstm_forward,
    peephole_lstm_backward,
    peephole_lstm_forward,
)

__all__ = [
    "sigmoid",
    "layer_norm",
    "layer_norm_backward",
    "CellOptions",
    "lstm_forward",
    "lstm_backward",
    "projected_lstm_forward",
    "projected_lstm_backward",
    "peephole_lstm_forward",
    "peephole_lstm_backward",
    "coupled_lstm_forward",
    "coupled_lstm_backward",
    "layer_norm_lstm_forward",
    "layer_norm_lstm_backward",
    "gru_forward",
    "gru_backward",
    "Cell",
    "cells",
    "rnn_forward",
    "rnn_backward",
]


# --------------------------------------------------------------------------------- LSTM


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
    """
    dtype = _compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, h0, c0 = _cast(
        dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, h0, c0
    )
    steps, batch, _ = x.shape
    hidden = weight_ih.shape[0] // 4
    opts = CellOptions(dtype, hidden, **options)

    gates = np.empty((steps, batch, 4, hidden), dtype)  # i, f, g, o as used (after clamps)
    cell_update = np.empty((steps, batch, hidden), dtype)  # c~_t, the cell's own update
    cell = np.empty((steps, batch, hidden), dtype)  # c_t, the carried state
    cell_out = np.empty((steps, batch, hidden), dtype)  # o * tanh(c~_t), before any projection
    y = np.empty((steps, batch, h0.shape[1]), dtype)  # h_t
    h, c = h0, c0  # (B, H) or (B, P); (B, H)
    for t in range(steps):
        pre = x[t] @ weight_ih.T + bias_ih + opts.recurrent_input(h) @ weight_hh.T + bias_hh  # (B, 4H)
        pre = pre.reshape(batch, 4, hidden)
        i = opts.gate("input", sigmoid(pre[:, 0]))
        f = opts.gate("forget", sigmoid(pre[:, 1]))
        g = opts.gate("candidate", np.tanh(pre[:, 2]))
        o = opts.gate("output", sigmoid(pre[:, 3]))
        c_new = f * c + i * g
        r = o * np.tanh(c_new)
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

    Returns a dict of fresh arrays: ``dx`` (T, B, I), ``dh0``, ``dc0`` (B, H) and the
    parameter gradients ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` (and
    ``weight_hr`` when the forward had it).
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
    for t in reversed(range(steps)):
        i, f, g, o = (gates[t][:, k] for k in range(4))  # each (B, H)
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        c_prev = cache["c0"] if t == 0 else cell[t - 1]
        keep_h, keep_c = opts.keep(t)
        dh = dh + dy[t]
        d_update = sums.update_gradient(t, dh, keep_h)  # reaches o * tanh(c~_t)
        tanh_c = np.tanh(cell_update[t])
        do = d_update * tanh_c
        dc_update = (1 - keep_c) * dc + d_update * o * (1 - tanh_c**2)  # reaches c~_t
        di = dc_update * g
        df = dc_update * c_prev
        dg = dc_update * i
        d_pre = np.concatenate(
            [
                opts.gate_gradient("input", di * i * (1 - i)),
                opts.gate_gradient("forget", df * f * (1 - f)),
                opts.gate_gradient("candidate", dg * (1 - g**2)),
                opts.gate_gradient("output", do * o * (1 - o)),
            ],
            axis=1,
        )  # (B, 4H)
        dh = sums.add(t, d_pre, h_prev) + keep_h * dh
        dc = dc_update * f + keep_c * dc
    return sums.result(dh, dc)


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


# --------------------------------------------------------------------------------- GRU


def gru_forward(
    x: np.ndarray, weight_ih: np.ndarray, weight_hh: np.ndarray, bias_ih: np.ndarray, bias_hh: np.ndarray, h0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
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


def _lstm_state_sizes(weights: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    """(features of h, features of c): (P, H) with a projection weight_hr (P, H), else (H, H)."""
    width = np.shape(weights["weight_hh"])[1]
    return (width, np.shape(weights["weight_hr"])[1] if "weight_hr" in weights else width)


def _gru_state_sizes(weights: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    return (np.shape(weights["weight_hh"])[1],)


@dataclass(frozen=True)
class Cell:
    """One cell kind as the driver sees it.

    ``forward(x, **weights, **{s + "0": initial}, **options)`` returns ``(y, *finals, cache)``,
    one final per state name; ``backward(cache, dy, **{"d" + s + "_n": ...})`` returns a
    dict with ``dx``, ``"d" + s + "0"`` per state, and one gradient per weight name.
    ``state_sizes(weights)`` gives the features of each state (the first, h, is also y's).
    """

    forward: Callable[..., tuple[Any, ...]]
    backward: Callable[..., dict[str, np.ndarray]]
    states: tuple[str, ...]  # state names in the user's order, e.g. ("h", "c")
    state_sizes: Callable[[Mapping[str, np.ndarray]], tuple[int, ...]] = _lstm_state_sizes


# Every LSTM-family cell but the layer-normalised one also takes weight_hr (a projection)
# when the params hold it: "projected_lstm" is the plain cell with weight_hr required.
cells = {
    "lstm": Cell(lstm_forward, lstm_backward, states=("h", "c")),
    "projected_lstm": Cell(projected_lstm_forward, projected_lstm_backward, states=("h", "c")),
    "peephole_lstm": Cell(peephole_lstm_forward, peephole_lstm_backward, states=("h", "c")),
    "coupled_lstm": Cell(coupled_lstm_forward, coupled_lstm_backward, states=("h", "c")),
    "layer_norm_lstm": Cell(layer_norm_lstm_forward, layer_norm_lstm_backward, states=("h", "c")),
    "gru": Cell(gru_forward, gru_backward, states=("h",), state_sizes=_gru_state_sizes),
}


# --------------------------------------------------------------------------------- driver

_PARAM_NAME = re.compile(r"^(?P<base>.+)_l(?P<layer>\d+)(?P<reverse>_reverse)?$")
# Cell options indexed by time first, (T, B, H): reversed in time with the sequence for
# the reverse direction.
_PER_STEP_OPTIONS = ("zoneout_h", "zoneout_c")


def _direction_weights(params: Mapping[str, np.ndarray], layer: int, direction: int) -> dict[str, np.ndarray]:
    """The weights of one layer-direction, keyed without the suffix: {"weight_ih": ..., ...}."""
    weights = {}
    for name, value in params.items():
        match = _PARAM_NAME.match(name)
        if match and int(match["layer"]) == layer and bool(match["reverse"]) == (direction == 1):
            weights[match["base"]] = value
    if not weights:
        raise ValueError(f"params hold no weights for layer {layer} direction {direction}: {sorted(params)}")
    return weights


def _param_name(base: str, layer: int, direction: int) -> str:
    return f"{base}_l{layer}" + ("_reverse" if direction == 1 else "")


def _state_tuple(cell: Cell, state: Any) -> tuple[Any, ...]:
    """A user state (h or (h, c)) as a tuple with one entry per state name."""
    return tuple(state) if len(cell.states) > 1 else (state,)


def _user_state(cell: Cell, parts: Sequence[np.ndarray]) -> np.ndarray | tuple[np.ndarray, ...]:
    return tuple(parts) if len(cell.states) > 1 else parts[0]


def _direction_options(
    options: dict[str, Any] | Sequence[Mapping[str, Any]] | None, index: int, direction: int
) -> dict[str, Any]:
    """The cell options of layer-direction ``index``, per-step ones reversed for direction 1."""
    if options is None:
        return {}
    chosen = dict(options if isinstance(options, dict) else options[index])
    if direction == 1:
        for name in _PER_STEP_OPTIONS:
            if chosen.get(name) is not None:
                chosen[name] = np.asarray(chosen[name])[::-1]
    return chosen


def rnn_forward(
    kind: str,
    params: Mapping[str, np.ndarray],
    x: np.ndarray,
    state: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
    *,
    num_layers: int,
    bidirectional: bool,
    batch_first: bool = True,
    options: dict[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    input_masks: Sequence[np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, ...], dict[str, Any]]:
    """A stacked, optionally bidirectional network of one cell kind, as PyTorch's nn.LSTM / nn.GRU.

    kind: a key of ``cells`` ("lstm", "gru", "peephole_lstm", ...). params: PyTorch's and
    lstmcore's names (``weight_ih_l0``, ..., ``bias_hh_l{k}_reverse``, ``weight_peephole_l0``,
    ``weight_hr_l1``, ``layer_norm_ih_weight_l0``, ...): each layer-direction's cell gets
    every parameter with its suffix. x: (B, T, I) if batch_first else (T, B, I). state: None
    for zeros, else h (GRU) or (h, c) (LSTM), each (num_layers * D, B, features),
    index layer * D + direction.

    options: None, one dict for every layer-direction, or a list of dicts indexed by
    layer * D + direction: extra keyword arguments of the cell's forward (``clamps``,
    ``recurrent_mask``, ``zoneout_h``, ``zoneout_c``, ``zoneout_rate``; see
    ``CellOptions``). Per-step options (zoneout masks, (T, B, H)) are in the sequence's
    own time order; the driver reverses them with the sequence for the reverse direction.
    input_masks: None or a list with one entry per layer, None or an array shaped like
    that layer's time-major input (T, B, features), multiplied into it (dropout between
    layers).

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
    batch = x.shape[1]
    directions = 2 if bidirectional else 1
    sizes = cell.state_sizes(_direction_weights(params, 0, 0))  # features of each state
    if state is None:
        initial = tuple(np.zeros((num_layers * directions, batch, size), dtype) for size in sizes)
    else:
        initial = tuple(np.asarray(s, dtype) for s in _state_tuple(cell, state))  # each (L*D, B, features)

    finals = [np.empty((num_layers * directions, batch, size), dtype) for size in sizes]
    caches = {}  # (layer, direction) -> the cell's cache
    masks = [None] * num_layers if input_masks is None else [None if m is None else np.asarray(m, dtype) for m in input_masks]
    layer_input = x  # (T, B, I) then (T, B, D*H)
    for layer in range(num_layers):
        if masks[layer] is not None:
            layer_input = layer_input * masks[layer]
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            weights = _direction_weights(params, layer, direction)
            seq = layer_input if direction == 0 else layer_input[::-1]
            states0 = {name + "0": s[index] for name, s in zip(cell.states, initial)}
            extra = _direction_options(options, index, direction)
            y, *final, caches[layer, direction] = cell.forward(seq, **weights, **states0, **extra)
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
        sizes=sizes,
        input_dtype=dtype,
        input_masks=masks,
        caches=caches,
    )
    return np.ascontiguousarray(y), _user_state(cell, finals), cache


def rnn_backward(
    cache: dict[str, Any], dy: np.ndarray, dstate: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, ...], dict[str, np.ndarray]]:
    """Gradients of one ``rnn_forward``: dy shaped like y, dstate None or shaped like the final state.

    Returns ``dx`` (x's layout), ``dstate0`` (shaped like the state) and ``grads``, a dict
    of fresh arrays keyed by the parameter names.
    """
    cell = cells[cache["kind"]]
    num_layers, directions, sizes = cache["num_layers"], cache["directions"], cache["sizes"]
    width = sizes[0]  # features of each direction's output
    dtype = cache["input_dtype"]
    dy = np.asarray(dy, dtype)
    if cache["batch_first"]:
        dy = dy.transpose(1, 0, 2)  # (T, B, D*H)
    d_final = None if dstate is None else tuple(np.asarray(s, dtype) for s in _state_tuple(cell, dstate))
    d_initial = [np.empty((num_layers * directions, dy.shape[1], size), dtype) for size in sizes]
    grads = {}

    d_output = dy  # gradient of the current layer's output, (T, B, D*H)
    for layer in reversed(range(num_layers)):
        d_input = None  # gradient of the current layer's input, (T, B, features)
        for direction in range(directions):
            index = layer * directions + direction
            dy_direction = d_output[:, :, direction * width : (direction + 1) * width]
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
        assert d_input is not None  # every layer has a direction
        if cache["input_masks"][layer] is not None:
            d_input = d_input * cache["input_masks"][layer]
        d_output = d_input

    dx = d_output.transpose(1, 0, 2) if cache["batch_first"] else d_output
    return np.ascontiguousarray(dx), _user_state(cell, d_initial), grads
