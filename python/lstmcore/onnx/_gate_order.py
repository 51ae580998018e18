"""How ONNX's recurrent operators lay out what lstmcore's layers hold (the ONNX operator
specifications of LSTM, GRU and RNN): gate blocks, peephole rows and activation names.
Shared by export and load, so that the two directions cannot disagree.
"""

from __future__ import annotations

# ONNX stacks an operator's gate blocks in its own order, lstmcore in PyTorch's. For each
# ONNX block, the lstmcore block it holds: LSTM i, o, f, c <- i, f, g, o; GRU z, r, h <-
# r, z, n; RNN one block.
ONNX_BLOCKS = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}
# A coupled LSTM holds three blocks, i, g, o (f = 1 - i): for each ONNX block, the
# lstmcore block, or None for ONNX's forget block, which input_forget=1 leaves unread.
COUPLED_ONNX_BLOCKS = (0, 2, None, 1)
# ONNX's P rows p_i, p_o, p_f; lstmcore's weight_peephole rows p_i, p_f, p_o (p_i, p_o
# when coupled, ONNX's p_f then unread).
ONNX_PEEPHOLE_ROWS = (0, 2, 1)
COUPLED_ONNX_PEEPHOLE_ROWS = (0, 1, None)

# lstmcore's activation names and ONNX's.
ONNX_ACTIVATIONS = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "Relu",
    "hard_sigmoid": "HardSigmoid",
    "linear": "Affine",
    "softsign": "Softsign",
}
