"""``ReducedLayer``: a prepared LSTM, GRU or RNN whose weight matrices are held in int8 or
bfloat16.

It is a ``PreparedLayer`` whose snapshot builds its core calls on the core's reduced
kernels: each layer-direction's W_ih and W_hh are reduced once (``_quantization``) and
packed once (``_core.ReducedMatrix``); biases and peepholes stay float32, and so do the
states and outputs. It keeps no float32 copy of the matrices: its ``params`` restore the
values the reduced weights stand for when asked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import lstmcore._core as _core
from lstmcore._typing import ArrayLike, StateLike
from lstmcore.inference._quantization import checked_precision, reduce_matrix, restored
from lstmcore.rnn import GRU, LSTM, RNN
from lstmcore.rnn._prepared import PreparedLayer, frozen_copy
from lstmcore.rnn._recurrent import _GatedRecurrent

# The float32 forward each reduced one stands in for.
_REDUCED_FORWARD = {
    _core.lstm_forward: _core.reduced_lstm_forward,
    _core.projected_lstm_forward: _core.reduced_projected_lstm_forward,
    _core.gru_forward: _core.reduced_gru_forward,
    _core.rnn_forward: _core.reduced_rnn_forward,
}
_MATRICES = ("weight_ih", "weight_hh", "weight_hr")

# (values, scales) of one weight matrix: int8 with float32 row scales, or bfloat16 bits
# (uint16) with None.
Reduced = tuple[np.ndarray, "np.ndarray | None"]


def _is_matrix(name: str) -> bool:
    return name.startswith(tuple(f"{kind}_" for kind in _MATRICES))


def _unsupported(layer: _GatedRecurrent) -> str | None:
    """Why ``layer`` has no reduced form, or None."""
    if type(layer) not in (LSTM, GRU, RNN):
        return f"expected lstmcore's own LSTM, GRU or RNN, got the subclass {type(layer).__name__}"
    if getattr(layer, "layer_norm", False):
        return "the layer-normalised LSTM has no reduced-precision kernel"
    if isinstance(layer, GRU) and not layer.reset_after:
        return "the GRU with the reset gate before W_hn (reset_after=False) has no reduced-precision kernel"
    if isinstance(layer, GRU) and layer._chosen_activations() is not None:
        return "the GRU with chosen activations or clip has no reduced-precision kernel"
    if isinstance(layer, RNN) and (layer.nonlinearity not in ("tanh", "relu") or layer.clip):
        return "the RNN has a reduced-precision kernel for nonlinearity 'tanh' or 'relu' without clip only"
    if layer.dtype != np.float32:
        return f"reduced precision computes in float32: expected a float32 layer, got {layer.dtype}"
    return None


class ReducedLayer(PreparedLayer):
    """Inference on a snapshot of ``layer`` with its weight matrices in ``precision``
    ('int8' or 'bfloat16'), called as the layer is (``quantize`` makes it).

    ``stored``: the reduced matrices by parameter name, as a model file keeps them; None
    reduces the layer's own.
    """

    def __init__(self, layer: _GatedRecurrent, precision: str, stored: dict[str, Reduced] | None = None) -> None:
        object.__setattr__(self, "_precision", checked_precision(precision))
        object.__setattr__(self, "_stored", stored)
        if isinstance(layer, _GatedRecurrent) and (reason := _unsupported(layer)):
            raise ValueError(f"cannot quantize {type(layer).__name__}: {reason}")
        super().__init__(layer)

    def _frozen_weights(self, checked: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # The weight matrices are reduced (_adapt) from the layer's own arrays, not copies.
        return {name: value if _is_matrix(name) else frozen_copy(value) for name, value in checked.items()}

    def _adapt(self, snapshot: _GatedRecurrent, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        precision, stored = self._precision, self._stored
        reduced: dict[str, Reduced] = {}
        matrices: dict[str, Any] = {}
        weights = dict(weights)
        kinds = snapshot._param_kinds()
        directions = [
            (layer, direction) for layer in range(snapshot.num_layers) for direction in range(snapshot.num_directions)
        ]
        for layer, direction in directions:
            for kind, name in zip(kinds, snapshot._param_names(layer, direction)):
                if kind not in _MATRICES:
                    continue
                values, scales = stored[name] if stored is not None else reduce_matrix(weights[name], precision)
                reduced[name] = (frozen_copy(values), None if scales is None else frozen_copy(scales))
                matrices[name] = _core.ReducedMatrix(precision, values, scales)
                # No float32 copy is kept: the snapshot's call-building reads only the
                # matrix's shape, from a zero-stride placeholder; ``params`` restores
                # the values when asked.
                weights[name] = np.broadcast_to(np.zeros((), np.float32), weights[name].shape)
        table = {}
        for layer, direction in directions:
            found = snapshot._direction_params(weights, layer, direction)
            names = dict(zip(kinds, snapshot._param_names(layer, direction)))
            table[layer, direction] = _core.ReducedWeights(
                matrices[names["weight_ih"]],
                matrices[names["weight_hh"]],
                found["bias_ih"],
                found["bias_hh"],
                found.get("weight_peephole"),
                matrices[names["weight_hr"]] if "weight_hr" in names else None,
            )
        object.__setattr__(self, "_reduced", reduced)
        snapshot.params = weights
        _route_to_reduced_kernels(snapshot, table)
        return weights

    @property
    def precision(self) -> str:
        """'int8' or 'bfloat16'."""
        return self._precision

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The float32 values the snapshot's weights stand for (the reduced matrices
        restored, made at each access), read-only."""
        params = {}
        for name, value in self._weights.items():
            if name in self._reduced:
                value = restored(*self._reduced[name])
                value.flags.writeable = False
            params[name] = value
        return params

    @property
    def reduced_params(self) -> dict[str, Reduced]:
        """The weight matrices as the kernels hold them, by parameter name: (int8 values,
        float32 row scales) or (bfloat16 bits as uint16, None); read-only arrays."""
        return dict(self._reduced)

    def __repr__(self) -> str:
        return f"{self._precision} {self._layer!r}"

    def __call__(
        self,
        x: ArrayLike,
        state: StateLike = None,
        *,
        lengths: ArrayLike | None = None,
        ablate: dict[str, ArrayLike] | None = None,
        return_gates: bool = False,
    ) -> Any:
        """As the layer's call: ``y, state_n``. Gate traces are the float32 layer's
        (``return_gates``): the reduced kernels keep none."""
        if return_gates:
            raise ValueError(f"a {self._precision} layer keeps no gate traces: call the float32 layer with return_gates=True")
        return super().__call__(x, state, lengths=lengths, ablate=ablate)


def _route_to_reduced_kernels(snapshot: _GatedRecurrent, table: dict[tuple[int, int], Any]) -> None:
    """Makes ``snapshot`` build its core calls on the reduced kernels: its parameters of a
    layer-direction carry that direction's reduced weights, and each call the layer builds
    (kernel options, layout, lengths, clamps: all its own) runs the reduced forward on
    them. Set on this one snapshot, which nothing else holds."""
    direction_params, core_call = snapshot._direction_params, snapshot._core_call

    def reduced_direction_params(source, layer, direction):
        found = direction_params(source, layer, direction)
        found["reduced"] = table[layer, direction]
        return found

    def reduced_core_call(weights, *args):
        call = core_call(weights, *args)
        call.function, call.weights = _REDUCED_FORWARD[call.function], weights["reduced"]
        return call

    snapshot._direction_params = reduced_direction_params  # type: ignore[method-assign]
    snapshot._core_call = reduced_core_call
