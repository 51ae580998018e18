"""An ``OnnxModel``'s graph as an lstmcore ``Sequential``, where its nodes form one chain of
lstmcore layers: ``OnnxModel.to_sequential()``.

Each value of the graph is followed symbolically: a constant; a value computed from the
input's shape alone (what PyTorch's exporter builds zero initial states from); such a
zero state; the lengths input; or the model's running tensor, with its layout ((B, T, F),
(T, B, F), a recurrent node's Y or Y_h, (B, F)) and the lstmcore layers that made it.
Every node must take the running tensor to the next step of that chain, or work on
constants and shapes; anything else is an OnnxImportError naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lstmcore.nn import Dense, Embedding, LastStep, MeanPool, Sequential

_ACTIVATIONS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softsign": "softsign", "Softmax": "softmax"}
_SHAPE_OPS = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Reshape", "Add", "Sub", "Mul", "Div"}


class _Shape:
    """A value computed from the input's shape alone."""


class _Zeros:
    """Zeros of a shape computed from the input's (an initial state)."""


class _Lengths:
    """The graph's lengths input, or a cast of it."""


@dataclass(frozen=True)
class _Flow:
    """The running tensor: its layout, features, the layers so far, and for a recurrent
    node's output the layer and its direction count."""

    layout: str  # "ids", "BTF", "TBF", "TDBH", "BTDH", "TBDH", "DBH", "BDH", "BF"
    features: int
    layers: tuple[Any, ...]
    recurrent: Any = None

    def then(self, layer: Any, layout: str, features: int) -> _Flow:
        return _Flow(layout, features, self.layers + (layer,))


def to_sequential(model: Any, error: type[Exception]) -> Sequential:
    values: dict[str, Any] = dict(model._constants)
    data_inputs = [name for name in model.input_names if name != model.lengths_input]
    if len(data_inputs) != 1:
        raise error(f"a Sequential takes one input; this graph takes {data_inputs}")
    values[data_inputs[0]] = _Flow("input", 0, ())
    if model.lengths_input:
        values[model.lengths_input] = _Lengths()
    for step in model._steps:
        inputs = [values.get(name) if name else None for name in step.inputs]
        try:
            outputs = _map(step, inputs, error)
        except (IndexError, KeyError, TypeError, ValueError) as failure:
            if isinstance(failure, error):
                raise
            raise error(f"{step.where} does not map onto an lstmcore layer ({failure})") from failure
        for name, value in zip(step.outputs, outputs):
            if name:
                values[name] = value
    result = values[model.output_names[0]]
    if not isinstance(result, _Flow) or result.layout not in ("BTF", "BF"):
        found = result.layout if isinstance(result, _Flow) else type(result).__name__
        raise error(
            f"the graph's first output is not a (batch, time, features) or (batch, features) result of its input "
            f"(found {found}); a Sequential gives one of those"
        )
    return Sequential(list(result.layers))


def _is_shape_like(value: Any) -> bool:
    return isinstance(value, (np.ndarray, np.generic, _Shape, _Zeros)) or value is None


def _map(step: Any, inputs: list[Any], error: type[Exception]) -> list[Any]:
    op, attributes = step.op, step.attributes
    flows = [v for v in inputs if isinstance(v, _Flow)]
    if op in ("Identity", "Dropout"):
        return [inputs[0], None]
    if op == "Cast" and isinstance(inputs[0], _Lengths):
        return [inputs[0]]
    if op == "Shape":
        return [_Shape()]
    if op == "ConstantOfShape":
        value = attributes.get("value")
        if value is not None and np.any(np.asarray(value) != 0):
            raise error(f"{step.where}: a ConstantOfShape of {value!r}; only zeros (initial states) map")
        return [_Zeros()]
    if op in ("LSTM", "GRU", "RNN"):
        return _recurrent(step, inputs, error)
    if not flows:
        if all(_is_shape_like(v) for v in inputs) and op in _SHAPE_OPS | {"Expand"}:
            return [_Zeros() if any(isinstance(v, _Zeros) for v in inputs) else _Shape()]
        raise error(f"{step.where}: {op} on values other than the model's data, which does not map")
    x = flows[0]
    if x.layout == "input":  # the graph's input: ids when an embedding gathers from it
        x = _Flow("ids" if op == "Gather" and inputs[1] is x else "BTF", 0, ())
        inputs = [x if isinstance(v, _Flow) else v for v in inputs]
    handler = _HANDLERS.get(op)
    if handler is None:
        raise error(f"{step.where}: operator {op} on the model's data has no lstmcore layer")
    return handler(step, inputs, x, error)


