"""Layers and states for tests that drive lstmcore.LSTM and lstmcore.GRU alike."""

import numpy as np

import lstmcore


def gate_blocks(variant):
    """Gate blocks (rows of W_ih over H) of a variant (tests/_variants.py): 3 for the GRU and the
    coupled LSTM, 4 for the others."""
    return 3 if variant in ("gru", "coupled") else 4


def input_size_past_dx_threshold(gates, hidden, dtype, threads=2):
    """An input size at which each of ``threads`` threads holding its share of the inputs
    packs a slice of W_ih over the core's per_step_input_gradient_bytes, so that the
    backward computes dx after its time loop (64 inputs of margin for the panel padding
    and an uneven split)."""
    itemsize = np.dtype(dtype).itemsize
    return threads * (lstmcore._core.diagnostics.per_step_input_gradient_bytes // (gates * hidden * itemsize) + 64)


def pass_split(batch, input_size, hidden, gates, dtype, backward, lengths=None):
    """(threads, 'units' or 'batch'): how the core splits an LSTM (4 gates) or GRU (3) pass
    of this shape, with ``lengths`` (B,) as the layer would pass them (sorted)."""
    batch_sizes = None
    if lengths is not None:
        lengths = np.asarray(lengths)
        batch_sizes = np.array([(lengths > t).sum() for t in range(lengths.max())], np.int64)
    itemsize = np.dtype(dtype).itemsize
    return lstmcore._core.diagnostics.pass_plan(batch, input_size, hidden, gates, itemsize, backward, batch_sizes)


def move_off_initialisation(layer, seed):
    """Adds uniform(-0.3, 0.3) to every parameter (in place) and returns the layer.

    Layer-norm gains start at 1 and biases at 0: a mix-up between two of them would not
    show at the initial values.
    """
    rng = np.random.default_rng(seed + 1000)
    for value in layer.params.values():
        value += rng.uniform(-0.3, 0.3, size=value.shape).astype(layer.dtype)
    return layer


def state_list(state):
    """A layer state (h, or (h, c)) as a list of arrays."""
    return list(state) if isinstance(state, tuple) else [state]


def layer_state(layer, parts):
    """A list of state arrays in the layer's own form: (h, c) for an LSTM, h for a GRU."""
    return tuple(parts) if isinstance(layer, lstmcore.LSTM) else parts[0]


def random_state(layer, batch, rng):
    """A random state (or state gradient) of the layer, in the layer's form and dtype."""
    count = layer.num_layers * layer.num_directions
    sizes = [layer.output_size] + ([layer.hidden_size] if isinstance(layer, lstmcore.LSTM) else [])
    return layer_state(layer, [rng.normal(size=(count, batch, size)).astype(layer.dtype) for size in sizes])
