"""NumPy reference of every recurrent cell, forward and backward: the specification.

Written to be read, not to be fast: one function per cell kind and pass, the equations in
the docstring, the shapes in comments, one time step per loop iteration. The tests hold
the C++ core to it and the benchmarks time it as the NumPy baseline.

Conventions:

- One layer and one direction per cell function, time-major: x is (T, B, I), the
  outputs y are (T, B, H). A cell always runs forwards in time; the driver
  (``rnn_forward``) feeds the reverse direction the time-reversed sequence.
- Parameters exactly as PyTorch's ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``: ``weight_ih`` (G*H, I),
  ``weight_hh`` (G*H, H), ``bias_ih`` and ``bias_hh`` (G*H,), the G gates stacked in
  PyTorch's order; the variants add lstmcore's names (``weight_peephole``,
  ``weight_hr``, ``layer_norm_ih_weight``, ...; README, "LSTM variants").
- Everything is computed in x's floating dtype (float32 or float64); weights and states
  are cast to it.
- A backward returns *fresh* arrays (a dict of gradients); it never accumulates into the
  caller's buffers. Summing over calls, if wanted, is the caller's business.

Where the cells are, one file per cell family: the LSTM with its variants (projected,
peephole, coupled, coupled with peepholes) in ``_lstm.py``, the layer-normalised LSTM in
``_layer_norm_lstm.py``, the GRU in ``_gru.py``, the vanilla RNN in ``_rnn.py``; what they
share (``sigmoid``, ``layer_norm``, the LSTM options
``CellOptions``: gate clamps, recurrent dropout, zoneout) in ``_ops.py``; the activations
chosen by name with ONNX's clip (``Activations``, the ``activations=`` of the plain LSTM
and the GRU) in ``_activations.py``; the table of
cells and the stacked, bidirectional driver in ``_stack.py``; the model of the core's
reduced-precision (int8, bfloat16) products and forwards in ``_reduced.py``. Import all
of them from here.

A new cell kind is a ``<kind>_forward`` / ``<kind>_backward`` pair in its family's file and
one entry in ``cells``; the driver needs nothing else.
"""

from lstmcore.reference._activations import ACTIVATIONS, Activations, activation
from lstmcore.reference._gru import gru_backward, gru_forward
from lstmcore.reference._layer_norm_lstm import layer_norm_lstm_backward, layer_norm_lstm_forward
from lstmcore.reference._lstm import (
    coupled_lstm_backward,
    coupled_lstm_forward,
    lstm_backward,
    lstm_forward,
    peephole_coupled_lstm_backward,
    peephole_coupled_lstm_forward,
    peephole_lstm_backward,
    peephole_lstm_forward,
    projected_lstm_backward,
    projected_lstm_forward,
)
from lstmcore.reference._ops import CellOptions, layer_norm, layer_norm_backward, sigmoid
from lstmcore.reference._reduced import (
    reduced_gru_forward,
    reduced_lstm_forward,
    reduced_product,
    reduced_rnn_forward,
)
from lstmcore.reference._rnn import vanilla_rnn_backward, vanilla_rnn_forward
from lstmcore.reference._stack import Cell, cells, rnn_backward, rnn_forward

__all__ = [
    "ACTIVATIONS",
    "Activations",
    "activation",
    "sigmoid",
    "layer_norm",
    "layer_norm_backward",
    "CellOptions",
    "lstm_forward",
    "lstm_backward",
    "projected_lstm_forward",
    "projected_lstm_backward",
    "peephole_lstm_forward",
    "peephole_lstm_backward",
    "coupled_lstm_forward",
    "coupled_lstm_backward",
    "peephole_coupled_lstm_forward",
    "peephole_coupled_lstm_backward",
    "layer_norm_lstm_forward",
    "layer_norm_lstm_backward",
    "gru_forward",
    "gru_backward",
    "vanilla_rnn_forward",
    "vanilla_rnn_backward",
    "reduced_product",
    "reduced_lstm_forward",
    "reduced_gru_forward",
    "reduced_rnn_forward",
    "Cell",
    "cells",
    "rnn_forward",
    "rnn_backward",
]