def _recurrent(step: Any, inputs: list[Any], error: type[Exception]) -> list[Any]:
    layer = step.layer
    if layer is None:
        raise error(f"{step.where}: its weights are graph inputs; a Sequential holds its weights")
    x = inputs[0]
    if not isinstance(x, _Flow):
        raise error(f"{step.where}: its X is not the model's data")
    if x.layout == "input":
        x = _Flow("BTF", layer.input_size, ())
    wanted = "BTF" if layer.batch_first else "TBF"
    if x.layout != wanted:
        raise error(f"{step.where} reads X as {wanted} but gets {x.layout}; a Sequential's input is (batch, time, features)")
    for position, name in ((4, "sequence_lens"), (5, "initial_h"), (6, "initial_c")):
        value = inputs[position] if len(inputs) > position else None
        if name == "sequence_lens" and value is not None and not isinstance(value, _Lengths):
            raise error(f"{step.where}: its sequence_lens is not the graph's lengths input")
        zero = value is None or isinstance(value, _Zeros) or (isinstance(value, np.ndarray) and not value.any())
        if name != "sequence_lens" and not zero:
            raise error(f"{step.where}: a nonzero {name}; a Sequential starts its layers from zeros")
    config = {**layer.get_config(), "batch_first": True}
    rebuilt = type(layer)(**config)
    for name, value in layer.params.items():
        rebuilt.params[name][...] = value
    flow = _Flow("TDBH" if not layer.batch_first else "BTDH", layer.hidden_size, x.layers + (rebuilt,), rebuilt)
    return [flow, replace(flow, layout="DBH"), None]


