"""``lstmcore.torch.LSTMCell``, ``GRUCell`` and ``RNNCell``: one step of torch.nn's cells,
run by the core as a one-step pass of a one-layer layer."""

from __future__ import annotations

from typing import Any

import torch

from lstmcore.torch._checks import InputError, check_options, check_tensor, shape_text
from lstmcore.torch._core_module import CoreModule

_LAYER_SUFFIX = "_l0"
LSTM_CELL_OPTIONS = (
    "peephole",
    "coupled",
    "layer_norm",
    "forget_bias",
    "recurrent_dropout",
    "zoneout",
    "gate_activation",
    "activation",
    "cell_activation",
    "clip",
)
GRU_CELL_OPTIONS = ("reset_after", "gate_activation", "activation", "clip")
RNN_CELL_OPTIONS = ("clip",)


class _Cell(CoreModule):
    _state_count = 1

    def _build(self, kind, input_size, hidden_size, bias, device, dtype, **extra):
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.bias = bool(bias)
        self.options = dict(extra)
        layer_options = dict(input_size=input_size, hidden_size=hidden_size, bias=bias, batch_first=False, **extra)
        self._setup(kind, layer_options, device, dtype, suffix=_LAYER_SUFFIX)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
        return text + "".join(f", {name}={value!r}" for name, value in self.options.items() if value != "tanh")

    def forward(self, input: torch.Tensor, hx: Any = None) -> Any:
        dtype = self._dtype()
        check_tensor(input, "input", dtype)
        if input.dim() not in (1, 2):
            raise InputError(
                f"expected input of 2 dimensions (N, {self.input_size}) or 1 (unbatched: ({self.input_size},)), "
                f"got {input.dim()}: {shape_text(input.shape)}"
            )
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        if x.shape[1] != self.input_size or x.shape[0] == 0:
            raise InputError(f"expected input of shape (N, {self.input_size}) with N >= 1, got {shape_text(input.shape)}")
        parts = []
        if hx is not None:
            given = self._unpack(hx)
            for part, kind in zip(given, ("h", "c")):
                check_tensor(part, kind, dtype)
                expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
                if tuple(part.shape) != expected:
                    raise InputError(f"expected {kind} of shape {shape_text(expected)}, got {shape_text(part.shape)}")
                parts.append((part if batched else part.unsqueeze(0)).unsqueeze(0))
        _, final = self._core_pass(x.unsqueeze(0), parts, None)
        states = [part[0] if batched else part[0, 0] for part in final]
        return tuple(states) if len(states) > 1 else states[0]

    def _unpack(self, hx):
        if not isinstance(hx, torch.Tensor):
            raise InputError(f"expected hx as a tensor h, got {type(hx).__name__}")
        return [hx]


class LSTMCell(_Cell):
    """``torch.nn.LSTMCell`` run by the core: ``h, c = cell(input, (h, c))``. lstmcore's cell
    options are keyword arguments: ``peephole``, ``coupled``, ``layer_norm``,
    ``forget_bias``, ``recurrent_dropout``, ``zoneout``, the activations and ``clip``."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None, **options: Any
    ) -> None:
        super().__init__()
        check_options(options, LSTM_CELL_OPTIONS, "LSTMCell")
        self._build("LSTM", input_size, hidden_size, bias, device, dtype, **options)

    def _unpack(self, hx):
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise InputError(f"expected hx as a tuple (h, c), got {type(hx).__name__}")
        return list(hx)


class GRUCell(_Cell):
    """``torch.nn.GRUCell`` run by the core: ``h = cell(input, h)``. lstmcore's options:
    ``reset_after``, ``gate_activation``, ``activation``, ``clip``."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None, **options: Any
    ) -> None:
        super().__init__()
        check_options(options, GRU_CELL_OPTIONS, "GRUCell")
        self._build("GRU", input_size, hidden_size, bias, device, dtype, **options)


class RNNCell(_Cell):
    """``torch.nn.RNNCell`` run by the core: ``h = cell(input, h)``; ``nonlinearity`` any
    activation lstmcore has, ``clip`` a keyword argument."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: Any = "tanh",
        device: Any = None,
        dtype: Any = None,
        **options: Any,
    ) -> None:
        super().__init__()
        check_options(options, RNN_CELL_OPTIONS, "RNNCell")
        self.nonlinearity = nonlinearity
        self._build("RNN", input_size, hidden_size, bias, device, dtype, nonlinearity=nonlinearity, **options)
