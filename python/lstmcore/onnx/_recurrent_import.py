"""An ONNX LSTM, GRU or RNN node as an lstmcore layer of one stacked layer: its attributes
become layer options, its W, R, B, P inputs parameters in lstmcore's gate order."""

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

OPERATORS = ("LSTM", "GRU", "RNN")
# What each operator's activations list holds per direction, and lstmcore's defaults.
_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
_FROM_ONNX = {onnx_name: name for name, onnx_name in ONNX_ACTIVATIONS.items()}
_SHARED_ATTRIBUTES = {"hidden_size", "direction", "layout", "activations", "activation_alpha", "activation_beta", "clip"}
_KNOWN_ATTRIBUTES = {
    "LSTM": _SHARED_ATTRIBUTES | {"input_forget"},
    "GRU": _SHARED_ATTRIBUTES | {"linear_before_reset"},
    "RNN": _SHARED_ATTRIBUTES,
}


class NodeError(ValueError):
    """A node lstmcore cannot express; the message names the node and what it holds."""


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _activation(name: str, alpha: float | None, beta: float | None, where: str) -> Any:
    """lstmcore's form of one ONNX activation with its alpha and beta (None: the default)."""
    if name == "HardSigmoid":
        return ("hard_sigmoid", 0.2 if alpha is None else float(alpha), 0.5 if beta is None else float(beta))
    if name == "Affine":
        if (alpha is None or alpha == 1.0) and (beta is None or beta == 0.0):
            return "linear"
        raise NodeError(f"{where}: Affine with alpha={alpha}, beta={beta}; lstmcore has the identity (alpha 1, beta 0)")
    if name in _FROM_ONNX:
        return _FROM_ONNX[name]
    known = ", ".join(sorted(_FROM_ONNX))
    raise NodeError(f"{where}: activation {name!r}; lstmcore has {known}")


def _activations(operator: str, attributes: dict[str, Any], directions: int, where: str) -> list[Any]:
    """The per-direction activations in lstmcore's form; one set for every direction."""
    names = [_text(a) for a in attributes.get("activations", [])]
    per_direction = len(_DEFAULT_ACTIVATIONS[operator])
    if not names:
        names = _DEFAULT_ACTIVATIONS[operator] * directions
    if len(names) != per_direction * directions:
        raise NodeError(f"{where}: {len(names)} activations, expected {per_direction * directions}")
    # ONNX Runtime reads one alpha and one beta per listed activation, in order.
    alphas = list(attributes.get("activation_alpha", [])) or [None] * len(names)
    betas = list(attributes.get("activation_beta", [])) or [None] * len(names)
    if len(alphas) != len(names) or len(betas) != len(names):
        raise NodeError(f"{where}: activation_alpha and activation_beta need one value per activation ({len(names)})")
    chosen = [_activation(n, a, b, where) for n, a, b in zip(names, alphas, betas)]
    sets = [chosen[d * per_direction : (d + 1) * per_direction] for d in range(directions)]
    if any(s != sets[0] for s in sets[1:]):
        raise NodeError(f"{where}: different activations per direction ({names}); lstmcore's directions share them")
    return sets[0]


def _reordered(array: np.ndarray, order: tuple[int | None, ...], hidden: int) -> np.ndarray:
    """lstmcore's gate blocks from an ONNX array whose blocks are in `order`'s positions."""
    blocks = {block: position for position, block in enumerate(order) if block is not None}
    return np.concatenate([array[blocks[k] * hidden : (blocks[k] + 1) * hidden] for k in range(len(blocks))])


