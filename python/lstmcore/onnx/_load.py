"""``lstmcore.onnx.load``: an ONNX graph of LSTM, GRU and RNN nodes and the glue around
them, as an ``OnnxModel`` whose recurrent nodes run as lstmcore layers.

The file is read by onnx's protobuf parser, which executes nothing; external data files
are refused (a model file names no other file lstmcore would open). Every node is checked
at load: its operator must be a recurrent one or a glue operator of ``_glue.GLUE``, in the
default domain, and its inputs must come from earlier nodes, initializers or graph inputs.
Constant parts of the graph are computed once at load, so a recurrent node whose weights
are initializers (or computed from them) becomes an lstmcore layer there.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from lstmcore.onnx._glue import GLUE
from lstmcore.onnx._onnx_module import require_onnx
from lstmcore.onnx._recurrent_import import OPERATORS, NodeError, layer_from_node
from lstmcore.onnx._to_sequential import to_sequential

# The recurrent operators' inputs, by position.
_RECURRENT_INPUTS = {
    "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
    "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
    "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
}
_WEIGHT_INPUTS = ("W", "R", "B", "P")


class OnnxImportError(ValueError):
    """A file or graph that lstmcore.onnx.load cannot read, naming the node or part."""


def load(path: str | os.PathLike[str]) -> OnnxModel:
    """Read an ONNX model; an ``OnnxModel`` that computes the graph's outputs.

    Recurrent nodes (LSTM, GRU, RNN: every attribute of theirs that lstmcore expresses)
    run as lstmcore layers, one stacked layer each; the glue around them (Transpose,
    Squeeze, Unsqueeze, Reshape, Slice, Gather, Gemm, MatMul, Add, activations, Softmax,
    Shape, Concat, ConstantOfShape, Cast, ...) in NumPy. Anything else is an
    ``OnnxImportError`` naming the operator and its node.
    """
    onnx = require_onnx()
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except OSError:
        raise
    except Exception as error:  # protobuf's DecodeError and its kin
        raise OnnxImportError(f"{os.fspath(path)!r} is not an ONNX model: {error}") from error
    # Protobuf reads an empty or foreign file as an empty message; a model has both.
    if model.ir_version <= 0 or not model.opset_import:
        raise OnnxImportError(f"{os.fspath(path)!r} is not an ONNX model: it names no IR version or opset")
    return OnnxModel(onnx, model)


def _array(onnx: Any, tensor: Any, where: str) -> np.ndarray:
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raise OnnxImportError(f"{where} keeps its data in an external file; lstmcore reads self-contained models only")
    try:
        return np.asarray(onnx.numpy_helper.to_array(tensor))
    except Exception as error:
        raise OnnxImportError(f"{where}: its data does not match its declared type and shape ({error})") from error


def _attributes(onnx: Any, node: Any, where: str) -> dict[str, Any]:
    found = {}
    for attribute in node.attribute:
        if attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise OnnxImportError(f"{where}: a subgraph attribute {attribute.name!r}; lstmcore runs no subgraphs")
        value = onnx.helper.get_attribute_value(attribute)
        if attribute.type == onnx.AttributeProto.TENSOR:
            value = _array(onnx, value, f"{where} attribute {attribute.name!r}")
        found[attribute.name] = value
    return found


def _constant(attributes: dict[str, Any], where: str) -> np.ndarray:
    """The value of a Constant node."""
    for name, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32)):
        if name in attributes:
            return np.asarray(attributes[name], dtype)
    for name in ("value_int", "value_ints"):
        if name in attributes:
            return np.asarray(attributes[name], np.int64)
    raise OnnxImportError(f"{where}: a Constant lstmcore cannot read ({sorted(attributes)})")


class _Step:
    """One node to run: its operator, inputs, outputs, attributes and, for a recurrent node
    whose weights were constant at load, its lstmcore layer."""

    def __init__(self, node: Any, attributes: dict[str, Any], where: str) -> None:
        self.op = node.op_type
        self.node = node
        self.inputs = list(node.input)
        self.outputs = list(node.output)
        self.attributes = attributes
        self.where = where
        self.layer: Any = None


class OnnxModel:
    """An ONNX graph read by ``lstmcore.onnx.load``.

    ``predict(x, lengths=None)`` gives the graph's first output for x laid out as the
    graph's first input (and, when a recurrent node's ``sequence_lens`` comes from a graph
    input, that input from ``lengths``). ``run(feeds)`` gives every output from a dict of
    every input by name. ``layers`` are the lstmcore layers of the recurrent nodes whose
    weights the file holds, in graph order: their ``params`` are the node's weights in
    lstmcore's gate order.
    """

    def __init__(self, onnx: Any, model: Any) -> None:
        graph = model.graph
        for opset in model.opset_import:
            if opset.domain not in ("", "ai.onnx"):
                raise OnnxImportError(f"the model uses operator domain {opset.domain!r}; lstmcore reads ai.onnx only")
        self._constants: dict[str, Any] = {}
        for tensor in graph.initializer:
            self._constants[tensor.name] = _array(onnx, tensor, f"initializer {tensor.name!r}")
        if graph.sparse_initializer:
            raise OnnxImportError("the model has sparse initializers; lstmcore reads dense ones only")
        # Before IR version 4 initializers were listed among the inputs too.
        self.input_names = [i.name for i in graph.input if i.name not in self._constants]
        self.output_names = [o.name for o in graph.output]
        known = set(self._constants) | set(self.input_names) | {""}
        self._steps: list[_Step] = []
        for position, node in enumerate(graph.node):
            where = f"node {position} ({node.op_type} {node.name!r})" if node.name else f"node {position} ({node.op_type})"
            if node.domain not in ("", "ai.onnx"):
                raise OnnxImportError(f"{where} is in domain {node.domain!r}; lstmcore reads ai.onnx operators only")
            if node.op_type not in GLUE and node.op_type not in OPERATORS and node.op_type != "Constant":
                raise OnnxImportError(
                    f"{where}: operator {node.op_type} is not supported; lstmcore reads LSTM, GRU, RNN, Constant and "
                    f"{', '.join(sorted(GLUE))}"
                )
            missing = [name for name in node.input if name not in known]
            if missing:
                raise OnnxImportError(f"{where} reads {missing}, which no earlier node, initializer or input makes")
            attributes = _attributes(onnx, node, where)
            known.update(node.output)
            if node.op_type == "Constant":
                self._constants[node.output[0]] = _constant(attributes, where)
                continue
            step = _Step(node, attributes, where)
            if all(name == "" or name in self._constants for name in node.input) and node.op_type in GLUE:
                # Computed once: constant folding of shapes, transposed weights and the like.
                self._store(step, self._glue(step, [self._constants.get(n) for n in node.input]), self._constants)
                continue
            if node.op_type in OPERATORS:
                step.layer = self._layer_if_constant(step)
            self._steps.append(step)
        missing_outputs = [name for name in self.output_names if name not in known]
        if missing_outputs:
            raise OnnxImportError(f"graph outputs {missing_outputs} are made by no node")
        self.lengths_input = self._lengths_input()
        self.layers = [step.layer for step in self._steps if step.layer is not None]

    # ----------------------------------------------------------------- load-time helpers

    def _weights(self, step: _Step, values: dict[str, Any]) -> dict[str, np.ndarray]:
        names = dict(zip(_RECURRENT_INPUTS[step.op], step.inputs))
        return {key: np.asarray(values[names[key]], np.float32) for key in _WEIGHT_INPUTS if names.get(key, "") != ""}

    def _layer_if_constant(self, step: _Step) -> Any:
        names = dict(zip(_RECURRENT_INPUTS[step.op], step.inputs))
        if all(names.get(key, "") in ("",) or names[key] in self._constants for key in _WEIGHT_INPUTS):
            return self._layer(step, self._weights(step, self._constants))
        return None

    def _layer(self, step: _Step, weights: dict[str, np.ndarray]) -> Any:
        try:
            return layer_from_node(step.node, step.attributes, weights, step.where)
        except NodeError as error:
            raise OnnxImportError(str(error)) from error

    def _lengths_input(self) -> str | None:
        """The graph input a recurrent node's sequence_lens comes from (through Casts or
        Identities), or None."""
        made_by = {output: step for step in self._steps for output in step.outputs}
        for step in self._steps:
            if step.op not in OPERATORS or len(step.inputs) < 5 or not step.inputs[4]:
                continue
            name = step.inputs[4]
            while name in made_by and made_by[name].op in ("Cast", "Identity"):
                name = made_by[name].inputs[0]
            if name in self.input_names:
                return name
        return None

    # ----------------------------------------------------------------- running

    def _glue(self, step: _Step, inputs: list[Any]) -> list[Any]:
        try:
            return GLUE[step.op](inputs, step.attributes)
        except OnnxImportError:
            raise
        except Exception as error:
            raise OnnxImportError(f"{step.where} failed: {error}") from error

    @staticmethod
    def _store(step: _Step, outputs: list[Any], values: dict[str, Any]) -> None:
        for name, value in zip(step.outputs, outputs):
            if name:
                values[name] = value

    def _recurrent(self, step: _Step, values: dict[str, Any]) -> list[Any]:
        given = {key: values.get(name) for key, name in zip(_RECURRENT_INPUTS[step.op], step.inputs) if name}
        layer = step.layer if step.layer is not None else self._layer(step, self._weights(step, values))
        x = np.asarray(given["X"], np.float32)
        if x.ndim != 3 or x.shape[2] != layer.input_size:
            raise OnnxImportError(f"{step.where}: X of shape {x.shape}, expected rank 3 with {layer.input_size} features")
        batch_first = layer.batch_first
        lengths = given.get("sequence_lens")
        states = []
        for key in ("initial_h", "initial_c"):
            state = given.get(key)
            if state is not None and batch_first:
                state = np.swapaxes(np.asarray(state), 0, 1)  # (B, D, H) -> (D, B, H)
            states.append(None if state is None else np.asarray(state, np.float32))
        initial: Any = states[0]
        if step.op == "LSTM" and (states[0] is not None or states[1] is not None):
            shape = (layer.num_directions, x.shape[0 if batch_first else 1], layer.hidden_size)
            initial = tuple(np.zeros(shape, np.float32) if s is None else s for s in states)
        try:
            y, final = layer(x, initial, lengths=None if lengths is None else np.asarray(lengths))
        except (TypeError, ValueError) as error:
            raise OnnxImportError(f"{step.where}: {error}") from error
        directions, hidden = layer.num_directions, layer.hidden_size
        y = y.reshape(y.shape[0], y.shape[1], directions, hidden)
        outputs = [y if batch_first else y.transpose(0, 2, 1, 3)]  # (B, T, D, H) or (T, D, B, H)
        for part in final if isinstance(final, tuple) else (final,):
            outputs.append(np.swapaxes(part, 0, 1) if batch_first else part)
        return outputs

    def run(self, feeds: dict[str, ArrayLike]) -> list[np.ndarray]:
        """Every graph output, from a dict holding each graph input by name."""
        missing = [name for name in self.input_names if name not in feeds]
        unknown = sorted(set(feeds) - set(self.input_names))
        if missing or unknown:
            raise ValueError(f"expected inputs {self.input_names}, missing {missing}, unknown {unknown}")
        values: dict[str, Any] = dict(self._constants)
        values.update({name: np.asarray(value) for name, value in feeds.items()})
        for step in self._steps:
            inputs = [values.get(name) if name else None for name in step.inputs]
            outputs = self._recurrent(step, values) if step.op in OPERATORS else self._glue(step, inputs)
            self._store(step, outputs, values)
        return [np.asarray(values[name]) for name in self.output_names]

    def predict(self, x: ArrayLike, *, lengths: ArrayLike | None = None) -> np.ndarray:
        """The graph's first output for x (its first input) and lengths (its sequence_lens)."""
        data_inputs = [name for name in self.input_names if name != self.lengths_input]
        if len(data_inputs) != 1:
            raise ValueError(f"predict takes one data input; this graph has {data_inputs}: call run with all of them")
        feeds: dict[str, ArrayLike] = {data_inputs[0]: x}
        if self.lengths_input is not None:
            if lengths is None:
                x_shape = np.shape(x)
                raise ValueError(
                    f"expected lengths: the graph's input {self.lengths_input!r} is its sequence_lens (x is {x_shape})"
                )
            feeds[self.lengths_input] = np.asarray(lengths)
        elif lengths is not None:
            raise ValueError("this graph takes no lengths (no recurrent node's sequence_lens is a graph input)")
        return self.run(feeds)[0]

    def to_sequential(self) -> Any:
        """The graph as an lstmcore ``Sequential`` (trainable, savable as a model file), when
        its nodes form one chain of lstmcore layers from a (batch, time, features) or
        (batch, time) ids input: recurrent nodes (zero or zero-built initial states,
        ``sequence_lens`` from the lengths input), the transposes and reshapes between them,
        the last step (Gather, Slice and Squeeze, or Y_h), MatMul/Gemm and Add (Dense), an
        activation (Dense's, or an identity Dense after another), ReduceMean over time
        (MeanPool) and Gather from a matrix (Embedding). Anything else is an
        OnnxImportError naming the node."""
        return to_sequential(self, OnnxImportError)

    def __repr__(self) -> str:
        layers = ", ".join(repr(layer) for layer in self.layers)
        return f"OnnxModel(inputs={self.input_names}, outputs={self.output_names}, layers=[{layers}])"
