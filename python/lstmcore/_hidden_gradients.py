"""dL/dh_t at every step of a recurrent layer: how much of the loss's gradient reaches each
hidden state, the quantity that vanishes in a vanilla RNN and that the LSTM's additive cell
carries. ``lstmcore.microscope.hidden_gradients`` (``lstmcore.inspect.hidden_gradients``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from lstmcore._util.checks import as_numeric_array
from lstmcore.rnn import GRU, LSTM, RNN

__all__ = ["hidden_gradients"]


def _check_layer(layer: Any) -> None:
    if type(layer) not in (LSTM, GRU, RNN):
        raise ValueError(f"expected an lstmcore.LSTM, GRU or RNN layer, got {type(layer).__name__}")
    if layer.num_layers != 1 or layer.bidirectional or layer.reverse:
        raise ValueError(
            "expected a layer of one layer and one direction running forward in time, got "
            f"num_layers={layer.num_layers}, bidirectional={layer.bidirectional}, reverse={layer.reverse}"
        )


def _time_major(array: np.ndarray, batch_first: bool) -> np.ndarray:
    """(B, T, F) -> (T, B, F) view when batch_first; time-major arrays as they are."""
    return array.transpose(1, 0, 2) if batch_first else array


def _steps_from(array: np.ndarray, start: int, batch_first: bool) -> np.ndarray:
    """The steps start, start + 1, ... of an array in the layer's layout."""
    return array[:, start:] if batch_first else array[start:]


def _hidden_part(state: Any) -> np.ndarray:
    """The h of a state or of a state gradient, (1, B, P) -> (B, P): the LSTM's first array."""
    return as_numeric_array(state[0] if isinstance(state, tuple) else state, "state")[0]


def hidden_gradients(layer: Any, x: ArrayLike, dy: ArrayLike, state: Any = None, dstate: Any = None) -> np.ndarray:
    """G (T, B, P): G[t] = dL/dh_t, the total gradient of the loss with respect to the hidden
    state h_t as it is carried forward: dy_t plus all that reaches h_t from the later steps.

    layer: a one-layer, one-direction ``lstmcore.LSTM``, ``GRU`` or ``RNN`` (P is its
    hidden size, or the LSTM's ``proj_size``). x, dy: in the layer's layout, (B, T, I) and
    (B, T, P) when ``batch_first``; dy is dL/dy. state: the initial state, as ``forward``
    takes it. dstate: None or dL/d(final state), as ``backward`` takes it; its h part is
    added to G[T-1]. G is time-major like the gate traces, in the layer's dtype. The layer
    runs as in inference (``training=False``: no dropout masks); its ``grads`` are left as
    they were.

    Exact, and through the public forward/backward only: for each t the layer runs from
    the carried state (h_t, and c_t from the gate traces) over the steps after t, and its
    backward gives the gradient of that state. That is T - 1 passes over suffixes, O(T^2)
    steps in all: meant for looking at a model, not for training.
    """
    _check_layer(layer)
    x = as_numeric_array(x, "x")
    dy = as_numeric_array(dy, "dy")
    saved_grads = {name: grad.copy() for name, grad in layer.grads.items()}
    try:
        y, _, tape = layer.forward(x, state, training=False)
        layer.backward(tape, dy, dstate)  # the layer's own checks of dy's and dstate's shapes
        hidden = _time_major(y, layer.batch_first)  # (T, B, P): h_t is y_t
        cell = layer.gate_traces(tape)[0]["cell"] if isinstance(layer, LSTM) else None  # (T, B, H)
        gradients = np.array(_time_major(dy, layer.batch_first), dtype=layer.dtype)
        steps = gradients.shape[0]
        if dstate is not None:
            gradients[steps - 1] += _hidden_part(dstate)
        for t in range(steps - 1):
            carried = hidden[t][None] if cell is None else (hidden[t][None], cell[t][None])
            _, _, suffix_tape = layer.forward(_steps_from(x, t + 1, layer.batch_first), carried, training=False)
            _, d_carried = layer.backward(suffix_tape, _steps_from(dy, t + 1, layer.batch_first), dstate)
            gradients[t] += _hidden_part(d_carried)
    finally:
        for name, grad in layer.grads.items():
            grad[...] = saved_grads[name]
    return gradients
