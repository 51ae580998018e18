"""The operators around recurrent nodes, in NumPy: what ONNX exporters (PyTorch's,
lstmcore's own) write to lay out sequences, build zero initial states, take the last step
and run the dense head. Each takes its input arrays (None for an omitted optional input)
and the node's attributes, and returns its outputs; the semantics are the ONNX operator
specification's, for the cases listed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Arrays = list[Any]


def _axes(inputs: Arrays, attributes: dict[str, Any], position: int = 1) -> list[int] | None:
    """Axes as an input (opset 13 and later) or an attribute (before)."""
    if len(inputs) > position and inputs[position] is not None:
        return [int(a) for a in np.asarray(inputs[position]).reshape(-1)]
    axes = attributes.get("axes")
    return None if axes is None else [int(a) for a in axes]


def _squeeze(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    axes = _axes(inputs, attributes)
    x = np.asarray(inputs[0])
    return [np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(a % x.ndim for a in axes))]


def _unsqueeze(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    axes = _axes(inputs, attributes)
    x = np.asarray(inputs[0])
    rank = x.ndim + len(axes or [])
    for axis in sorted(a % rank for a in axes or []):
        x = np.expand_dims(x, axis)
    return [x]


def _reshape(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    x, shape = np.asarray(inputs[0]), [int(s) for s in np.asarray(inputs[1]).reshape(-1)]
    if not attributes.get("allowzero", 0):
        shape = [x.shape[k] if s == 0 else s for k, s in enumerate(shape)]
    return [x.reshape(shape)]


def _slice(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    x = np.asarray(inputs[0])
    if len(inputs) > 1:  # opset 10 and later: starts, ends, axes, steps as inputs
        starts, ends = np.asarray(inputs[1]).reshape(-1), np.asarray(inputs[2]).reshape(-1)
        axes = np.arange(len(starts)) if len(inputs) < 4 or inputs[3] is None else np.asarray(inputs[3]).reshape(-1)
        steps = np.ones(len(starts), np.int64) if len(inputs) < 5 or inputs[4] is None else np.asarray(inputs[4])
    else:
        starts, ends = np.asarray(attributes["starts"]), np.asarray(attributes["ends"])
        axes = np.asarray(attributes.get("axes", range(len(starts))))
        steps = np.ones(len(starts), np.int64)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, np.asarray(steps).reshape(-1)):
        # ONNX clamps huge ends (INT64_MAX for "to the end"); Python slices clamp too.
        index[int(axis) % x.ndim] = slice(int(start), int(end), int(step))
    return [x[tuple(index)]]


def _gather(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    data, indices = np.asarray(inputs[0]), np.asarray(inputs[1])
    axis = int(attributes.get("axis", 0)) % data.ndim
    size = data.shape[axis]
    if indices.size and (indices.min() < -size or indices.max() >= size):
        raise ValueError(f"Gather indices outside [{-size}, {size}) on axis {axis}")
    return [np.take(data, indices.astype(np.int64), axis=axis)]


def _gather_elements(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    data, indices = np.asarray(inputs[0]), np.asarray(inputs[1]).astype(np.int64)
    axis = int(attributes.get("axis", 0)) % data.ndim
    return [np.take_along_axis(data, np.where(indices < 0, indices + data.shape[axis], indices), axis=axis)]


def _gemm(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    a, b = np.asarray(inputs[0]), np.asarray(inputs[1])
    a = a.T if attributes.get("transA", 0) else a
    b = b.T if attributes.get("transB", 0) else b
    y = float(attributes.get("alpha", 1.0)) * (a @ b)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + float(attributes.get("beta", 1.0)) * np.asarray(inputs[2])
    return [y.astype(np.result_type(a, b), copy=False)]


def _softmax(inputs: Arrays, attributes: dict[str, Any], log: bool = False) -> Arrays:
    x = np.asarray(inputs[0])
    axis = int(attributes.get("axis", -1))
    shifted = x - x.max(axis=axis, keepdims=True)
    total = np.exp(shifted).sum(axis=axis, keepdims=True)
    return [shifted - np.log(total) if log else np.exp(shifted) / total]


def _reduce(inputs: Arrays, attributes: dict[str, Any], function: Callable[..., Any]) -> Arrays:
    x = np.asarray(inputs[0])
    axes = _axes(inputs, attributes)
    keep = bool(attributes.get("keepdims", 1))
    axis = None if not axes else tuple(a % x.ndim for a in axes)
    return [function(x, axis=axis, keepdims=keep).astype(x.dtype, copy=False)]


def _cast(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    # TensorProto data types this code meets: FLOAT, INT32, INT64, DOUBLE, BOOL.
    dtypes = {1: np.float32, 6: np.int32, 7: np.int64, 11: np.float64, 9: np.bool_}
    to = int(attributes["to"])
    if to not in dtypes:
        raise ValueError(f"Cast to data type {to}; supported: FLOAT, INT32, INT64, DOUBLE, BOOL")
    return [np.asarray(inputs[0]).astype(dtypes[to])]


def _constant_of_shape(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    shape = [int(s) for s in np.asarray(inputs[0]).reshape(-1)]
    value = attributes.get("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return [np.full(shape, fill[0], fill.dtype)]


def _flatten(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    x = np.asarray(inputs[0])
    axis = int(attributes.get("axis", 1)) % (x.ndim + 1) if x.ndim else 0
    return [x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)]


def _hard_sigmoid(inputs: Arrays, attributes: dict[str, Any]) -> Arrays:
    x = np.asarray(inputs[0])
    alpha, beta = float(attributes.get("alpha", 0.2)), float(attributes.get("beta", 0.5))
    return [np.clip(alpha * x + beta, 0, 1).astype(x.dtype, copy=False)]


def _elementwise(function: Callable[..., Any]) -> Callable[[Arrays, dict[str, Any]], Arrays]:
    return lambda inputs, attributes: [function(*[np.asarray(a) for a in inputs])]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-x))).astype(x.dtype, copy=False)


GLUE: dict[str, Callable[[Arrays, dict[str, Any]], Arrays]] = {
    "Identity": lambda inputs, attributes: [inputs[0]],
    "Dropout": lambda inputs, attributes: [inputs[0], np.ones(np.shape(inputs[0]), np.bool_)],
    "Transpose": lambda inputs, attributes: [np.transpose(np.asarray(inputs[0]), attributes.get("perm"))],
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Slice": _slice,
    "Gather": _gather,
    "GatherElements": _gather_elements,
    "Concat": lambda inputs, attributes: [np.concatenate([np.asarray(a) for a in inputs], axis=int(attributes["axis"]))],
    "Shape": lambda inputs, attributes: [np.asarray(np.shape(inputs[0]), np.int64)],
    "ConstantOfShape": _constant_of_shape,
    "Expand": lambda inputs, attributes: [
        np.asarray(inputs[0]) * np.ones([int(s) for s in np.asarray(inputs[1]).reshape(-1)], np.asarray(inputs[0]).dtype)
    ],
    "Cast": _cast,
    "Range": _elementwise(lambda start, limit, delta: np.arange(start, limit, delta, dtype=np.result_type(start))),
    "MatMul": _elementwise(np.matmul),
    "Gemm": _gemm,
    "Add": _elementwise(np.add),
    "Sub": _elementwise(np.subtract),
    "Mul": _elementwise(np.multiply),
    "Div": _elementwise(lambda a, b: a // b if a.dtype.kind in "iu" else a / b),
    "Less": _elementwise(np.less),
    "Greater": _elementwise(np.greater),
    "Equal": _elementwise(np.equal),
    "Not": _elementwise(np.logical_not),
    "Where": _elementwise(np.where),
    "Relu": _elementwise(lambda x: np.maximum(x, 0)),
    "Tanh": _elementwise(np.tanh),
    "Sigmoid": _elementwise(_sigmoid),
    "HardSigmoid": _hard_sigmoid,
    "Softsign": _elementwise(lambda x: x / (1 + np.abs(x))),
    "Softmax": _softmax,
    "LogSoftmax": lambda inputs, attributes: _softmax(inputs, attributes, log=True),
    "ReduceMean": lambda inputs, attributes: _reduce(inputs, attributes, np.mean),
    "ReduceSum": lambda inputs, attributes: _reduce(inputs, attributes, np.sum),
    "ReduceMax": lambda inputs, attributes: _reduce(inputs, attributes, np.max),
}
