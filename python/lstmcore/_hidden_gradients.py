"""dL/dh_t at every step of a recurrent layer: how much of the loss's gradient reaches each
hidden state, the quantity that vanishes in a vanilla RNN and that the LSTM's additive cell
carries. ``lstmcore.microscope.hidden_gradients`` (``lstmcore.inspect.hidden_gradients``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from lstmcore.rnn import GRU, LSTM, RNN

__all__ = ["hidden_gradients"]


def hidden_gradients(
    layer: Any, x: ArrayLike, dy: ArrayLike, state: Any = None, dstate: Any = None, *, lengths: ArrayLike | None = None
) -> np.ndarray:
    """G (num_layers * D, T, B, P): G[k, t] = dL/dh_t of layer-direction k (index
    layer * D + direction, as the state), the total gradient of the loss with respect to
    the hidden state h_t as it is carried on: its part of dy plus all that reaches h_t from
    the later steps (for a reverse direction, the earlier ones).

    layer: an ``lstmcore.LSTM``, ``GRU`` or ``RNN`` with any options (P is its hidden size,
    or the LSTM's ``proj_size``). x, dy: in the layer's layout, (B, T, I) and (B, T, D*P)
    when ``batch_first``; dy is dL/dy. state, dstate, lengths: as ``forward`` and
    ``backward`` take them. G is time-major like the gate traces, in the layer's dtype,
    zero on padding steps. The layer runs as in inference (``training=False``: no dropout
    masks); its ``grads`` are left as they were.

    One forward and one backward: G is what ``backward(..., return_hidden_gradients=True)``
    records on its way through the steps, so it costs about one training step.
    """
    if type(layer) not in (LSTM, GRU, RNN):
        raise ValueError(f"expected an lstmcore.LSTM, GRU or RNN layer, got {type(layer).__name__}")
    saved_grads = {name: grad.copy() for name, grad in layer.grads.items()}
    try:
        _, _, tape = layer.forward(x, state, lengths=lengths, training=False)
        _, _, gradients = layer.backward(tape, dy, dstate, return_hidden_gradients=True)
    finally:
        for name, grad in layer.grads.items():
            grad[...] = saved_grads[name]
    return gradients
