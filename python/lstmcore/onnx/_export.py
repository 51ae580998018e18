"""``lstmcore.onnx.export``: an lstmcore Sequential model, or one LSTM, GRU or RNN layer,
as an ONNX graph (float32) that onnx.checker accepts and ONNX Runtime runs."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lstmcore._util.atomic import write_atomically
from lstmcore.nn import Dense, Dropout, Embedding, LastStep, MeanPool, Sequential
from lstmcore.onnx._graph import GraphBuilder
from lstmcore.onnx._onnx_module import require_onnx
from lstmcore.onnx._recurrent_node import direction_weights, node_attributes, operator_of
from lstmcore.rnn import GRU, LSTM, RNN

# From opset 14 on the recurrent operators have every attribute written here (layout
# came in 14); an opset ONNX Runtime does not know is its error at load time.
MIN_OPSET = 14
DEFAULT_OPSET = 17


def export(
    model: Any,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    lengths: bool = False,
    softmax: bool = False,
    initial_state: bool = False,
) -> None:
    """Write ``model`` to ``path`` as an ONNX model (written atomically).

    model: a ``Sequential`` of LSTM, GRU, RNN, Dense, Embedding, Dropout, LastStep and
    MeanPool layers, or one LSTM, GRU or RNN layer.

    - A Sequential's graph takes ``x``, (batch, time, features) float32, or (batch, time)
      int64 ids when it starts with an Embedding, and gives ``y``, what ``model.predict``
      gives. ``lengths=True`` adds a second input ``lengths``, (batch,) int64, each
      sequence's valid steps, as ``predict(x, lengths=...)`` takes them.
      ``softmax=True`` ends the graph with a softmax over the last axis (a classifier's
      probabilities from its logits).
    - A layer's graph takes ``x`` in the layer's layout (``batch_first`` or not), and with
      ``initial_state=True`` also ``h0`` (and ``c0``), (num_layers * D, batch, H); it gives
      ``y``, ``h_n`` (and ``c_n``), as calling the layer does. ``lengths`` as above.

    Batch and time are dynamic axes. The recurrent nodes run time-major (ONNX Runtime
    accepts no other layout) between Transposes. Dropout is left out (inference). The
    weights are written in float32. Options with no ONNX operator (``proj_size``,
    ``layer_norm``, ``zoneout``) are a ValueError naming them; so is anything that is not
    one of the layers above.
    """
    onnx = require_onnx()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"expected opset as an int >= {MIN_OPSET}, got {opset!r}")
    for name, flag in (("lengths", lengths), ("softmax", softmax), ("initial_state", initial_state)):
        if not isinstance(flag, bool):
            raise TypeError(f"expected {name} as a bool, got {type(flag).__name__}")
    graph = GraphBuilder(onnx, opset)
    if isinstance(model, Sequential):
        if initial_state:
            raise ValueError("initial_state=True is for a single layer; a Sequential starts its layers from zero")
        inputs, outputs = _sequential_graph(graph, model, lengths, softmax)
    elif isinstance(model, (LSTM, GRU, RNN)):
        if softmax:
            raise ValueError("softmax=True is for a Sequential's output, not a recurrent layer's")
        inputs, outputs = _layer_graph(graph, model, lengths, initial_state)
    else:
        raise TypeError(f"expected an lstmcore Sequential or an LSTM, GRU or RNN layer, got {type(model).__name__}")
    onnx_graph = onnx.helper.make_graph(graph.nodes, "lstmcore", inputs, outputs, graph.initializers)
    onnx_model = onnx.helper.make_model(
        onnx_graph, opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="lstmcore"
    )
    # The IR version of the opset, not the newest onnx knows: an older runtime reads it.
    onnx_model.ir_version = min(onnx_model.ir_version, _ir_version(onnx, opset))
    onnx.checker.check_model(onnx_model, full_check=True)
    data = onnx_model.SerializeToString()
    write_atomically(path, lambda file: file.write(data))


def _ir_version(onnx: Any, opset: int) -> int:
    for entry in onnx.helper.VERSION_TABLE:
        if entry[2] == opset:
            return int(entry[1])
    return int(onnx.IR_VERSION)


def _float_input(onnx: Any, name: str, shape: list[Any]) -> Any:
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def _lengths_input(onnx: Any) -> Any:
    return onnx.helper.make_tensor_value_info("lengths", onnx.TensorProto.INT64, ["batch"])


class _Sequence:
    """A tensor in the graph, its layout ("batch" (B, T, F), "time" (T, B, F) or "flat"
    (B, F)) and its features F (0: ids, (B, T))."""

    def __init__(self, name: str, layout: str, features: int = 0) -> None:
        self.name, self.layout, self.features = name, layout, features


def _time_major(graph: GraphBuilder, x: _Sequence) -> str:
    if x.layout == "time":
        return x.name
    return graph.one("Transpose", [x.name], "time_major", perm=[1, 0, 2])


def _batch_first(graph: GraphBuilder, x: _Sequence) -> str:
    if x.layout != "time":
        return x.name
    return graph.one("Transpose", [x.name], "batch_first", perm=[1, 0, 2])


def _recurrent_stack(
    graph: GraphBuilder, layer: Any, x: str, sequence_lens: str, initial: list[str]
) -> tuple[str, list[list[str]]]:
    """The layer's nodes on time-major x (T, B, I); y (T, B, D*H) time-major and, per state
    kind, the final states of each stacked layer (D, B, H)."""
    operator = operator_of(layer)
    attributes = node_attributes(layer, operator)
    directions = layer.num_directions
    state_kinds = 2 if operator == "LSTM" else 1
    finals: list[list[str]] = [[] for _ in range(state_kinds)]
    for index in range(layer.num_layers):
        weights = direction_weights(layer, operator, index)
        names = {key: graph.constant(value, f"{key}_{operator.lower()}{index}") for key, value in weights.items()}
        starts = []
        for state in initial:  # (L*D, B, H) -> this layer's (D, B, H)
            begin, end = graph.ints([index * directions]), graph.ints([(index + 1) * directions])
            starts.append(graph.one("Slice", [state, begin, end, graph.ints([0])], f"initial_{index}"))
        inputs = [x, names["W"], names["R"], names.get("B", ""), sequence_lens]
        if operator == "LSTM":
            inputs += [starts[0] if starts else "", starts[1] if starts else "", names.get("P", "")]
        elif starts:
            inputs.append(starts[0])
        while inputs and inputs[-1] == "":
            inputs.pop()
        outputs = graph.node(operator, inputs, f"{operator.lower()}{index}", 1 + state_kinds, **attributes)
        for kind in range(state_kinds):
            finals[kind].append(outputs[1 + kind])
        # Y (T, D, B, H) -> (T, B, D*H): the next layer's input and the layer's output.
        swapped = graph.one("Transpose", [outputs[0]], f"y{index}_swapped", perm=[0, 2, 1, 3])
        x = graph.one("Reshape", [swapped, graph.ints([0, 0, -1])], f"y{index}")
    return x, finals


def _layer_graph(graph: GraphBuilder, layer: Any, lengths: bool, initial_state: bool) -> tuple[list[Any], list[Any]]:
    onnx = graph.onnx
    operator = operator_of(layer)
    steps_axes = ["batch", "time"] if layer.batch_first else ["time", "batch"]
    inputs = [_float_input(onnx, "x", steps_axes + [layer.input_size])]
    sequence_lens = ""
    if lengths:
        inputs.append(_lengths_input(onnx))
        sequence_lens = graph.one("Cast", ["lengths"], "sequence_lens", to=onnx.TensorProto.INT32)
    state_names = ["h0", "c0"] if operator == "LSTM" else ["h0"]
    state_sizes = [layer.output_size, layer.hidden_size]
    states = layer.num_layers * layer.num_directions
    if initial_state:
        inputs += [_float_input(onnx, name, [states, "batch", size]) for name, size in zip(state_names, state_sizes)]
    x = _time_major(graph, _Sequence("x", "batch" if layer.batch_first else "time"))
    y, finals = _recurrent_stack(graph, layer, x, sequence_lens, state_names if initial_state else [])
    output_y = _batch_first(graph, _Sequence(y, "time")) if layer.batch_first else y
    graph.nodes.append(onnx.helper.make_node("Identity", [output_y], ["y"], name=graph.name("y_node")))
    outputs = [_float_input(onnx, "y", steps_axes + [layer.num_directions * layer.output_size])]
    for name, parts, size in zip(["h_n", "c_n"], finals, state_sizes):
        joined = parts[0] if len(parts) == 1 else graph.one("Concat", parts, f"{name}_joined", axis=0)
        graph.nodes.append(onnx.helper.make_node("Identity", [joined], [name], name=graph.name(f"{name}_node")))
        outputs.append(_float_input(onnx, name, [states, "batch", size]))
    return inputs, outputs


def _sequential_graph(graph: GraphBuilder, model: Sequential, lengths: bool, softmax: bool) -> tuple[list[Any], list[Any]]:
    onnx = graph.onnx
    layers = list(model.layers)
    if not layers:
        raise ValueError("expected a Sequential with at least one layer, got an empty one")
    first = layers[0]
    if isinstance(first, Embedding):
        inputs = [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.INT64, ["batch", "time"])]
    else:
        inputs = [_float_input(onnx, "x", ["batch", "time", _input_features(first)])]
    lengths_name = sequence_lens = ""
    if lengths:
        inputs.append(_lengths_input(onnx))
        lengths_name = "lengths"
        sequence_lens = graph.one("Cast", ["lengths"], "sequence_lens", to=onnx.TensorProto.INT32)
    x = _Sequence("x", "batch", 0 if isinstance(first, Embedding) else _input_features(first))
    for index, layer in enumerate(layers):
        x = _layer_step(graph, index, layer, x, lengths_name, sequence_lens)
    result = _batch_first(graph, x)
    if softmax:
        result = graph.one("Softmax", [result], "probabilities", axis=-1)
    graph.nodes.append(onnx.helper.make_node("Identity", [result], ["y"], name=graph.name("y_node")))
    shape = ["batch", x.features] if x.layout == "flat" else ["batch", "time", x.features]
    return inputs, [_float_input(onnx, "y", shape)]


def _input_features(layer: Any) -> int:
    if isinstance(layer, (LSTM, GRU, RNN)):
        return int(layer.input_size)
    if isinstance(layer, Dense):
        return int(layer.in_features)
    raise ValueError(
        f"expected the first layer to be an Embedding, Dense, LSTM, GRU or RNN (it fixes the input's features), "
        f"got {type(layer).__name__}"
    )


def _layer_step(graph: GraphBuilder, index: int, layer: Any, x: _Sequence, lengths: str, sequence_lens: str) -> _Sequence:
    """One Sequential layer's nodes on x; the result and its layout."""
    if getattr(layer, "mask_zero", False) or type(layer).__name__ in ("Masking", "RepeatLast"):
        what = "Embedding(mask_zero=True)" if isinstance(layer, Embedding) else type(layer).__name__
        raise ValueError(
            f"layer {index} is {what}, which reads lengths off the input or repeats padded steps; ONNX export "
            "does not express it: export with lengths=True a model without it, and give the graph the lengths"
        )
    if isinstance(layer, Embedding):
        weight = graph.constant(np.asarray(layer.params["weight"], np.float32), f"embedding{index}_weight")
        gathered = graph.one("Gather", [weight, x.name], f"embedding{index}", axis=0)
        return _Sequence(gathered, "batch", layer.embedding_dim)
    if isinstance(layer, Dropout):
        return x
    if isinstance(layer, Dense):
        weight = graph.constant(np.asarray(layer.params["weight"], np.float32).T, f"dense{index}_weight")
        bias = graph.constant(np.asarray(layer.params["bias"], np.float32), f"dense{index}_bias")
        product = graph.one("MatMul", [x.name, weight], f"dense{index}_product")
        affine = graph.one("Add", [product, bias], f"dense{index}_affine")
        return _Sequence(_activated(graph, affine, layer.activation, index), x.layout, layer.out_features)
    if isinstance(layer, (LSTM, GRU, RNN)):
        if x.layout == "flat":
            raise ValueError(f"layer {index} ({type(layer).__name__}) needs sequences, and a layer before it reduced them")
        y, _ = _recurrent_stack(graph, layer, _time_major(graph, x), sequence_lens, [])
        return _Sequence(y, "time", layer.num_directions * layer.output_size)
    if isinstance(layer, (LastStep, MeanPool)):
        if x.layout == "flat":
            raise ValueError(f"layer {index} ({type(layer).__name__}) needs sequences, and a layer before it reduced them")
        if isinstance(layer, LastStep):
            return _Sequence(_last_step(graph, index, x, lengths, layer), "flat", x.features)
        return _Sequence(_mean_over_steps(graph, index, x, lengths), "flat", x.features)
    supported = "LSTM, GRU, RNN, Dense, Embedding, Dropout, LastStep and MeanPool"
    raise ValueError(f"layer {index} is a {type(layer).__name__}; ONNX export supports {supported}")


