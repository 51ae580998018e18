"""Single-step cells, PyTorch's ``nn.LSTMCell``, ``nn.GRUCell``, ``nn.RNNCell``: one time step of a
one-layer layer, with the cell's parameter names (``weight_ih``, not ``weight_ih_l0``).

A cell runs on a one-layer layer of its kind that it keeps (so on the same fused kernels),
handing it its own parameter and gradient arrays before every pass: a parameter changed in
place or replaced in ``cell.params`` is what the next pass reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmcore._typing import ArrayLike, DTypeLike, State, StateLike
from lstmcore._util.checks import as_numeric_array, shape_text
from lstmcore.rnn._gru import GRU
from lstmcore.rnn._lstm import LSTM
from lstmcore.rnn._recurrent import _GatedRecurrent
from lstmcore.rnn._rnn import RNN

_SUFFIX = "_l0"


class CellTape:
    """What a cell's ``backward`` needs from its ``forward``; opaque, tied to that cell."""

    def __init__(self, cell, layer_tape, batch):
        self.cell, self.layer_tape, self.batch = cell, layer_tape, batch


class _Cell:
    """What the cells share; a subclass names its layer class."""

    _layer_class: type[_GatedRecurrent]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
    ) -> None:
        layer = self._layer_class(input_size, hidden_size, bias=bias, dtype=dtype, seed=seed)
        self._adopt(layer)

    def _layer_options(self) -> dict[str, Any]:
        """The layer's options beyond sizes, bias and dtype that the cell carries."""
        return {}

    @classmethod
    def _options_of(cls, layer: _GatedRecurrent) -> dict[str, Any]:
        """The cell options that rebuild ``layer``'s (see ``_layer_options``)."""
        return {}

    def _adopt(self, layer):
        self._layer = layer
        self.params = {name.removesuffix(_SUFFIX): value for name, value in layer.params.items()}
        self.grads = {name.removesuffix(_SUFFIX): value for name, value in layer.grads.items()}

    # ----------------------------------------------------------------- what it is

    @property
    def input_size(self) -> int:
        return self._layer.input_size

    @property
    def hidden_size(self) -> int:
        return self._layer.hidden_size

    @property
    def bias(self) -> bool:
        return self._layer.bias

    @property
    def dtype(self) -> np.dtype:
        return self._layer.dtype

    def __repr__(self):
        extras = "" if self.bias else ", bias=False"
        extras += "".join(f", {name}={value!r}" for name, value in self._layer_options().items())
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extras}, dtype={self.dtype.name})"

    def zero_grad(self) -> None:
        for grad in self.grads.values():
            grad[...] = 0

    # ----------------------------------------------------------------- conversions

    def to_layer(self) -> _GatedRecurrent:
        """The equivalent one-layer layer (batch_first), with copies of the parameters."""
        layer = self._layer_class(
            self.input_size, self.hidden_size, bias=self.bias, dtype=self.dtype, **self._layer_options()
        )
        for name, value in self._checked_params().items():
            layer.params[name + _SUFFIX][...] = value
        return layer

    @classmethod
    def from_layer(cls, layer: _GatedRecurrent) -> Any:
        """The cell of a one-layer, one-direction layer of this cell's kind and no variant
        options, with copies of its parameters."""
        if type(layer) is not cls._layer_class:
            raise TypeError(f"expected a {cls._layer_class.__name__} layer, got {type(layer).__name__}")
        if layer.num_layers != 1 or layer.bidirectional or layer.reverse:
            raise ValueError(
                "a cell is one step of one layer running forward: expected num_layers=1, bidirectional=False "
                f"and reverse=False, got num_layers={layer.num_layers}, bidirectional={layer.bidirectional}, "
                f"reverse={layer.reverse}"
            )
        options = _variant_options(layer)
        if options:
            raise ValueError(f"a {cls.__name__} has no variant options; the layer sets {options}")
        cell = cls(layer.input_size, layer.hidden_size, bias=layer.bias, dtype=layer.dtype, **cls._options_of(layer))
        for name, value in layer.params.items():
            cell.params[name.removesuffix(_SUFFIX)][...] = value
        return cell

    # ----------------------------------------------------------------- passes

    def __call__(self, x: ArrayLike, state: StateLike = None) -> State:
        """The state after one step: ``(h, c)`` for the LSTM cell, ``h`` for the GRU cell;
        x is (B, I), every state array (B, H); ``state`` None starts from zeros."""
        sequence, layer_state = self._checked_step(x, state, "state")
        _, final = self._synced_layer(with_grads=False)(sequence, layer_state)
        return self._cell_state(final)

    def forward(self, x: ArrayLike, state: StateLike = None) -> tuple[State, CellTape]:
        """``__call__`` that keeps what ``backward`` needs: returns (new state, tape)."""
        sequence, layer_state = self._checked_step(x, state, "state")
        _, final, tape = self._synced_layer().forward(sequence, layer_state)
        return self._cell_state(final), CellTape(self, tape, sequence.shape[0])

    def backward(self, tape: CellTape, dstate: StateLike) -> tuple[np.ndarray, State]:
        """Gradients from one ``forward``: ``dstate`` is the gradient of the state it
        returned (shaped like it). Adds the parameter gradients to ``grads``; returns
        ``(dx, dstate0)``, the gradients of x and of the state given to ``forward``."""
        if not isinstance(tape, CellTape) or tape.cell is not self:
            raise ValueError("expected a tape returned by this cell's forward, got one from elsewhere")
        layer = self._synced_layer()
        d_final = self._layer_state(dstate, tape.batch, "dstate")
        if d_final is None:
            raise ValueError("expected dstate, the gradient of the state forward returned, got None")
        # The one output step is the new h: its gradient comes in once, through dstate.
        dy = np.zeros((tape.batch, 1, self.hidden_size), self.dtype)
        dx, d_initial = layer.backward(tape.layer_tape, dy, d_final)
        return dx[:, 0], self._cell_state(d_initial)

    # ----------------------------------------------------------------- helpers

    def _checked_params(self):
        expected = {name.removesuffix(_SUFFIX) for name in self._layer._param_shapes()}
        for source, label in ((self.params, "params"), (self.grads, "grads")):
            if set(source) != expected:
                missing, extra = sorted(expected - set(source)), sorted(set(source) - expected)
                raise ValueError(f"{label} keys do not match the cell: missing {missing}, unexpected {extra}")
        return self.params

    def _synced_layer(self, with_grads=True):
        """The layer, reading this cell's current parameter (and gradient) arrays."""
        layer = self._layer
        layer.params = {name + _SUFFIX: value for name, value in self._checked_params().items()}
        if with_grads:
            layer.grads = {name + _SUFFIX: value for name, value in self.grads.items()}
        return layer

    def _checked_step(self, x, state, name):
        x = as_numeric_array(x, "x")
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"expected x of shape (B, {self.input_size}), got {shape_text(x.shape)}")
        return x[:, None, :], self._layer_state(state, x.shape[0], name)

    def _layer_state(self, state, batch, name):
        """A cell state (each part (B, H)) as the layer's (each part (1, B, H))."""
        if state is None:
            return None
        layer = self._layer
        parts = layer._unpack_state(state, name)
        checked = []
        for part, kind in zip(parts, layer._state_names):
            part = as_numeric_array(part, f"{name} {kind}")
            if part.shape != (batch, self.hidden_size):
                expected = shape_text((batch, self.hidden_size))
                raise ValueError(f"expected {name} {kind} of shape {expected} (B, H), got {shape_text(part.shape)}")
            checked.append(part[None])
        return layer._pack_state(checked)

    def _cell_state(self, layer_state):
        parts = list(layer_state) if isinstance(layer_state, tuple) else [layer_state]
        return self._layer._pack_state([part[0] for part in parts])


