"""Each Keras layer of the chain as lstmcore layers, and where their weights come from.

``plan`` walks the chain once, following the shape of the data from layer to layer, and
returns ``Planned`` layers: how to build each lstmcore layer, which datasets of the
weights file it needs (with the shapes the config implies) and how they map to its
PyTorch-style parameters. Nothing is allocated here, so the caller can compare the
total with the weights file's size before building a layer.

Keras keeps a kernel (inputs, units) where lstmcore (PyTorch) keeps a weight (units,
inputs), so every kernel is transposed. Gate order: Keras's LSTM i, f, c, o is lstmcore's
i, f, g, o; Keras's GRU z, r, h becomes lstmcore's r, z, n. Keras's LSTM and SimpleRNN
hold one bias (lstmcore's bias_ih, bias_hh zero), its GRU with reset_after=True two
(input, recurrent) and with reset_after=False one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lstmcore.interop.keras._chain import Fail, KerasLayer
from lstmcore.nn._layers import Dense, Dropout, Embedding, LastStep, Masking, RepeatLast
from lstmcore.nn.model_files._format import short
from lstmcore.rnn._gru import GRU
from lstmcore.rnn._lstm import LSTM
from lstmcore.rnn._rnn import RNN

# Keras's activations by the name its config holds, as lstmcore's options take them.
ACTIVATIONS: dict[str, Any] = {
    "linear": "linear",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "relu": "relu",
    "softsign": "softsign",
    # Keras 3's hard_sigmoid is relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1) (Keras 2 had 0.2, 0.5)
    "hard_sigmoid": ("hard_sigmoid", 1 / 6, 0.5),
}
CONVERTED = ("InputLayer", "Embedding", "Masking", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "Dense", "Dropout")
_RECURRENT = {"LSTM": (LSTM, 4), "GRU": (GRU, 3), "SimpleRNN": (RNN, 1)}
# Keys every layer's config may hold that change nothing at inference: its name, whether
# it trains, its seed; and (by suffix) initializers, regularizers, constraints.
_IGNORED = ("name", "trainable", "seed")
_IGNORED_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


# A group of the weights file a layer reads: its path, the shapes of its variables 0, 1,
# ..., and the dtype they are read as.
Read = tuple[tuple[str, ...], Sequence[tuple[int, ...]], np.dtype]


class Planned:
    """One lstmcore layer to build: ``build()``; the weight groups it reads, each (path in
    the weights file, shapes of its variables 0, 1, ..., dtype); ``place(layer, arrays)``
    with one list of arrays per group; ``keras``, the Keras layer it comes from."""

    def __init__(
        self,
        build: Callable[[], Any],
        keras: KerasLayer | None = None,
        reads: Sequence[Read] = (),
        place: Callable[[Any, list[list[np.ndarray]]], None] | None = None,
    ) -> None:
        self.build, self.keras, self.reads, self.place = build, keras, list(reads), place

    def weight_bytes(self) -> int:
        return sum(math.prod(shape) * dtype.itemsize for _, shapes, dtype in self.reads for shape in shapes)


class _Flow:
    """The data between two layers: its shape without the batch axis (None for a size
    the config leaves open), and whether lengths read off the input still apply."""

    def __init__(self, shape: list[Any]) -> None:
        self.shape = shape
        self.masked = False


class _Options:
    """A Keras layer's config, read key by key with its type checked; ``finish`` refuses
    the keys nobody read whose value turns something on."""

    def __init__(self, layer: KerasLayer, fail: Fail) -> None:
        self.layer, self.fail = layer, fail
        self.read: set[str] = set()

    def value(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.layer.config.get(key, default)

    def bad(self, key: str, expected: str, value: Any) -> Exception:
        return self.fail(f"{self.layer.describe()}: expected {key} as {expected}, got {short(value)}")

    def unsupported(self, key: str, value: Any, why: str) -> ValueError:
        return ValueError(f"{self.layer.describe()}: {key}={short(value)} is not supported ({why})")

    def positive_int(self, key: str) -> int:
        value = self.value(key)
        if type(value) is not int or value < 1:
            raise self.bad(key, "an integer >= 1", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.value(key, default)
        if type(value) is not bool:
            raise self.bad(key, "a boolean", value)
        return value

    def off(self, key: str, why: str) -> None:
        """Refuses ``key`` set to true."""
        if self.boolean(key, False):
            raise self.unsupported(key, True, why)

    def rate(self, key: str) -> float:
        value = self.value(key, 0.0)
        if type(value) not in (int, float) or not 0 <= value < 1:
            raise self.bad(key, "a number in [0, 1)", value)
        return float(value)

    def activation(self, key: str, extra: tuple[str, ...] = ()) -> Any:
        value = self.value(key, "linear")
        value = "linear" if value is None else value
        if type(value) is not str or (value not in ACTIVATIONS and value not in extra):
            known = ", ".join([*ACTIVATIONS, *extra])
            raise self.unsupported(key, value, f"lstmcore has {known}")
        return ACTIVATIONS.get(value, value)

    def dtype(self) -> np.dtype:
        """The layer's dtype policy, float32 or float64 (the variables' and the computation's)."""
        value = self.value("dtype")
        name = value
        if type(value) is dict:
            config = value.get("config")
            name = config.get("name") if type(config) is dict else None
            if value.get("class_name") not in ("DTypePolicy", "FloatDTypePolicy"):
                name = value.get("class_name")
        if value is None:
            return np.dtype(np.float32)
        if name in ("float32", "float64"):
            return np.dtype(name)
        raise self.unsupported("dtype", name, "lstmcore computes in float32 or float64")

    def finish(self) -> None:
        for key, value in self.layer.config.items():
            if key in self.read or key in _IGNORED or key.endswith(_IGNORED_SUFFIXES):
                continue
            if value is not None and value is not False:
                raise self.unsupported(key, value, "an option from_keras does not convert")


