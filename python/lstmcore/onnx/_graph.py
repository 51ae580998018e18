"""A small builder of ONNX graphs: nodes, initializers and unique names, and the few
operators whose form changed between opsets (Squeeze, Unsqueeze and the reductions take
their axes as an input from opset 13 and 18)."""

from __future__ import annotations

from typing import Any

import numpy as np


class GraphBuilder:
    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx = onnx
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()

    def name(self, base: str) -> str:
        """`base`, or `base_2`, `base_3`, ... when taken: every name in a graph is its own."""
        name, count = base, 1
        while name in self._used:
            count += 1
            name = f"{base}_{count}"
        self._used.add(name)
        return name

    def constant(self, array: Any, base: str) -> str:
        """An initializer holding `array`; its name."""
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def ints(self, values: list[int], base: str = "shape") -> str:
        return self.constant(np.asarray(values, np.int64), base)

    def node(self, op: str, inputs: list[str], base: str, outputs: int = 1, **attributes: Any) -> list[str]:
        """Adds one node; the names of its outputs."""
        names = [self.name(base if outputs == 1 else f"{base}_{k}") for k in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op, inputs, names, name=self.name(f"{base}_node"), **attributes))
        return names

    def one(self, op: str, inputs: list[str], base: str, **attributes: Any) -> str:
        return self.node(op, inputs, base, 1, **attributes)[0]

    def squeeze(self, x: str, axes: list[int], base: str) -> str:
        if self.opset >= 13:
            return self.one("Squeeze", [x, self.ints(axes, "axes")], base)
        return self.one("Squeeze", [x], base, axes=axes)

    def unsqueeze(self, x: str, axes: list[int], base: str) -> str:
        if self.opset >= 13:
            return self.one("Unsqueeze", [x, self.ints(axes, "axes")], base)
        return self.one("Unsqueeze", [x], base, axes=axes)

    def reduce(self, op: str, x: str, axes: list[int], base: str) -> str:
        """ReduceSum (axes an input from opset 13) or ReduceMean (from 18), keepdims=0."""
        as_input = self.opset >= (13 if op == "ReduceSum" else 18)
        if as_input:
            return self.one(op, [x, self.ints(axes, "axes")], base, keepdims=0)
        return self.one(op, [x], base, axes=axes, keepdims=0)