def _transpose(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    perm = list(step.attributes.get("perm", []))
    moves = {
        ("BTF", (1, 0, 2)): "TBF",
        ("TBF", (1, 0, 2)): "BTF",
        ("TDBH", (0, 2, 1, 3)): "TBDH",
        ("DBH", (1, 0, 2)): "BDH",
    }
    layout = moves.get((x.layout, tuple(perm)))
    if layout is None:
        raise error(f"{step.where}: Transpose {perm} of a {x.layout} tensor does not map")
    return [replace(x, layout=layout)]


def _final_step(x: _Flow) -> _Flow:
    """Y_h of a recurrent node as (B, D*H): each direction's final output, a LastStep."""
    layer = x.recurrent
    last = LastStep(bidirectional=layer.bidirectional, reverse=layer.reverse and not layer.bidirectional)
    return _Flow("BF", layer.num_directions * layer.hidden_size, x.layers + (last,))


def _reshape(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    shape = [int(s) for s in np.asarray(inputs[1]).reshape(-1)]
    directions = x.recurrent.num_directions if x.recurrent is not None else 1
    width = directions * x.features
    if x.layout in ("TBDH", "BTDH") and shape[:2] == [0, 0] and shape[2] in (-1, width):
        return [_Flow("TBF" if x.layout == "TBDH" else "BTF", width, x.layers)]
    if x.layout == "BDH" and len(shape) == 2 and shape[1] in (-1, width):
        return [_final_step(x)]
    raise error(f"{step.where}: Reshape to {shape} of a {x.layout} tensor does not map")


def _squeeze(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    axes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else step.attributes.get("axes")
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    one_direction = x.recurrent is not None and x.recurrent.num_directions == 1
    if x.layout == "TDBH" and axes == [1] and one_direction:
        return [_Flow("TBF", x.features, x.layers)]
    if x.layout == "BTDH" and axes == [2] and one_direction:
        return [_Flow("BTF", x.features, x.layers)]
    if x.layout == "DBH" and axes == [0] and one_direction:
        return [_final_step(x)]
    raise error(f"{step.where}: Squeeze {axes} of a {x.layout} tensor does not map")


def _gather(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    data, index = inputs[0], inputs[1]
    axis = int(step.attributes.get("axis", 0))
    if isinstance(data, np.ndarray) and x.layout == "ids" and axis == 0 and data.ndim == 2:
        embedding = Embedding(data.shape[0], data.shape[1])
        embedding.params["weight"][...] = data
        return [x.then(embedding, "BTF", data.shape[1])]
    index_value = np.asarray(index) if isinstance(index, (np.ndarray, np.generic)) else np.asarray([])
    scalar = index_value.ndim == 0
    time_axis = {"BTF": 1, "TBF": 0}.get(x.layout)
    if scalar and time_axis is not None and axis == time_axis and int(index_value) in (-1, 0):
        # step 0 is the last step of a reverse direction
        return [x.then(LastStep(reverse=int(index_value) == 0), "BF", x.features)]
    if scalar and x.layout == "DBH" and axis == 0 and x.recurrent.num_directions == 1 and int(index_value) in (0, -1):
        return [_final_step(x)]
    raise error(f"{step.where}: Gather of index {index_value} on axis {axis} of a {x.layout} tensor does not map")


def _slice_last(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    starts, ends = np.asarray(inputs[1]).reshape(-1), np.asarray(inputs[2]).reshape(-1)
    axes = np.asarray(inputs[3]).reshape(-1) if len(inputs) > 3 and inputs[3] is not None else np.arange(len(starts))
    time_axis = {"BTF": 1, "TBF": 0}.get(x.layout)
    if list(axes) == [time_axis] and int(starts[0]) == -1 and int(ends[0]) >= 2**31 - 1:
        return [replace(x, layout=x.layout + "-last")]
    raise error(f"{step.where}: Slice {starts}:{ends} on axes {axes} of a {x.layout} tensor does not map")


def _squeeze_or_last(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    if x.layout.endswith("-last"):
        return [_Flow("BF", x.features, x.layers + (LastStep(),))]
    return _squeeze(step, inputs, x, error)


def _dense(x: _Flow, weight: np.ndarray, bias: np.ndarray | None) -> _Flow:
    """A Dense of weight (out, in) after x."""
    dense = Dense(weight.shape[1], weight.shape[0])
    dense.params["weight"][...] = weight
    dense.params["bias"][...] = 0 if bias is None else np.broadcast_to(bias, (weight.shape[0],))
    return x.then(dense, x.layout, weight.shape[0])


def _matmul(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    weight = inputs[1]
    if not isinstance(weight, np.ndarray) or weight.ndim != 2 or x.layout not in ("BTF", "TBF", "BF"):
        raise error(f"{step.where}: MatMul of a {x.layout} tensor by something other than a constant matrix")
    return [_dense(x, np.asarray(weight, np.float32).T, None)]


def _gemm(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    a = step.attributes
    if x.layout != "BF" or a.get("transA", 0) or float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
        raise error(f"{step.where}: a Gemm lstmcore's Dense does not express")
    weight = np.asarray(inputs[1], np.float32)
    weight = weight if a.get("transB", 0) else weight.T
    bias = None if len(inputs) < 3 or inputs[2] is None else np.asarray(inputs[2], np.float32)
    return [_dense(x, weight, bias)]


def _add(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    other = inputs[1] if inputs[0] is x else inputs[0]
    last = x.layers[-1] if x.layers else None
    bias_like = isinstance(other, np.ndarray) and other.ndim <= 1
    if isinstance(last, Dense) and last.activation == "linear" and bias_like and other.size in (1, last.out_features):
        last.params["bias"][...] += np.asarray(other, np.float32).reshape(-1)
        return [x]
    raise error(f"{step.where}: an Add that is not a Dense's bias")


def _activation(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    name = _ACTIVATIONS.get(step.op) or "hard_sigmoid"
    if step.op == "Softmax" and int(step.attributes.get("axis", -1)) not in (-1, 1 if x.layout == "BF" else 2):
        raise error(f"{step.where}: a Softmax over another axis than the features")
    activation: Any = name
    if step.op == "HardSigmoid":
        a = step.attributes
        activation = ("hard_sigmoid", float(a.get("alpha", 0.2)), float(a.get("beta", 0.5)))
    last = x.layers[-1] if x.layers else None
    if isinstance(last, Dense) and last.activation == "linear":
        last.activation = activation
        return [x]
    # An activation after another (Relu then Softmax): an identity Dense carries it, exactly.
    identity = _dense(x, np.eye(x.features, dtype=np.float32), None)
    identity.layers[-1].activation = activation
    return [identity]


def _mean(step: Any, inputs: list[Any], x: _Flow, error: type[Exception]) -> list[Any]:
    axes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else step.attributes.get("axes")
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    time_axis = {"BTF": 1, "TBF": 0}.get(x.layout)
    if axes == [time_axis] and not step.attributes.get("keepdims", 1):
        return [x.then(MeanPool(), "BF", x.features)]
    raise error(f"{step.where}: a ReduceMean that is not a mean over time")


_HANDLERS = {
    "Transpose": _transpose,
    "Reshape": _reshape,
    "Squeeze": _squeeze_or_last,
    "Gather": _gather,
    "Slice": _slice_last,
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Add": _add,
    "Relu": _activation,
    "Tanh": _activation,
    "Sigmoid": _activation,
    "Softsign": _activation,
    "Softmax": _activation,
    "HardSigmoid": _activation,
    "ReduceMean": _mean,
}
