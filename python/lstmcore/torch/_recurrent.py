"""``lstmcore.torch.LSTM``, ``GRU`` and ``RNN``: torch.nn's modules, run by the core."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence

from lstmcore.torch._checks import InputError, check_options, check_tensor, shape_text
from lstmcore.torch._core_module import CoreModule

LSTM_OPTIONS = (
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
    "reverse",
)
GRU_OPTIONS = ("reset_after", "gate_activation", "activation", "clip", "reverse")
RNN_OPTIONS = ("clip", "reverse")


class _Recurrent(CoreModule):
    """What the three share: torch.nn's constructor arguments, forward contract and outputs."""

    _state_kinds = 1

    def _build(
        self, kind, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype, **extra
    ):
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.mode = kind
        self.options = dict(extra)
        layer_options = dict(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            **extra,
        )
        self._setup(kind, layer_options, device, dtype)

    @property
    def _state_size(self) -> int:
        return self.hidden_size

    def _state_sizes(self) -> tuple[int, ...]:
        return (self._state_size,)

    def flatten_parameters(self) -> None:
        """Nothing to do (torch.nn's cuDNN hook; the core reads the parameters as they are)."""

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False}
        for name, default in defaults.items():
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        text += "".join(f", {name}={value!r}" for name, value in self._extra_arguments().items())
        return text

    def _extra_arguments(self) -> dict[str, Any]:
        return dict(self.options)

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, Any]:
        dtype = self._dtype()
        lengths = packing = None
        if isinstance(input, PackedSequence):
            check_tensor(input.data, "input.data", dtype)
            if input.data.dim() != 2:
                raise InputError(
                    "expected PackedSequence data of 2 dimensions (sum of lengths, H_in), "
                    f"got {input.data.dim()}: {shape_text(input.data.shape)}"
                )
            packing = _Packing(input, self.batch_first)
            x, lengths = packing.padded(input.data), packing.lengths
            batched = True
        else:
            check_tensor(input, "input", dtype)
            if input.dim() not in (2, 3):
                raise InputError(
                    f"expected input of 3 dimensions ({self._layout()}) or 2 (unbatched: (L, H_in)), "
                    f"got {input.dim()}: {shape_text(input.shape)}"
                )
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(0 if self.batch_first else 1)
        if x.shape[-1] != self.input_size:
            raise InputError(f"expected input of {self._layout()} with H_in={self.input_size}, got {shape_text(x.shape)}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise InputError(f"expected a non-empty sequence and batch, got input of shape {shape_text(x.shape)}")
        batch = x.shape[0 if self.batch_first else 1]
        parts = self._state_parts(hx, batch, batched, dtype)
        y, final = self._core_pass(x, parts, lengths)
        if packing is not None:
            output: Any = packing.packed(y)
        else:
            output = y if batched else y.squeeze(0 if self.batch_first else 1)
        if not batched:
            final = [part.squeeze(1) for part in final]
        return output, self._state_out(final)

    def _layout(self) -> str:
        return "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"

    def _state_parts(self, hx, batch, batched, dtype):
        if hx is None:
            return []
        parts = self._unpack(hx)
        count = self.num_layers * (2 if self.bidirectional else 1)
        checked = []
        for part, kind, size in zip(parts, ("h_0", "c_0"), self._state_sizes()):
            check_tensor(part, kind, dtype)
            expected = (count, batch, size) if batched else (count, size)
            if tuple(part.shape) != expected:
                raise InputError(f"expected {kind} of shape {shape_text(expected)}, got {shape_text(part.shape)}")
            checked.append(part if batched else part.unsqueeze(1))
        return checked

    def _unpack(self, hx):
        if not isinstance(hx, torch.Tensor):
            raise InputError(f"expected hx as a tensor h_0, got {type(hx).__name__}")
        return [hx]

    def _state_out(self, final):
        return final[0]


class LSTM(_Recurrent):
    """``torch.nn.LSTM`` run by lstmcore's core: same arguments, parameters and outputs.

    lstmcore's LSTM options are keyword arguments: ``peephole``, ``coupled``,
    ``layer_norm``, ``forget_bias``, ``recurrent_dropout``, ``zoneout``,
    ``gate_activation``, ``activation``, ``cell_activation``, ``clip``, ``reverse``
    (docs/torch.md; their parameters join torch.nn's, named as lstmcore names them).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
        **options: Any,
    ) -> None:
        super().__init__()
        check_options(options, LSTM_OPTIONS, "LSTM")
        self.proj_size = int(proj_size)
        extra = dict(options, proj_size=proj_size) if proj_size else dict(options)
        self._build(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype, **extra
        )

    @property
    def _state_size(self) -> int:
        return self.proj_size or self.hidden_size

    def _state_sizes(self) -> tuple[int, ...]:
        return (self._state_size, self.hidden_size)

    def _extra_arguments(self) -> dict[str, Any]:
        return dict(self.options)  # proj_size is among them when set

    def _unpack(self, hx):
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise InputError(f"expected hx as a tuple (h_0, c_0), got {type(hx).__name__}")
        return list(hx)

    def _state_out(self, final):
        return final[0], final[1]


class GRU(_Recurrent):
    """``torch.nn.GRU`` run by lstmcore's core: same arguments, parameters and outputs.

    lstmcore's options are keyword arguments: ``reset_after`` (False: the reset gate before
    the recurrent product, Keras's and ONNX's default form), ``gate_activation``,
    ``activation``, ``clip``, ``reverse``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        **options: Any,
    ) -> None:
        super().__init__()
        check_options(options, GRU_OPTIONS, "GRU")
        self._build(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype, **options
        )