# ----------------------------------------------------------------------- the chain


def plan(chain: list[KerasLayer], padded_steps: str, fail: Fail) -> list[Planned]:
    """The lstmcore layers of the Keras ``chain`` (InputLayer first when it has one)."""
    flow = _Flow(_input_shape(chain, fail))
    planned: list[Planned] = []
    for index, layer in enumerate(chain):
        if layer.kind == "InputLayer":
            if index:
                raise fail(f"{layer.describe()} is not the first layer")
            continue
        _check_built_shape(layer, flow, fail)
        first = not planned
        if layer.kind in ("Embedding", "Masking") and not first:
            raise ValueError(
                f"{layer.describe()} comes after another layer; from_keras reads an {layer.kind} only as the first "
                "layer, where the lengths are read off the model's input"
            )
        convert = _CONVERTERS.get(layer.kind)
        if convert is None:
            raise ValueError(f"{layer.describe()}: a layer from_keras does not convert (it converts {', '.join(CONVERTED)})")
        planned.extend(convert(layer, flow, padded_steps, fail))
    if not planned:
        raise ValueError("the Keras model has no layer to convert")
    return planned


def _input_shape(chain: list[KerasLayer], fail: Fail) -> list[Any]:
    """The input's shape without the batch axis: the InputLayer's, else the first layer's
    build shape."""
    if chain and chain[0].kind == "InputLayer":
        options = _Options(chain[0], fail)
        shape = options.value("batch_shape")
        for key in ("sparse", "ragged"):
            options.off(key, "lstmcore reads dense arrays")
        options.value("optional")
        options.value("dtype")  # ids or floats: the next layer decides
        options.finish()
    else:
        shape = chain[0].input_shape if chain else None
    if type(shape) is not list or not 2 <= len(shape) <= 3:
        raise fail(f"expected the model's input shape as (batch, steps) or (batch, steps, features), got {short(shape)}")
    if not all(size is None or (type(size) is int and size >= 1) for size in shape):
        raise fail(f"expected the model's input shape of sizes >= 1 or null, got {short(shape)}")
    return list(shape[1:])


