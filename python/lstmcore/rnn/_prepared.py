"""``PreparedLayer``: an LSTM, GRU or RNN frozen for inference, called as the layer is.

What a plain call does again each time, it does once: the parameters are checked,
converted and copied (a snapshot), and every layer-direction's core call is built with
its weights object and options. A call that takes the common route (an ndarray of the
layer's dtype, C-contiguous, no ``lengths``, ``ablate`` or ``return_gates``) goes
straight to those calls; any other is the layer's own pass on the snapshot's weights,
with the same checks and errors.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

import lstmcore._core as _core
from lstmcore._typing import ArrayLike, State, StateLike
from lstmcore._util import aligned as _aligned
from lstmcore.rnn._gru import GRU
from lstmcore.rnn._lstm import LSTM
from lstmcore.rnn._recurrent import _DirectionRun, _GatedRecurrent, checked_step_input
from lstmcore.rnn._rnn import RNN

# Outputs up to this size are allocated by NumPy rather than on a cache line (_run).
_SMALL_OUTPUT_BYTES = 16384


def frozen_copy(array: np.ndarray) -> np.ndarray:
    """A copy, starting on a cache line, that NumPy refuses to make writeable again: a
    read-only view of a read-only buffer."""
    copied = _aligned.empty(array.shape, array.dtype)
    copied[...] = array
    copied.flags.writeable = False
    copied.base.flags.writeable = False
    return copied


class PreparedLayer:
    """Inference on a snapshot of ``layer``: ``prepared(x, state)``, ``prepared.step(x_t, state)``.

    Changing the original layer's parameters afterwards (in place or by replacing them)
    does not change the prepared one: prepare it again to take them. The snapshot's
    arrays are read-only. Several Python threads may call one prepared layer at once:
    a call keeps nothing between calls but the read-only weights.
    """

    # The layers it prepares: lstmcore's own, not subclasses, whose overrides would not run.
    KINDS = (LSTM, GRU, RNN)

    def __init__(self, layer: _GatedRecurrent) -> None:
        if not isinstance(layer, _GatedRecurrent):
            raise TypeError(f"expected an lstmcore LSTM, GRU or RNN layer, got {type(layer).__name__}")
        if type(layer) not in self.KINDS:
            raise TypeError(
                f"prepare takes lstmcore's own LSTM, GRU and RNN, got the subclass {type(layer).__name__} "
                "(what it overrides would not run in the snapshot)"
            )
        weights = self._frozen_weights(layer._checked_params(with_grads=False))
        # The layer's configuration with the frozen weights: its own pass serves the calls
        # off the direct route. A shallow copy: the attributes are rebound, never changed in
        # place, after construction, so a later change to the original does not reach it.
        snapshot = copy.copy(layer)
        snapshot.params, snapshot.grads = weights, {}
        weights = self._adapt(snapshot, weights)
        set_attribute = object.__setattr__
        set_attribute(self, "_layer", snapshot)
        set_attribute(self, "_weights", weights)
        set_attribute(self, "_dtype", snapshot.dtype)
        directions = snapshot.num_directions
        # Per layer*D + direction, as the plain pass builds them for inference without traces.
        calls = [
            snapshot._core_call(
                snapshot._direction_params(weights, layer_index, direction),
                snapshot._runs_reversed(direction),
                direction * snapshot.output_size,
                snapshot.batch_first,
                None,
                None,
                0,
                0,
                False,
                False,
            )
            for layer_index in range(snapshot.num_layers)
            for direction in range(directions)
        ]
        set_attribute(self, "_calls", calls)
        set_attribute(self, "_zeros", {})
        narrow = _narrow_stack(snapshot, calls)
        set_attribute(self, "_narrow", narrow)
        # The layer's step refuses both directions and reverse: the route that refuses them too.
        stepping = narrow is not None and not (snapshot.bidirectional or snapshot.reverse)
        set_attribute(self, "_narrow_step", narrow.step if stepping else None)

    def _frozen_weights(self, checked: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The snapshot's weights: frozen copies of the layer's checked parameters."""
        return {name: frozen_copy(value) for name, value in checked.items()}

    def _adapt(self, snapshot: _GatedRecurrent, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The snapshot's weights as its calls will see them; a subclass may change how
        the snapshot builds its core calls here (reduced precision)."""
        return weights

    def __getattr__(self, name: str) -> Any:
        # The layer's configuration (hidden_size, batch_first, dtype, get_config, ...).
        if name.startswith("_") or name in ("forward", "backward", "grads", "zero_grad", "check_tape"):
            raise AttributeError(f"a prepared {type(self._layer).__name__} has no {name!r}: it is for inference only")
        return getattr(self._layer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"a prepared {type(self._layer).__name__} is a snapshot: set {name!r} on the original layer and prepare it again"
        )

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The snapshot's parameters: read-only arrays that NumPy refuses to make writeable."""
        return dict(self._weights)

    def __repr__(self) -> str:
        return f"prepared {self._layer!r}"

    def __call__(
        self,
        x: ArrayLike,
        state: StateLike = None,
        *,
        lengths: ArrayLike | None = None,
        ablate: dict[str, ArrayLike] | None = None,
        return_gates: bool = False,
    ) -> Any:
        """As the layer's call: ``y, state_n`` (and the gate traces with ``return_gates=True``)."""
        layer = self._layer
        if lengths is None and ablate is None and not return_gates:
            # None: x or the state is not in the form the core reads as it is (narrow.cpp).
            result = None if self._narrow is None else self._narrow(x, state)
            if result is not None:
                return result
            if (
                type(x) is np.ndarray
                and x.dtype is self._dtype  # the core takes the canonical dtype objects only
                and x.ndim == 3
                and x.flags.c_contiguous
                and x.flags.aligned
                and x.shape[2] == layer.input_size
                and x.shape[0]
                and x.shape[1]
            ):
                return self._run(x, state)
        y, state_n, tape = layer._forward(
            x, state, lengths, ablate, False, for_backward=False, traced=return_gates, weights=self._weights
        )
        if return_gates:
            return y, state_n, layer.gate_traces(tape)
        return y, state_n

    def step(self, x_t: ArrayLike, state: StateLike = None) -> tuple[np.ndarray, State]:
        """One time step, as the layer's ``step``: x_t (B, I) -> (y_t (B, H), state)."""
        if self._narrow_step is not None:
            # None: x_t or the state is not in the form the core reads as it is (narrow.cpp).
            result = self._narrow_step(x_t, state)
            if result is not None:
                return result
        layer = self._layer
        # Contiguous, so that a step sliced off a batch-first array (x[:, t]) takes the direct route.
        x_t = np.ascontiguousarray(checked_step_input(layer, x_t))
        y, state_n = self(x_t[:, None, :] if layer.batch_first else x_t[None], state)
        return (y[:, 0] if layer.batch_first else y[0]), state_n

    def _run(self, x: np.ndarray, state: StateLike) -> tuple[np.ndarray, State]:
        layer = self._layer
        if self._narrow is not None:  # x is in the core's form and the state is not (__call__)
            result = self._narrow(x, self._core_state(state, x.shape[0] if layer.batch_first else x.shape[1]))
            if result is None:
                raise RuntimeError("lstmcore: a converted state was refused by the narrow path; please report this")
            return result
        batch_first = layer.batch_first
        steps, batch = (x.shape[1], x.shape[0]) if batch_first else x.shape[:2]
        initial = layer._state_parts(state, batch, "state") if state is not None else self._zeros_for(batch)
        directions, width = layer.num_directions, layer.output_size
        shape = ((batch, steps) if batch_first else (steps, batch)) + (directions * width,)
        # A small output (a step, a short sequence at batch 1) is not split between
        # threads: NumPy's own allocation, without the cache-line offset, costs less.
        small = math.prod(shape) * self._dtype.itemsize <= _SMALL_OUTPUT_BYTES
        layer_input, runs, index = x, [], 0
        for _ in range(layer.num_layers):
            y = np.empty(shape, self._dtype) if small else _aligned.empty(shape, self._dtype)
            for direction in range(directions):
                parts = [part[index] for part in initial]
                runs.append(
                    _DirectionRun(
                        layer_input, y, direction * width, self._calls[index].run(layer_input, parts, y), batch_first
                    )
                )
                index += 1
            layer_input = y
        if len(runs) == 1 and not layer._runs_reversed(0):
            # One layer-direction running forwards: the final h is the last step's row.
            h_n = (y[:, -1] if batch_first else y[-1])[None].copy()
            return y, layer._pack_state([h_n, *(part[None].copy() for part in layer._final_tape_states(runs[0].tape))])
        return layer_input, layer._pack_state(layer._final_state(runs, None))

    def _core_state(self, state: StateLike, batch: int) -> State:
        """The state converted by the layer's checks into the form the core reads as it is
        (NumPy's own arrays: a subclass's data as an ndarray)."""
        layer = self._layer
        return layer._pack_state([np.asarray(part) for part in layer._state_parts(state, batch, "state")])

    def _zeros_for(self, batch: int) -> list[np.ndarray]:
        """Zero initial states of this batch size, read-only (the core only reads them)."""
        zeros = self._zeros.get(batch)
        if zeros is None:
            zeros = [np.zeros(shape, self._dtype) for shape in self._layer._state_shapes(batch)]
            for part in zeros:
                part.flags.writeable = False
            if len(self._zeros) < 8:  # the first eight batch sizes; any other is made per call
                self._zeros[batch] = zeros
        return zeros


class BorrowedLayer(PreparedLayer):
    """A PreparedLayer that reads the layer's parameters where they are, without copies,
    for the calls of one ``Sequential.predict``: no snapshot, so not for the user (a
    change to the layer's arrays in place would reach these calls but not the weights
    packed for them)."""

    def _frozen_weights(self, checked: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return checked


# The core's forwards and their narrow passes (cpp/bindings/narrow.hpp): the same forward
# bound once to everything but its arrays.
_NARROW_PASSES: dict[Any, Any] = {
    _core.lstm_forward: _core.lstm_narrow_pass,
    _core.projected_lstm_forward: _core.projected_lstm_narrow_pass,
    _core.gru_forward: _core.gru_narrow_pass,
    _core.rnn_forward: _core.rnn_narrow_pass,
    _core.reduced_lstm_forward: _core.reduced_lstm_narrow_pass,
    _core.reduced_projected_lstm_forward: _core.reduced_lstm_narrow_pass,
    _core.reduced_gru_forward: _core.reduced_gru_narrow_pass,
    _core.reduced_rnn_forward: _core.reduced_rnn_narrow_pass,
}


def _narrow_stack(layer: _GatedRecurrent, calls: list[Any]) -> Any:
    """The layer's calls as one NarrowStack (the direct route's whole pass in one call into
    the core), or None where a kind has no narrow pass (the layer-normalised LSTM): then
    the calls run one by one from Python."""
    if any(call.function not in _NARROW_PASSES for call in calls):
        return None
    passes = [_NARROW_PASSES[call.function](call.weights, call.pass_options, *call.args, **call.kwargs) for call in calls]
    cell_width = layer.hidden_size if len(layer._state_names) > 1 else 0
    return _core.NarrowStack(
        passes, layer.num_layers, layer.num_directions, layer.batch_first, layer.output_size, cell_width, layer.dtype
    )