class RNN(_Recurrent):
    """``torch.nn.RNN`` run by lstmcore's core: same arguments, parameters and outputs.

    ``nonlinearity`` takes "tanh" and "relu" as torch.nn's does, and any other activation
    lstmcore has; ``clip`` and ``reverse`` are keyword arguments.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: Any = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        **options: Any,
    ) -> None:
        super().__init__()
        check_options(options, RNN_OPTIONS, "RNN")
        self.nonlinearity = nonlinearity
        self._build(
            "RNN",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device,
            dtype,
            nonlinearity=nonlinearity,
            **options,
        )

    def _extra_arguments(self) -> dict[str, Any]:
        return {name: value for name, value in self.options.items() if (name, value) != ("nonlinearity", "tanh")}


class _Packing:
    """Where each step of a PackedSequence sits in the padded batch the core reads.

    Both ways are one gather (``index_select``, whose gradient is one scatter-add), with the
    padding read from an appended zero row; torch's pad_packed_sequence and its backward
    copy step by step.
    """

    def __init__(self, packed: PackedSequence, batch_first: bool) -> None:
        sizes = packed.batch_sizes.to(torch.int64)
        steps, batch = sizes.numel(), int(sizes[0])
        self.total = int(sizes.sum())
        offsets = torch.cumsum(sizes, 0) - sizes
        sorted_position = torch.arange(batch)
        alive = sorted_position[None, :] < sizes[:, None]  # (T, B) in the packed (sorted) order
        # Packed rows run through time, within a step through the sorted batch, as nonzero does.
        step, position = alive.nonzero(as_tuple=True)
        caller = position if packed.sorted_indices is None else packed.sorted_indices[position]
        self.rows = caller * steps + step if batch_first else step * batch + caller
        rows = offsets[:, None] + sorted_position[None, :]
        if packed.unsorted_indices is not None:
            rows, alive = rows[:, packed.unsorted_indices], alive[:, packed.unsorted_indices]
        rows = torch.where(alive, rows, self.total)  # the zero row
        self.gather = (rows.t() if batch_first else rows).reshape(-1)
        self.shape = (batch, steps) if batch_first else (steps, batch)
        self.lengths = alive.sum(0)
        self.layout = packed

    def padded(self, data: torch.Tensor) -> torch.Tensor:
        rows = torch.cat([data, data.new_zeros((1, data.shape[1]))])
        return rows.index_select(0, self.gather).view(*self.shape, data.shape[1])

    def packed(self, y: torch.Tensor) -> PackedSequence:
        data = y.reshape(-1, y.shape[-1]).index_select(0, self.rows)
        layout = self.layout
        return PackedSequence(data, layout.batch_sizes, layout.sorted_indices, layout.unsorted_indices)