def _check_built_shape(layer: KerasLayer, flow: _Flow, fail: Fail) -> None:
    """The shape Keras built the layer for, when recorded, is the one reaching it."""
    shape = layer.input_shape
    if shape is None:
        return
    if len(shape) != len(flow.shape) + 1 or any(
        type(built) is int and type(known) is int and built != known for built, known in zip(shape[1:], flow.shape)
    ):
        raise fail(f"{layer.describe()} was built for inputs {short(shape)}, but receives {_shape_text(flow.shape)}")
    if flow.shape and flow.shape[-1] is None and type(shape[-1]) is int:
        flow.shape[-1] = shape[-1]


def _shape_text(shape: list[Any]) -> str:
    return "(" + ", ".join(str(size) for size in [None, *shape]) + ")"


def _features(layer: KerasLayer, flow: _Flow, fail: Fail, *, sequence: bool) -> int:
    if sequence and len(flow.shape) != 2:
        raise fail(f"{layer.describe()} expects sequences (batch, steps, features), got {_shape_text(flow.shape)}")
    features = flow.shape[-1] if flow.shape else None
    if type(features) is not int:
        raise fail(f"{layer.describe()}: the config does not give the size of its input's last axis")
    return features


# ----------------------------------------------------------------------- feed-forward layers


def _embedding(layer: KerasLayer, flow: _Flow, padded_steps: str, fail: Fail) -> list[Planned]:
    options = _Options(layer, fail)
    count, size = options.positive_int("input_dim"), options.positive_int("output_dim")
    mask_zero = options.boolean("mask_zero", False)
    dtype = options.dtype()
    options.finish()
    if mask_zero and len(flow.shape) != 1:
        raise options.unsupported("mask_zero", True, "lengths are read off ids of shape (batch, steps)")

    def place(built, arrays):
        built.params["weight"][...] = arrays[0][0]

    flow.shape = [*flow.shape, size]
    flow.masked = mask_zero
    build = lambda: Embedding(count, size, mask_zero=mask_zero, dtype=dtype)  # noqa: E731
    return [Planned(build, layer, [(("layers", layer.group, "vars"), [(count, size)], dtype)], place)]


def _masking(layer: KerasLayer, flow: _Flow, padded_steps: str, fail: Fail) -> list[Planned]:
    options = _Options(layer, fail)
    value = options.value("mask_value", 0.0)
    if type(value) not in (int, float):
        raise options.bad("mask_value", "a number", value)
    options.dtype()
    options.finish()
    _features(layer, flow, fail, sequence=True)
    flow.masked = True
    return [Planned(lambda: Masking(value), layer)]


def _dropout(layer: KerasLayer, flow: _Flow, padded_steps: str, fail: Fail) -> list[Planned]:
    options = _Options(layer, fail)
    rate = options.rate("rate")
    noise_shape = options.value("noise_shape")
    if noise_shape is not None:
        raise options.unsupported("noise_shape", noise_shape, "lstmcore's Dropout draws every element alone")
    options.dtype()
    options.finish()
    return [Planned(lambda: Dropout(rate), layer)]


def _dense(layer: KerasLayer, flow: _Flow, padded_steps: str, fail: Fail) -> list[Planned]:
    options = _Options(layer, fail)
    units = options.positive_int("units")
    activation = options.activation("activation", extra=("softmax",))
    use_bias = options.boolean("use_bias", True)
    dtype = options.dtype()
    options.finish()
    features = _features(layer, flow, fail, sequence=False)

    def place(built, arrays):
        built.params["weight"][...] = arrays[0][0].T
        built.params["bias"][...] = arrays[0][1] if use_bias else 0

    shapes = [(features, units)] + ([(units,)] if use_bias else [])
    flow.shape[-1] = units
    build = lambda: Dense(features, units, activation=activation, dtype=dtype)  # noqa: E731
    return [Planned(build, layer, [(("layers", layer.group, "vars"), shapes, dtype)], place)]