def _time_axis(x: _Sequence) -> int:
    return 0 if x.layout == "time" else 1


def _activated(graph: GraphBuilder, x: str, activation: Any, index: int) -> str:
    """A Dense's activation on its affine output."""
    name = activation if isinstance(activation, str) else activation[0]
    if name == "linear":
        return x
    if name == "softmax":
        return graph.one("Softmax", [x], f"dense{index}", axis=-1)
    if name == "hard_sigmoid":
        alpha, beta = (0.2, 0.5) if isinstance(activation, str) else activation[1:]
        return graph.one("HardSigmoid", [x], f"dense{index}", alpha=float(alpha), beta=float(beta))
    operators = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softsign": "Softsign"}
    return graph.one(operators[name], [x], f"dense{index}")


def _last_step(graph: GraphBuilder, index: int, x: _Sequence, lengths: str, layer: Any) -> str:
    """(B, F): each sequence's last valid step (T - 1, or lengths - 1); with
    ``reverse``, step 0 (a reverse direction's last); with ``bidirectional``, the last
    valid step for the first half of the features and step 0 for the second."""
    axis = _time_axis(x)
    if not (layer.reverse or layer.bidirectional):
        return _last_valid_step(graph, index, x, lengths)
    first = graph.one("Gather", [x.name, graph.constant(np.int64(0), "first")], f"first{index}", axis=axis)
    if layer.reverse:
        return first
    last = _last_valid_step(graph, index, x, lengths)
    half = x.features // 2
    zero, middle, end = graph.ints([0]), graph.ints([half]), graph.ints([x.features])
    ones = graph.ints([1])
    forward = graph.one("Slice", [last, zero, middle, ones], f"last{index}_forward")
    backward = graph.one("Slice", [first, middle, end, ones], f"last{index}_backward")
    return graph.one("Concat", [forward, backward], f"last{index}", axis=1)


