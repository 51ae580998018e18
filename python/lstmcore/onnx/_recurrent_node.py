"""One lstmcore LSTM, GRU or RNN layer as ONNX nodes: one LSTM/GRU/RNN node per layer of
the stack, its weights moved into ONNX's gate order, the layers joined time-major."""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmcore.onnx._gate_order import (
    COUPLED_ONNX_BLOCKS,
    COUPLED_ONNX_PEEPHOLE_ROWS,
    ONNX_ACTIVATIONS,
    ONNX_BLOCKS,
    ONNX_PEEPHOLE_ROWS,
)
from lstmcore.rnn import GRU, LSTM, RNN


def operator_of(layer: Any) -> str:
    """ "LSTM", "GRU" or "RNN"; a ValueError naming each option ONNX has no operator for."""
    if isinstance(layer, LSTM):
        config = layer.get_config()
        # zoneout: at inference h mixes in h_{t-1}, which no ONNX attribute expresses.
        named = [f"{name}={config[name]!r}" for name in ("proj_size", "layer_norm", "zoneout") if config[name]]
        if named:
            raise ValueError(
                f"ONNX's LSTM operator cannot express {', '.join(named)}; the LSTM options it has are peephole, "
                "coupled (input_forget), bias, bidirectional, reverse, activations and clip"
            )
        return "LSTM"
    if isinstance(layer, GRU):
        return "GRU"
    if isinstance(layer, RNN):
        return "RNN"
    raise TypeError(f"expected an lstmcore LSTM, GRU or RNN layer, got {type(layer).__name__}")


def _activations(layer: Any, operator: str) -> list[Any]:
    """The layer's activations in ONNX's order for one direction: (f, g, h) LSTM, (f, g) GRU, (f) RNN."""
    if operator == "RNN":
        return [layer.nonlinearity]
    if operator == "GRU":
        return [layer.gate_activation, layer.activation]
    output = layer.activation if layer.cell_activation is None else layer.cell_activation
    return [layer.gate_activation, layer.activation, output]


def _activation_attributes(layer: Any, operator: str, directions: int) -> dict[str, Any]:
    """activations, activation_alpha and activation_beta, or nothing for ONNX's defaults.

    ONNX Runtime takes one alpha and one beta per listed activation, in order (a Sigmoid's
    ignored), so every activation gets both; Affine's are 1 and 0 (identity).
    """
    chosen = _activations(layer, operator)
    defaults = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"], "RNN": ["tanh"]}[operator]
    if chosen == defaults:
        return {}
    names, alphas, betas = [], [], []
    for activation in chosen:
        name = activation if isinstance(activation, str) else activation[0]
        alpha, beta = (1.0, 0.0) if isinstance(activation, str) else activation[1:]
        names.append(ONNX_ACTIVATIONS[name])
        alphas.append(float(alpha))
        betas.append(float(beta))
    return {
        "activations": names * directions,
        "activation_alpha": alphas * directions,
        "activation_beta": betas * directions,
    }


def _blocks(array: np.ndarray, order: tuple[int | None, ...], hidden: int) -> np.ndarray:
    """Rows of W, R or a bias (lstmcore's gate blocks of `hidden` rows) in ONNX's order;
    zero rows for an ONNX block lstmcore has none of."""
    parts = []
    for block in order:
        if block is None:
            parts.append(np.zeros((hidden,) + array.shape[1:], array.dtype))
        else:
            parts.append(array[block * hidden : (block + 1) * hidden])
    return np.concatenate(parts)


def direction_weights(layer: Any, operator: str, layer_index: int) -> dict[str, np.ndarray]:
    """W, R, B (and P) of one stacked layer, every direction, as ONNX's inputs hold them."""
    hidden = layer.hidden_size
    coupled = operator == "LSTM" and layer.coupled
    order = COUPLED_ONNX_BLOCKS if coupled else ONNX_BLOCKS[operator]
    gathered: dict[str, list[np.ndarray]] = {"W": [], "R": [], "B": [], "P": []}
    for direction in range(layer.num_directions):
        suffix = f"_l{layer_index}" + ("_reverse" if direction == 1 else "")
        params = layer.params
        gathered["W"].append(_blocks(params["weight_ih" + suffix], order, hidden))
        gathered["R"].append(_blocks(params["weight_hh" + suffix], order, hidden))
        if layer.bias:
            bias_ih = _blocks(params["bias_ih" + suffix], order, hidden)
            bias_hh = _blocks(params["bias_hh" + suffix], order, hidden)
            gathered["B"].append(np.concatenate([bias_ih, bias_hh]))
        if operator == "LSTM" and layer.peephole:
            rows = COUPLED_ONNX_PEEPHOLE_ROWS if coupled else ONNX_PEEPHOLE_ROWS
            gathered["P"].append(_blocks(params["weight_peephole" + suffix].reshape(-1, 1), rows, hidden)[:, 0])
    return {name: np.stack(arrays).astype(np.float32) for name, arrays in gathered.items() if arrays}


def node_attributes(layer: Any, operator: str) -> dict[str, Any]:
    """The attributes every node of the layer's stack shares."""
    directions = layer.num_directions
    attributes: dict[str, Any] = {"hidden_size": layer.hidden_size}
    if layer.bidirectional:
        attributes["direction"] = "bidirectional"
    elif layer.reverse:
        attributes["direction"] = "reverse"
    attributes.update(_activation_attributes(layer, operator, directions))
    clip = getattr(layer, "clip", None)
    if clip is not None:
        attributes["clip"] = float(clip)
    if operator == "LSTM" and layer.coupled:
        attributes["input_forget"] = 1
    if operator == "GRU":
        attributes["linear_before_reset"] = 1 if layer.reset_after else 0
    return attributes
