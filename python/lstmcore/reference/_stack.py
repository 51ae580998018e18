"""The reference's table of cells and its driver: layers stacked, both directions, whole
sequences (no lengths), time-major inside. Part of ``lstmcore.reference`` (import it from
there).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmcore.reference._gru import gru_backward, gru_forward
from lstmcore.reference._layer_norm_lstm import layer_norm_lstm_backward, layer_norm_lstm_forward
from lstmcore.reference._lstm import (
    coupled_lstm_backward,
    coupled_lstm_forward,
    lstm_backward,
    lstm_forward,
    peephole_coupled_lstm_backward,
    peephole_coupled_lstm_forward,
    peephole_lstm_backward,
    peephole_lstm_forward,
    projected_lstm_backward,
    projected_lstm_forward,
)
from lstmcore.reference._ops import compute_dtype
from lstmcore.reference._rnn import vanilla_rnn_backward, vanilla_rnn_forward


def _lstm_state_sizes(weights: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    """(features of h, features of c): (P, H) with a projection weight_hr (P, H), else (H, H)."""
    width = np.shape(weights["weight_hh"])[1]
    return (width, np.shape(weights["weight_hr"])[1] if "weight_hr" in weights else width)


def _h_state_sizes(weights: Mapping[str, np.ndarray]) -> tuple[int, ...]:
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
    "peephole_coupled_lstm": Cell(peephole_coupled_lstm_forward, peephole_coupled_lstm_backward, states=("h", "c")),
    "layer_norm_lstm": Cell(layer_norm_lstm_forward, layer_norm_lstm_backward, states=("h", "c")),
    "gru": Cell(gru_forward, gru_backward, states=("h",), state_sizes=_h_state_sizes),
    # The option nonlinearity ("tanh", the default, or "relu") chooses the activation.
    "rnn": Cell(vanilla_rnn_forward, vanilla_rnn_backward, states=("h",), state_sizes=_h_state_sizes),
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

    kind: a key of ``cells`` ("lstm", "gru", "rnn", "peephole_lstm", ...). params: PyTorch's and
    lstmcore's names (``weight_ih_l0``, ..., ``bias_hh_l{k}_reverse``, ``weight_peephole_l0``,
    ``weight_hr_l1``, ``layer_norm_ih_weight_l0``, ...): each layer-direction's cell gets
    every parameter with its suffix. x: (B, T, I) if batch_first else (T, B, I). state: None
    for zeros, else h (GRU, RNN) or (h, c) (LSTM), each (num_layers * D, B, features),
    index layer * D + direction.

    options: None, one dict for every layer-direction, or a list of dicts indexed by
    layer * D + direction: extra keyword arguments of the cell's forward (``clamps``,
    ``recurrent_mask``, ``zoneout_h``, ``zoneout_c``, ``zoneout_rate``; see
    ``CellOptions``; the RNN's ``nonlinearity``). Per-step options (zoneout masks,
    (T, B, H)) are in the sequence's own time order; the driver reverses them with the
    sequence for the reverse direction.
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
    dtype = compute_dtype(x)
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
    cache: dict[str, Any],
    dy: np.ndarray,
    dstate: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
    *,
    return_hidden_gradients: bool = False,
) -> Any:
    """Gradients of one ``rnn_forward``: dy shaped like y, dstate None or shaped like the final state.

    Returns ``dx`` (x's layout), ``dstate0`` (shaped like the state) and ``grads``, a dict
    of fresh arrays keyed by the parameter names; with ``return_hidden_gradients`` also
    (L*D, T, B, features): dL/dh_t of each layer-direction at every step, time-major, in
    the sequence's own time order.
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
    hidden = np.empty((num_layers * directions,) + dy.shape[:2] + (width,), dtype)

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
            from_cell = result.pop("hidden_gradients")
            hidden[index] = from_cell if direction == 0 else from_cell[::-1]
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
    if return_hidden_gradients:
        return np.ascontiguousarray(dx), _user_state(cell, d_initial), grads, hidden
    return np.ascontiguousarray(dx), _user_state(cell, d_initial), grads