def _last_valid_step(graph: GraphBuilder, index: int, x: _Sequence, lengths: str) -> str:
    axis = _time_axis(x)
    if not lengths:
        # A scalar index: Gather drops the time axis.
        return graph.one("Gather", [x.name, graph.constant(np.int64(-1), "last")], f"last{index}", axis=axis)
    last = graph.one("Sub", [lengths, graph.constant(np.int64(1), "one")], f"last{index}_index")  # (B,)
    # GatherElements takes an index of x's rank: (1, B, 1) time-major or (B, 1, 1), then
    # broadcast over the features.
    shape = [1, -1, 1] if axis == 0 else [-1, 1, 1]
    index_column = graph.one("Reshape", [last, graph.ints(shape)], f"last{index}_column")
    features = graph.one("Shape", [x.name], f"last{index}_shape")
    spread = graph.one("Expand", [index_column, _with_time_one(graph, features, axis, index)], f"last{index}_spread")
    picked = graph.one("GatherElements", [x.name, spread], f"last{index}_picked", axis=axis)
    return graph.squeeze(picked, [axis], f"last{index}")


def _with_time_one(graph: GraphBuilder, shape: str, axis: int, index: int) -> str:
    """x's shape with its time axis set to 1: what GatherElements' index must broadcast to."""
    ones = graph.ints([1])
    parts = []
    for position in range(3):
        if position == axis:
            parts.append(ones)
        else:
            start, end = graph.ints([position]), graph.ints([position + 1])
            parts.append(graph.one("Slice", [shape, start, end], f"last{index}_dim"))
    return graph.one("Concat", parts, f"last{index}_target", axis=0)