# ----------------------------------------------------------------------- recurrent layers


class _Recurrent:
    """A Keras LSTM, GRU or SimpleRNN config, read and checked."""

    def __init__(self, layer: KerasLayer, fail: Fail) -> None:
        if layer.kind not in _RECURRENT:
            raise ValueError(f"{layer.describe()}: a recurrent layer from_keras does not convert (LSTM, GRU, SimpleRNN)")
        options = _Options(layer, fail)
        self.kind, self.layer = layer.kind, layer
        self.units = options.positive_int("units")
        self.use_bias = options.boolean("use_bias", True)
        self.return_sequences = options.boolean("return_sequences", False)
        self.go_backwards = options.boolean("go_backwards", False)
        self.zero_output_for_mask = options.boolean("zero_output_for_mask", False)
        self.reset_after = options.boolean("reset_after", True) if layer.kind == "GRU" else False
        options.off("return_state", "a Sequential passes one output from layer to layer")
        options.off("stateful", "lstmcore's layers start every call from a zero state")
        # The same outputs whatever these say: unrolling, the kernel Keras picks, and
        # dropout, which acts in training only (a converted model trains without it).
        options.boolean("unroll", False)
        for key in ("implementation", "use_cudnn", "unit_forget_bias"):
            options.value(key)
        options.rate("dropout")
        options.rate("recurrent_dropout")
        self.dtype = options.dtype()
        activation = options.activation("activation")
        if layer.kind == "SimpleRNN":
            if activation not in ("tanh", "relu"):
                raise options.unsupported("activation", activation, "lstmcore's RNN takes tanh or relu")
            self.options: dict[str, Any] = {"nonlinearity": activation}
        else:
            gate = options.activation("recurrent_activation")
            self.options = (
                {} if (gate, activation) == ("sigmoid", "tanh") else {"gate_activation": gate, "activation": activation}
            )
            if layer.kind == "GRU":
                self.options["reset_after"] = self.reset_after
        options.finish()

    def same_cell(self, other: _Recurrent) -> bool:
        return (self.kind, self.units, self.use_bias, self.return_sequences, self.dtype, self.options) == (
            other.kind,
            other.units,
            other.use_bias,
            other.return_sequences,
            other.dtype,
            other.options,
        )

    def shapes(self, features: int) -> list[tuple[int, ...]]:
        rows = _RECURRENT[self.kind][1] * self.units
        shapes: list[tuple[int, ...]] = [(features, rows), (self.units, rows)]
        if self.use_bias:
            shapes.append((2, rows) if self.reset_after else (rows,))
        return shapes

    def build(self, features: int, **direction: bool) -> Any:
        cls = _RECURRENT[self.kind][0]
        return cls(features, self.units, bias=self.use_bias, dtype=self.dtype, **direction, **self.options)

    def place(self, built: Any, arrays: list[np.ndarray], suffix: str) -> None:
        """Keras's kernel, recurrent kernel and bias into lstmcore's parameters."""
        blocks = _RECURRENT[self.kind][1]
        # Keras's GRU gates z, r, h as lstmcore's r, z, n
        order = [1, 0, 2] if self.kind == "GRU" else list(range(blocks))

        def rows(values):  # (..., G*H) Keras columns -> (G*H, ...) lstmcore rows, gates reordered
            values = np.moveaxis(values, -1, 0)
            return values.reshape(blocks, self.units, *values.shape[1:])[order].reshape(values.shape)

        kernel, recurrent, *bias = arrays
        built.params[f"weight_ih{suffix}"][...] = rows(kernel)
        built.params[f"weight_hh{suffix}"][...] = rows(recurrent)
        if self.use_bias:
            input_bias, recurrent_bias = bias[0] if self.reset_after else (bias[0], 0 * bias[0])
            built.params[f"bias_ih{suffix}"][...] = rows(input_bias)
            built.params[f"bias_hh{suffix}"][...] = rows(recurrent_bias)


