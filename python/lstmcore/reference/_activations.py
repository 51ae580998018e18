"""Activations chosen by name and ONNX's clip (the LSTM/GRU/RNN operators' activations,
activation_alpha, activation_beta and clip), for the cells that take ``activations=``.
Part of ``lstmcore.reference`` (import it from there).
"""

from __future__ import annotations

import numpy as np

from lstmcore.reference._ops import sigmoid

# Every activation by name; hard_sigmoid takes (alpha, beta), ONNX's defaults here.
ACTIVATIONS = ("sigmoid", "tanh", "relu", "hard_sigmoid", "linear", "softsign")
HARD_SIGMOID = (0.2, 0.5)


def activation(spec, x):
    """(f(x), f'(x)) for spec a name of ``ACTIVATIONS`` or ("hard_sigmoid", alpha, beta)::

    sigmoid       σ(x)                            σ(1 - σ)
    tanh          tanh(x)                         1 - tanh^2
    relu          max(x, 0)                       1 where x > 0, else 0
    hard_sigmoid  min(max(alpha x + beta, 0), 1)  alpha where 0 < alpha x + beta < 1, else 0
    linear        x                               1
    softsign      x / (1 + |x|)                   1 / (1 + |x|)^2
    """
    name, alpha, beta = (spec, *HARD_SIGMOID) if isinstance(spec, str) else spec
    dtype = x.dtype.type
    if name == "sigmoid":
        s = sigmoid(x)
        return s, s * (1 - s)
    if name == "tanh":
        t = np.tanh(x)
        return t, 1 - t * t
    if name == "relu":
        return np.maximum(x, 0), (x > 0).astype(x.dtype)
    if name == "hard_sigmoid":
        line = dtype(alpha) * x + dtype(beta)
        return np.clip(line, 0, 1), np.where((line > 0) & (line < 1), dtype(alpha), dtype(0))
    if name == "linear":
        return x, np.ones_like(x)
    if name == "softsign":
        denominator = 1 + np.abs(x)
        return x / denominator, 1 / (denominator * denominator)
    raise ValueError(f"expected an activation among {', '.join(ACTIVATIONS)}, got {name!r}")


class Activations:
    """The activations of one cell and ONNX's clip; each activation a name or
    ("hard_sigmoid", alpha, beta).

    gate: LSTM i, f, o; GRU r, z.  candidate: LSTM g; GRU n.  output: LSTM h = o * output(c_t).
    clip: None, or c > 0: every gate pre-activation a enters its activation as
    min(max(a, -c), c), so its gradient is zero where |a| > c. c_t is not clipped.
    """

    def __init__(self, gate="sigmoid", candidate="tanh", output="tanh", clip=None):
        self.gate_spec, self.candidate_spec, self.output_spec, self.clip = gate, candidate, output, clip

    def _clipped(self, spec, a):
        if self.clip is None:
            return activation(spec, a)
        limit = a.dtype.type(self.clip)
        value, slope = activation(spec, np.clip(a, -limit, limit))
        return value, np.where(np.abs(a) > limit, a.dtype.type(0), slope)

    def gate(self, a):
        """(value, d value / d a) of a sigmoid-like gate."""
        return self._clipped(self.gate_spec, a)

    def candidate(self, a):
        return self._clipped(self.candidate_spec, a)

    def output(self, c):
        return activation(self.output_spec, c)
