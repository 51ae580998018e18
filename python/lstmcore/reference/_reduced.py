"""NumPy model of the core's reduced-precision products (cpp/include/lstmcore/
reduced_precision.hpp): what ``a W^T`` gives when W is held in int8 or bfloat16 and each
row of the activations a is converted just before the product.

int8: a row is quantized with its own scale, ``q_a = round(a * (127 / max|a|))`` and
``scale_a = max|a| / 127`` (float32 arithmetic, ties to even), the integer sums are
exact, and each output is ``float32(sum) * (scale_a * scale_w[j])``. bfloat16: a is
rounded to bfloat16, and the products are added to a float32 sum two depths at a time,
the odd one first, as AVX512_BF16's dot product does.
"""

from __future__ import annotations

import numpy as np

from lstmcore.reference._ops import sigmoid


def quantized_rows(a):
    """(q (rows, depth) int32, scale (rows,) float32) of float32 rows a."""
    a = np.asarray(a, np.float32)
    largest = np.abs(a).max(axis=1)
    finite = np.isfinite(a).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inverse = (np.float32(127) / largest).astype(np.float32)
        # Rows of zeros, or so small that 127 / max|a| overflows: q = 0 and scale 0.
        usable = finite & np.isfinite(inverse)
        q = np.clip(np.rint(a * np.where(usable, inverse, np.float32(0))[:, None]), -127, 127)
    q = np.where(usable[:, None], q, 0).astype(np.int32)
    # A row holding NaN or inf: scale NaN, so that its products are NaN, as float32's.
    scale = np.where(finite, np.where(usable, largest / np.float32(127), np.float32(0)), np.float32(np.nan))
    return q, scale.astype(np.float32)


def bfloat16_values(a):
    """float32 a rounded to bfloat16 (nearest even), as float32."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32)
    return rounded.view(np.float32)


def int8_product(a, q_w, scale_w):
    """a (rows, depth) float32 times W^T, W = q_w (cols, depth) int8 * scale_w[:, None]."""
    q_a, scale_a = quantized_rows(a)
    sums = q_a @ np.asarray(q_w, np.int32).T  # exact: |sum| < 2**31 for depth <= 65535
    return sums.astype(np.float32) * (scale_a[:, None] * np.asarray(scale_w, np.float32)[None, :])


def bfloat16_product(a, w):
    """a (rows, depth) float32 times W^T (W float32 (cols, depth)), both in bfloat16."""
    a16, w16 = bfloat16_values(a), bfloat16_values(w)
    depth = a16.shape[1]
    total = np.zeros((a16.shape[0], w16.shape[0]), np.float32)
    for k in range(0, depth, 2):
        if k + 1 < depth:
            total = total + a16[:, k + 1, None] * w16[None, :, k + 1]
        total = total + a16[:, k, None] * w16[None, :, k]
    return total


def reduced_product(a, values, scales):
    """a times W^T for W held as ``reduce_matrix`` stores it: int8 values with row
    scales, or bfloat16 bits (uint16) with scales None."""
    values = np.asarray(values)
    if scales is not None:
        return int8_product(a, values, scales)
    return bfloat16_product(a, (values.astype(np.uint32) << 16).view(np.float32))


def reduced_lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, weight_hr=None):
    """The plain LSTM (one layer and direction, time-major x (T, B, I)) on reduced
    weights: ``weight_ih`` and ``weight_hh`` (and the projection's ``weight_hr``) are
    (values, scales) pairs. Returns y (T, B, H or P) and c_T. The pre-activations add as
    the core adds them: (x_t W_ih^T + h_{t-1} W_hh^T) + (b_ih + b_hh)."""
    x = np.asarray(x, np.float32)
    h, c = np.asarray(h0, np.float32), np.asarray(c0, np.float32)
    bias = (np.asarray(bias_ih, np.float32) + np.asarray(bias_hh, np.float32))[None]
    H = c.shape[1]
    ys = []
    for x_t in x:
        a = (reduced_product(x_t, *weight_ih) + reduced_product(h, *weight_hh)) + bias
        i, f = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H])
        g, o = np.tanh(a[:, 2 * H : 3 * H]), sigmoid(a[:, 3 * H :])
        c = f * c + i * g
        h = o * np.tanh(c)
        if weight_hr is not None:
            h = reduced_product(h, *weight_hr)
        ys.append(h)
    return np.stack(ys), c


def reduced_gru_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0):
    """The GRU (reset gate after W_hn, one layer and direction, time-major) on reduced
    weights, as ``reduced_lstm_forward``. Returns y (T, B, H)."""
    x = np.asarray(x, np.float32)
    h = np.asarray(h0, np.float32)
    b_ih, b_hh = np.asarray(bias_ih, np.float32), np.asarray(bias_hh, np.float32)
    H = h.shape[1]
    ys = []
    for x_t in x:
        pre, rec = reduced_product(x_t, *weight_ih), reduced_product(h, *weight_hh)
        r = sigmoid((pre[:, :H] + rec[:, :H]) + (b_ih[:H] + b_hh[:H]))
        z = sigmoid((pre[:, H : 2 * H] + rec[:, H : 2 * H]) + (b_ih[H : 2 * H] + b_hh[H : 2 * H]))
        n = np.tanh(r * (rec[:, 2 * H :] + b_hh[2 * H :]) + (pre[:, 2 * H :] + b_ih[2 * H :]))
        h = n + z * (h - n)
        ys.append(h)
    return np.stack(ys)


def reduced_rnn_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0, nonlinearity="tanh"):
    """The vanilla RNN (tanh or relu) on reduced weights, as ``reduced_lstm_forward``.
    Returns y (T, B, H)."""
    x = np.asarray(x, np.float32)
    h = np.asarray(h0, np.float32)
    bias = (np.asarray(bias_ih, np.float32) + np.asarray(bias_hh, np.float32))[None]
    act = np.tanh if nonlinearity == "tanh" else (lambda a: np.maximum(a, np.float32(0)))
    ys = []
    for x_t in x:
        h = act((reduced_product(x_t, *weight_ih) + reduced_product(h, *weight_hh)) + bias)
        ys.append(h)
    return np.stack(ys)