def layer_from_node(node: Any, attributes: dict[str, Any], weights: dict[str, np.ndarray], where: str) -> Any:
    """The lstmcore layer (float32, one stacked layer) that computes `node`.

    weights: "W", "R" and, when the node has them, "B" and "P", as arrays.
    """
    operator = node.op_type
    unknown = set(attributes) - _KNOWN_ATTRIBUTES[operator]
    if unknown:
        raise NodeError(f"{where}: attribute(s) {sorted(unknown)} that lstmcore does not know")
    direction = _text(attributes.get("direction", "forward"))
    if direction not in ("forward", "reverse", "bidirectional"):
        raise NodeError(f"{where}: direction {direction!r}; expected forward, reverse or bidirectional")
    directions = 2 if direction == "bidirectional" else 1
    w, r = weights["W"], weights["R"]
    if w.ndim != 3 or r.ndim != 3 or w.shape[0] != directions or r.shape[0] != directions:
        raise NodeError(f"{where}: W {w.shape} and R {r.shape} do not hold {directions} direction(s)")
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[operator]
    hidden = int(attributes.get("hidden_size") or r.shape[2])
    if w.shape[1] != gates * hidden or r.shape[1:] != (gates * hidden, hidden):
        raise NodeError(
            f"{where}: expected W ({directions}, {gates * hidden}, I) and R ({directions}, {gates * hidden}, {hidden}) "
            f"for hidden_size {hidden}, got {w.shape} and {r.shape}"
        )
    if "B" in weights and weights["B"].shape != (directions, 2 * gates * hidden):
        raise NodeError(f"{where}: expected B of shape {(directions, 2 * gates * hidden)}, got {weights['B'].shape}")
    if "P" in weights and weights["P"].shape != (directions, 3 * hidden):
        raise NodeError(f"{where}: expected P of shape {(directions, 3 * hidden)}, got {weights['P'].shape}")
    activations = _activations(operator, attributes, directions, where)
    clip = attributes.get("clip")
    options: dict[str, Any] = {
        "bias": "B" in weights,
        "bidirectional": directions == 2,
        "reverse": direction == "reverse",
        "batch_first": int(attributes.get("layout", 0)) == 1,
        "dtype": np.float32,
    }
    coupled = False
    if operator == "LSTM":
        coupled = int(attributes.get("input_forget", 0)) == 1
        options.update(peephole="P" in weights, coupled=coupled)
        defaults = ["sigmoid", "tanh", "tanh"]
        if activations != defaults or clip is not None:
            options.update(gate_activation=activations[0], activation=activations[1], cell_activation=activations[2])
            options["clip"] = None if clip is None else float(clip)
        layer: Any = LSTM(w.shape[2], hidden, **options)
    elif operator == "GRU":
        options["reset_after"] = int(attributes.get("linear_before_reset", 0)) == 1
        if activations != ["sigmoid", "tanh"] or clip is not None:
            options.update(gate_activation=activations[0], activation=activations[1])
            options["clip"] = None if clip is None else float(clip)
        layer = GRU(w.shape[2], hidden, **options)
    else:
        if clip is not None:
            options["clip"] = float(clip)
        try:
            layer = RNN(w.shape[2], hidden, nonlinearity=activations[0], **options)
        except (TypeError, ValueError) as error:
            raise NodeError(f"{where}: {error}") from error
    order = COUPLED_ONNX_BLOCKS if coupled else ONNX_BLOCKS[operator]
    for d in range(directions):
        suffix = "_l0" + ("_reverse" if d == 1 else "")
        layer.params["weight_ih" + suffix][...] = _reordered(w[d], order, hidden)
        layer.params["weight_hh" + suffix][...] = _reordered(r[d], order, hidden)
        if "B" in weights:
            half = gates * hidden
            layer.params["bias_ih" + suffix][...] = _reordered(weights["B"][d, :half], order, hidden)
            layer.params["bias_hh" + suffix][...] = _reordered(weights["B"][d, half:], order, hidden)
        if "P" in weights:
            rows = COUPLED_ONNX_PEEPHOLE_ROWS if coupled else ONNX_PEEPHOLE_ROWS
            column = _reordered(weights["P"][d].reshape(-1, 1), rows, hidden)[:, 0]
            layer.params["weight_peephole" + suffix][...] = column.reshape(-1, hidden)
    return layer