def _mean_over_steps(graph: GraphBuilder, index: int, x: _Sequence, lengths: str) -> str:
    """(B, F): the mean over each sequence's valid steps."""
    axis = _time_axis(x)
    if not lengths:
        return graph.reduce("ReduceMean", x.name, [axis], f"mean{index}")
    onnx = graph.onnx
    shape = graph.one("Shape", [x.name], f"mean{index}_shape")
    steps = graph.one("Gather", [shape, graph.constant(np.int64(axis), "axis")], f"mean{index}_steps", axis=0)
    times = graph.one(
        "Range", [graph.constant(np.int64(0), "zero"), steps, graph.constant(np.int64(1), "one")], f"mean{index}_times"
    )
    # valid[t, b] (time-major) or [b, t]: t < lengths[b]
    if axis == 0:
        valid = graph.one(
            "Less",
            [graph.unsqueeze(times, [1], f"mean{index}_t"), graph.unsqueeze(lengths, [0], f"mean{index}_l")],
            f"mean{index}_valid",
        )
    else:
        valid = graph.one(
            "Less",
            [graph.unsqueeze(times, [0], f"mean{index}_t"), graph.unsqueeze(lengths, [1], f"mean{index}_l")],
            f"mean{index}_valid",
        )
    weights = graph.one("Cast", [valid], f"mean{index}_mask", to=onnx.TensorProto.FLOAT)
    masked = graph.one("Mul", [x.name, graph.unsqueeze(weights, [2], f"mean{index}_mask3")], f"mean{index}_masked")
    total = graph.reduce("ReduceSum", masked, [axis], f"mean{index}_sum")
    counts = graph.one(
        "Cast", [graph.unsqueeze(lengths, [1], f"mean{index}_counts")], f"mean{index}_count", to=onnx.TensorProto.FLOAT
    )
    return graph.one("Div", [total, counts], f"mean{index}")
