"""The recurrent layer a training command builds, chosen with ``--cell``."""

from __future__ import annotations

import lstmcore

LAYERS = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU, "rnn": lstmcore.RNN}


def recurrent_layer(cell, input_size, hidden, layers, seed):
    """The ``cell`` layer ("lstm", "gru" or "rnn": tanh) of ``layers`` stacked layers."""
    return LAYERS[cell](input_size, hidden, num_layers=layers, seed=seed)


def layer_text(cell, input_size, hidden, layers):
    """How the model line names the layer: ``GRU(1, 64, num_layers=1)``."""
    return f"{LAYERS[cell].__name__}({input_size}, {hidden}, num_layers={layers})"