def _variant_options(layer):
    """The options of ``layer`` a cell cannot express, by name: those off their defaults."""
    if isinstance(layer, GRU):  # GRUCell is PyTorch's form only, with its activations
        return ({} if layer.reset_after else {"reset_after": False}) | layer._activation_options()
    if not isinstance(layer, LSTM):
        return {}
    defaults = {
        "peephole": False,
        "coupled": False,
        "proj_size": 0,
        "layer_norm": False,
        "recurrent_dropout": 0.0,
        "zoneout": 0.0,
    }
    found = {name: getattr(layer, name) for name, default in defaults.items() if getattr(layer, name) != default}
    return found | layer._activation_options()


class LSTMCell(_Cell):
    """One LSTM step, PyTorch's ``nn.LSTMCell``: ``h, c = cell(x, (h, c))``.

    Parameters ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh`` (4H,),
    gates i, f, g, o; PyTorch's initialisation. ``bias=False``: no biases.
    ``LSTMCell.from_layer(lstm)`` and ``cell.to_layer()`` convert to and from a one-layer
    ``LSTM`` (parameters ``_l0``).
    """

    _layer_class = LSTM


class GRUCell(_Cell):
    """One GRU step, PyTorch's ``nn.GRUCell``: ``h = cell(x, h)``.

    Parameters ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``, ``bias_hh`` (3H,),
    gates r, z, n; PyTorch's initialisation. ``bias=False``: no biases.
    ``GRUCell.from_layer(gru)`` and ``cell.to_layer()`` convert to and from a one-layer
    ``GRU``.
    """

    _layer_class = GRU


class RNNCell(_Cell):
    """One vanilla RNN step, PyTorch's ``nn.RNNCell``: ``h = cell(x, h)``,
    ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)`` with act ``nonlinearity`` ("tanh" or
    "relu", or any activation ``RNN`` takes) and ``clip`` as ``RNN``'s.

    Parameters ``weight_ih`` (H, I), ``weight_hh`` (H, H), ``bias_ih``, ``bias_hh`` (H,);
    PyTorch's initialisation. ``RNNCell.from_layer(rnn)`` and ``cell.to_layer()`` convert
    to and from a one-layer ``RNN``.
    """

    _layer_class = RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str | tuple[str, float, float] = "tanh",
        *,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
        clip: float | None = None,
    ) -> None:
        layer = RNN(input_size, hidden_size, nonlinearity=nonlinearity, bias=bias, dtype=dtype, seed=seed, clip=clip)
        self._adopt(layer)

    @property
    def nonlinearity(self) -> str | tuple[str, float, float]:
        return self._layer.nonlinearity

    @property
    def clip(self) -> float | None:
        return self._layer.clip

    def _layer_options(self):
        return self._options_of(self._layer)

    @classmethod
    def _options_of(cls, layer):
        return {"nonlinearity": layer.nonlinearity} | ({} if layer.clip is None else {"clip": layer.clip})
