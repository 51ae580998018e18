"""PyTorch cells for the LSTM variants nn.LSTM does not offer, run the usual way.

The usual PyTorch recipe for a custom recurrent cell is an ``nn.Module`` that does one
step, called from a Python loop over time (``LoopRNN`` below); autograd records every
step. That recipe is what a user of these variants would otherwise run, so it is what
the benchmarks time them against.

Shapes: x (B, I); h, c (B, H); gates (B, 4H) in PyTorch's order i, f, g, o.
Parameters are flat ``nn.Parameter``s (no submodules) with lstmcore's names and shapes
(its ``params`` keys without the ``_l0`` suffix), so the same weights load into both.
Every parameter starts uniform in +-1/sqrt(H), PyTorch's default, except the layer-norm
gains (ones) and offset (zeros).

This file is for benchmarking only; lstmcore itself never imports torch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _uniform(shape, hidden_size):
    bound = 1.0 / math.sqrt(hidden_size)
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


class PeepholeLSTMCell(nn.Module):
    """LSTM with diagonal peephole connections (Gers & Schmidhuber, 2000).

    The input and forget gates see the previous cell, the output gate sees the new one:

        i = sigmoid(W_ii x + b_ii + W_hi h + b_hi + p_i * c_prev)
        f = sigmoid(W_if x + b_if + W_hf h + b_hf + p_f * c_prev)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        c = f * c_prev + i * g
        o = sigmoid(W_io x + b_io + W_ho h + b_ho + p_o * c)
        h = o * tanh(c)

    weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H,) exactly as nn.LSTM;
    weight_peephole (3, H) holds the diagonal peephole weights p_i, p_f, p_o (``*`` is
    element-wise). With the peephole weights at zero this is nn.LSTMCell.
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        gates = 4 * hidden_size
        self.weight_ih = _uniform((gates, input_size), hidden_size)
        self.weight_hh = _uniform((gates, hidden_size), hidden_size)
        self.bias_ih = _uniform((gates,), hidden_size)
        self.bias_hh = _uniform((gates,), hidden_size)
        self.weight_peephole = _uniform((3, hidden_size), hidden_size)

    def forward(self, x, state):
        hidden_prev, cell_prev = state
        gates = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(hidden_prev, self.weight_hh, self.bias_hh)
        i, f, g, o = gates.chunk(4, dim=1)
        p_i, p_f, p_o = self.weight_peephole
        input_gate = torch.sigmoid(i + p_i * cell_prev)
        forget_gate = torch.sigmoid(f + p_f * cell_prev)
        cell = forget_gate * cell_prev + input_gate * torch.tanh(g)
        output_gate = torch.sigmoid(o + p_o * cell)
        return output_gate * torch.tanh(cell), cell


class LayerNormLSTMCell(nn.Module):
    """Layer-normalised LSTM (Ba, Kiros & Hinton, 2016), lstmcore's formulation.

    The input and the recurrent pre-activations of all four gates are normalised
    separately, each over its whole 4H vector, and the cell is normalised before tanh:

        gates = LN(W_ih x) * g_ih + LN(W_hh h) * g_hh + b_ih + b_hh       (B, 4H)
        i, f, o = sigmoid(gates_i, gates_f, gates_o);  g = tanh(gates_g)
        c = f * c_prev + i * g
        h = o * tanh(LN(c) * g_c + beta_c)

    where LN(v) = (v - mean(v)) / sqrt(var(v) + eps) over the last axis, with the biased
    variance and eps = 1e-5 (as nn.LayerNorm).

    weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,) as nn.LSTM;
    layer_norm_ih_weight, layer_norm_hh_weight (4H,); layer_norm_cell_weight,
    layer_norm_cell_bias (H,).
    """

    eps = 1e-5

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        gates = 4 * hidden_size
        self.weight_ih = _uniform((gates, input_size), hidden_size)
        self.weight_hh = _uniform((gates, hidden_size), hidden_size)
        self.bias_ih = _uniform((gates,), hidden_size)
        self.bias_hh = _uniform((gates,), hidden_size)
        self.layer_norm_ih_weight = nn.Parameter(torch.ones(gates))
        self.layer_norm_hh_weight = nn.Parameter(torch.ones(gates))
        self.layer_norm_cell_weight = nn.Parameter(torch.ones(hidden_size))
        self.layer_norm_cell_bias = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x, state):
        hidden_prev, cell_prev = state
        gates_width = (4 * self.hidden_size,)
        gates = (
            F.layer_norm(F.linear(x, self.weight_ih), gates_width, self.layer_norm_ih_weight, None, self.eps)
            + F.layer_norm(F.linear(hidden_prev, self.weight_hh), gates_width, self.layer_norm_hh_weight, None, self.eps)
            + self.bias_ih
            + self.bias_hh
        )
        i, f, g, o = gates.chunk(4, dim=1)
        cell = torch.sigmoid(f) * cell_prev + torch.sigmoid(i) * torch.tanh(g)
        normed_cell = F.layer_norm(
            cell, (self.hidden_size,), self.layer_norm_cell_weight, self.layer_norm_cell_bias, self.eps
        )
        return torch.sigmoid(o) * torch.tanh(normed_cell), cell


class LoopRNN(nn.Module):
    """One LSTM-like layer: ``cell`` called once per time step from a Python loop.

    x is (B, T, I) (batch first, as the benchmarks run nn.LSTM); returns y (B, T, H) and
    the final (h, c), like nn.LSTM with batch_first=True and one unidirectional layer.
    """

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, x, state=None):
        batch, steps, _ = x.shape
        if state is None:
            zeros = x.new_zeros(batch, self.cell.hidden_size)
            state = (zeros, zeros)
        outputs = []
        for t in range(steps):
            state = self.cell(x[:, t], state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1), state
