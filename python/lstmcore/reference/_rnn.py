"""The reference vanilla RNN (PyTorch's ``nn.RNN``). Part of ``lstmcore.reference`` (import
it from there); the conventions are that package's.

Named ``vanilla_rnn_*`` because ``rnn_forward`` / ``rnn_backward`` are the stacked driver's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmcore.reference._activations import ACTIVATIONS, Activations
from lstmcore.reference._ops import cast, compute_dtype


def _checked(nonlinearity: Any) -> Any:
    name = nonlinearity[0] if isinstance(nonlinearity, tuple) and len(nonlinearity) == 3 else nonlinearity
    if name not in ACTIVATIONS or (isinstance(nonlinearity, tuple) and name != "hard_sigmoid"):
        raise ValueError(f"expected nonlinearity among {', '.join(ACTIVATIONS)}, got {nonlinearity!r}")
    return nonlinearity


def vanilla_rnn_forward(
    x: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
    h0: np.ndarray,
    nonlinearity: Any = "tanh",
    clip: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The Elman RNN, one layer, one direction. Per step t, with x = x[t] and h = h_{t-1}::

        a = W_ih x + b_ih + W_hh h + b_hh
        h_t = act(a)                                      y[t] = h_t

    act: ``nonlinearity``, PyTorch's "tanh" or "relu", or any activation of
    ``lstmcore.reference.activation`` (ONNX's RNN: a name, or ("hard_sigmoid", alpha,
    beta)). ``clip`` (ONNX's): None, or c > 0 for h_t = act(min(max(a, -c), c)).
    x (T, B, I); weight_ih (H, I); weight_hh (H, H); bias_ih, bias_hh (H,); h0 (B, H).
    Returns ``y`` (T, B, H), ``h_n`` (B, H) and the cache ``vanilla_rnn_backward`` needs (a
    dict).
    """
    # Activations' candidate is one activation after ONNX's clip.
    act = Activations(candidate=_checked(nonlinearity), clip=clip).candidate
    dtype = compute_dtype(x)
    x, weight_ih, weight_hh, bias_ih, bias_hh, h0 = cast(dtype, x, weight_ih, weight_hh, bias_ih, bias_hh, h0)
    steps, batch, _ = x.shape
    hidden = weight_hh.shape[1]

    y = np.empty((steps, batch, hidden), dtype)  # h_t
    slopes = np.empty((steps, batch, hidden), dtype)  # d h_t / d a (0 where the clip held a)
    h = h0  # (B, H)
    for t in range(steps):
        h, slopes[t] = act(x[t] @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh)
        y[t] = h

    cache = dict(
        x=x,  # (T, B, I)
        weight_ih=weight_ih,  # (H, I)
        weight_hh=weight_hh,  # (H, H)
        h0=h0,  # (B, H)
        y=y,  # (T, B, H)
        slopes=slopes,  # (T, B, H)
    )
    return y, h, cache


def vanilla_rnn_backward(cache: dict[str, Any], dy: np.ndarray, dh_n: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Gradients of one ``vanilla_rnn_forward`` given dL/dy (T, B, H) and optionally dL/dh_n.

    Backwards in time, with dh the total gradient reaching h_t and act'(a) from the forward
    (tanh: 1 - h_t^2; relu: 1 where a > 0, else 0, as PyTorch's relu'(0) = 0; zero where
    the clip held a)::

        dh  = dy[t] + (gradient from step t+1, or dh_n at t = T-1)
        da  = dh * act'(a)                         (B, H): gradient of W_ih x + b_ih + W_hh h + b_hh
        dx[t] = da W_ih          dh_{t-1} = da W_hh
        dW_ih += da^T x[t]       dW_hh += da^T h_{t-1}
        db_ih += sum_b da        db_hh += sum_b da

    Returns a dict of fresh arrays: ``dx`` (T, B, I), ``dh0`` (B, H), ``hidden_gradients``
    (T, B, H: each step's dh above, dL/dh_t) and the parameter gradients ``weight_ih``,
    ``weight_hh``, ``bias_ih``, ``bias_hh``.
    """
    x, weight_ih, weight_hh, y = cache["x"], cache["weight_ih"], cache["weight_hh"], cache["y"]
    dtype = x.dtype
    steps, batch, _ = x.shape
    hidden = weight_hh.shape[1]
    dy = np.asarray(dy, dtype)

    dx = np.empty_like(x)  # (T, B, I)
    d_weight_ih = np.zeros_like(weight_ih)  # (H, I)
    d_weight_hh = np.zeros_like(weight_hh)  # (H, H)
    d_bias = np.zeros(hidden, dtype)  # (H,), the same for bias_ih and bias_hh
    dh = np.zeros((batch, hidden), dtype) if dh_n is None else np.array(dh_n, dtype)  # dL/dh_t
    hidden_gradients = np.empty((steps, batch, hidden), dtype)  # dL/dh_t
    for t in reversed(range(steps)):
        h_prev = cache["h0"] if t == 0 else y[t - 1]
        dh = dh + dy[t]
        hidden_gradients[t] = dh
        da = dh * cache["slopes"][t]
        dx[t] = da @ weight_ih
        d_weight_ih += da.T @ x[t]
        d_weight_hh += da.T @ h_prev
        d_bias += da.sum(axis=0)
        dh = da @ weight_hh

    return {
        "dx": dx,
        "dh0": dh,
        "hidden_gradients": hidden_gradients,
        "weight_ih": d_weight_ih,
        "weight_hh": d_weight_hh,
        "bias_ih": d_bias,
        "bias_hh": d_bias.copy(),
    }