def _recurrent(layer: KerasLayer, flow: _Flow, padded_steps: str, fail: Fail) -> list[Planned]:
    cell = _Recurrent(layer, fail)
    features = _features(layer, flow, fail, sequence=True)
    if cell.go_backwards and cell.return_sequences:
        raise ValueError(
            f"{layer.describe()}: go_backwards=True with return_sequences=True is not supported (Keras returns the "
            "outputs in reversed time order)"
        )
    reads = [(("layers", layer.group, "cell", "vars"), cell.shapes(features), cell.dtype)]
    build = lambda: cell.build(features, reverse=cell.go_backwards)  # noqa: E731
    planned = [Planned(build, layer, reads, lambda built, arrays: cell.place(built, arrays[0], "_l0"))]
    return planned + _after_recurrent(cell, flow, padded_steps, directions=1)


def _bidirectional(layer: KerasLayer, flow: _Flow, padded_steps: str, fail: Fail) -> list[Planned]:
    options = _Options(layer, fail)
    merge_mode = options.value("merge_mode", "concat")
    if merge_mode != "concat":
        raise options.unsupported("merge_mode", merge_mode, "lstmcore's bidirectional layers concatenate the directions")
    cells = []
    for key, group in (("layer", "forward_layer"), ("backward_layer", "backward_layer")):
        entry = options.value(key)
        if type(entry) is not dict or type(entry.get("config")) is not dict or type(entry.get("class_name")) is not str:
            raise options.bad(key, "a layer's config", entry)
        name = entry["config"].get("name")
        inner = KerasLayer(entry["class_name"], name if type(name) is str else key, entry["config"], None, group)
        cells.append(_Recurrent(inner, fail))
    forward, backward = cells
    options.dtype()
    options.finish()
    if forward.go_backwards or not backward.go_backwards:
        raise fail(f"{layer.describe()}: expected a forward layer and a backward layer (go_backwards=True)")
    if not forward.same_cell(backward):
        raise options.unsupported(
            "backward_layer",
            backward.layer.name,
            "its options differ from the forward layer's; lstmcore's directions share them",
        )
    features = _features(layer, flow, fail, sequence=True)
    reads = [
        (("layers", layer.group, direction, "cell", "vars"), forward.shapes(features), forward.dtype)
        for direction in ("forward_layer", "backward_layer")
    ]

    def place(built, arrays):
        forward.place(built, arrays[0], "_l0")
        backward.place(built, arrays[1], "_l0_reverse")

    planned = [Planned(lambda: forward.build(features, bidirectional=True), layer, reads, place)]
    return planned + _after_recurrent(forward, flow, padded_steps, directions=2)


def _after_recurrent(cell: _Recurrent, flow: _Flow, padded_steps: str, directions: int) -> list[Planned]:
    """What turns lstmcore's output into Keras's: the last step of each direction when
    Keras returns one output per sequence; at padded steps, the last valid output
    repeated, as a Keras layer outside Bidirectional gives (zero_output_for_mask=False)."""
    flow.shape = [flow.shape[0], directions * cell.units]
    if not cell.return_sequences:
        flow.shape, flow.masked = flow.shape[1:], False
        last = dict(bidirectional=directions == 2, reverse=cell.go_backwards)
        return [Planned(lambda: LastStep(**last))]
    # Bidirectional sets zero_output_for_mask to return_sequences on both its layers.
    if flow.masked and directions == 1 and not cell.zero_output_for_mask and padded_steps == "keras":
        return [Planned(RepeatLast)]
    return []


_CONVERTERS = {
    "Embedding": _embedding,
    "Masking": _masking,
    "Dropout": _dropout,
    "Dense": _dense,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "SimpleRNN": _recurrent,
    "Bidirectional": _bidirectional,
}
