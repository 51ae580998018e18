"""Feed-forward layers for ``Sequential``, and the adapter that puts LSTM/GRU/RNN in one.

Every layer has the same small contract, in the style of the recurrent layers:

- ``params`` / ``grads``: dicts of NumPy arrays with the same keys (empty when the layer
  has no weights); ``zero_grad()`` resets the gradients.
- ``y, tape = layer.forward(x, *, training=False, lengths=None)``: ``lengths`` (B,) holds
  the number of valid steps of each sequence of a (B, T, ...) batch; layers that work per
  step ignore it.
- ``dx = layer.backward(tape, dy)`` ADDS the weight gradients into ``grads`` (the caller
  zeroes them) and returns the gradient of x (None for integer inputs).
- ``layer.check_tape(tape)``: optional; the ValueError backward would raise for a stale
  tape, without touching ``grads`` (``Sequential.backward`` checks every tape first).
- ``y = layer.infer(x, *, lengths=None)``: inference that keeps nothing for backward
  (the recurrent layers then keep no tape); optional, ``Sequential`` falls back to
  ``forward(x, training=False)``.
- ``get_config()``: JSON-serialisable constructor arguments; ``type(layer)(**config)``
  rebuilds the layer (with fresh weights).
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import numpy as np

from lstmcore._typing import ArrayLike, DTypeLike, Params, Tape
from lstmcore._util.blas import one_blas_thread
from lstmcore._util.checks import (
    as_numeric_array,
    check_bool,
    check_dtype,
    check_finite_real,
    check_positive_int,
    param_array,
    shape_text,
)
from lstmcore.reference._activations import activation as activation_and_slope
from lstmcore.rnn._activations import as_config, check_activation
from lstmcore.rnn._fingerprint import check_unchanged, fingerprints
from lstmcore.rnn._lengths import checked_lengths, lengths_from_mask
from lstmcore.rnn._recurrent import _GatedRecurrent


def lengths_or_full(lengths: ArrayLike | None, batch: int, steps: int) -> np.ndarray:
    """``lengths`` checked (B,) ints in [1, T]; every sequence full (T) when None."""
    if lengths is None:
        return np.full(batch, steps, dtype=np.int64)
    return checked_lengths(lengths, batch, steps)


def _check_sequence(x: np.ndarray, name: str) -> np.ndarray:
    if x.ndim != 3:
        raise ValueError(f"{name} expects x of shape (B, T, F), got {shape_text(x.shape)}")
    return x


def _check_dy(dy: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    dy = as_numeric_array(dy, "dy")
    if dy.shape != tuple(shape):
        raise ValueError(f"expected dy of shape {shape_text(shape)} (the shape of y), got {shape_text(dy.shape)}")
    return dy


class _Layer:
    """Defaults for layers without weights."""

    def __init__(self) -> None:
        self.params: Params = {}
        self.grads: Params = {}

    def zero_grad(self) -> None:
        for grad in self.grads.values():
            grad[...] = 0

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


def check_dense_activation(value: object) -> str | tuple[str, float, float]:
    """Dense's ``activation``: a recurrent layer's activation, or "softmax"."""
    return "softmax" if value == "softmax" else check_activation(value, "activation")


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Dense(_Layer):
    """y = activation(x W^T + b) on the last axis, as PyTorch's ``nn.Linear`` when the
    activation is "linear" (the default); per step on (B, T, F).

    weight (out_features, in_features), bias (out_features,), both uniform in
    +-1/sqrt(in_features) as PyTorch initialises them. ``activation``: "linear",
    "sigmoid", "tanh", "relu", "hard_sigmoid", "softsign" (the recurrent layers' own,
    ``("hard_sigmoid", alpha, beta)`` included) or "softmax" over the last axis; the
    losses take logits, so a model trained with them keeps "linear".
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        activation: str | tuple[str, float, float] = "linear",
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.activation = check_dense_activation(activation)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        self.params = {
            "weight": rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(self.dtype),
            "bias": rng.uniform(-bound, bound, self.out_features).astype(self.dtype),
        }
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}

    def get_config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "activation": as_config(self.activation),
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    # The products run on one BLAS thread (_util/blas.py): with more, OpenBLAS's idle threads
    # spun on into the next LSTM pass and took a core from it, which slowed a training
    # loop of Sequential.forward/backward several times over.
    @one_blas_thread()
    def forward(self, x: ArrayLike, *, training: bool = False, lengths: ArrayLike | None = None) -> tuple[np.ndarray, Tape]:
        # x (..., in) -> y (..., out)
        x = as_numeric_array(x, "x")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"expected x of shape (..., {self.in_features}), got {shape_text(x.shape)}")
        given = x
        x = np.asarray(x, dtype=self.dtype)
        # The tape keeps x for dW: never the caller's own buffer, which they may change
        # before calling backward.
        if np.may_share_memory(x, given):
            x = x.copy()
        params = self._checked_params()
        z = x @ params["weight"].T + params["bias"]
        # The tape: x, the fingerprints of the weights, which backward's dx reads, and what
        # the activation's derivative needs: its slope, or softmax's output.
        if self.activation == "linear":
            return z, (x, fingerprints(params), None)
        if self.activation == "softmax":
            y = _softmax(z)
            return y, (x, fingerprints(params), y)
        y, slope = activation_and_slope(self.activation, z)
        return y, (x, fingerprints(params), slope)

    def _checked_params(self):
        shapes = {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}
        if set(self.params) != set(shapes):
            raise ValueError(f"expected params with keys {sorted(shapes)}, got {sorted(self.params)}")
        checked = {}
        for name, shape in shapes.items():
            checked[name] = param_array(self.params[name], f"params[{name!r}]", self.dtype)
            if checked[name].shape != shape:
                raise ValueError(
                    f"expected params[{name!r}] of shape {shape_text(shape)}, got {shape_text(checked[name].shape)}"
                )
        return checked

    def check_tape(self, tape: Tape) -> Params:
        """The checked parameters, or a ValueError when the weights changed since ``tape``
        was recorded; adds nothing to grads."""
        params = self._checked_params()
        check_unchanged(tape[1], params, "Dense")
        return params

    @one_blas_thread()
    def backward(self, tape: Tape, dy: ArrayLike) -> np.ndarray | None:
        x, _, derivative = tape
        params = self.check_tape(tape)
        dy = _check_dy(dy, x.shape[:-1] + (self.out_features,)).astype(self.dtype, copy=False)
        if self.activation == "softmax":
            dz = derivative * (dy - (dy * derivative).sum(axis=-1, keepdims=True))
        else:
            dz = dy if derivative is None else dy * derivative
        rows_x = x.reshape(-1, self.in_features)
        rows_dz = dz.reshape(-1, self.out_features)
        self.grads["weight"] += rows_dz.T @ rows_x
        self.grads["bias"] += rows_dz.sum(axis=0)
        return dz @ params["weight"]


class Embedding(_Layer):
    """Integer ids (...) -> vectors (..., embedding_dim), as PyTorch's ``nn.Embedding``.

    weight (num_embeddings, embedding_dim), standard normal like PyTorch. The row of
    ``padding_idx`` starts at zero and never receives a gradient. ``mask_zero=True``
    (Keras's option): id 0 is padding at the end of a sequence, and a ``Sequential``
    that starts with this layer reads each sequence's length off its ids when it is
    given no ``lengths`` (``lengths_of``).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        padding_idx: int | None = None,
        mask_zero: bool = False,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
                raise TypeError(f"expected padding_idx as an int or None, got {type(padding_idx).__name__}")
            if not 0 <= padding_idx < self.num_embeddings:
                raise ValueError(f"expected padding_idx in [0, {self.num_embeddings}), got {padding_idx}")
            padding_idx = int(padding_idx)
        self.padding_idx = padding_idx
        self.mask_zero = check_bool(mask_zero, "mask_zero")
        self.dtype = check_dtype(dtype)
        self.seed = seed
        weight = np.random.default_rng(seed).standard_normal((self.num_embeddings, self.embedding_dim))
        weight = weight.astype(self.dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.params = {"weight": weight}
        self.grads = {"weight": np.zeros_like(weight)}

    def get_config(self) -> dict[str, Any]:
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "padding_idx": self.padding_idx,
            "mask_zero": self.mask_zero,
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    def lengths_of(self, x: ArrayLike) -> np.ndarray | None:
        """With ``mask_zero``: (B,) lengths of ids (B, T), each sequence's steps up to its
        last nonzero id; a 0 before it, or a sequence of 0s alone, is a ValueError.
        None without ``mask_zero``."""
        if not self.mask_zero:
            return None
        ids = np.asarray(x)
        if ids.ndim != 2:
            raise ValueError(f"mask_zero reads lengths off ids of shape (B, T), got {shape_text(ids.shape)}")
        return lengths_from_mask(ids != 0, "id 0, mask_zero=True")

    def forward(self, x: ArrayLike, *, training: bool = False, lengths: ArrayLike | None = None) -> tuple[np.ndarray, Tape]:
        # ids (...) -> y (..., D)
        ids = np.asarray(x)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"expected integer ids for Embedding, got dtype {ids.dtype}")
        outside = (ids < 0) | (ids >= self.num_embeddings)
        if outside.any():
            bad = int(ids[np.unravel_index(np.argmax(outside), ids.shape)])
            raise ValueError(f"expected ids in [0, {self.num_embeddings}), got {bad}")
        weight = param_array(self.params["weight"], "params['weight']", self.dtype)
        shape = (self.num_embeddings, self.embedding_dim)
        if weight.shape != shape:
            raise ValueError(f"expected params['weight'] of shape {shape_text(shape)}, got {shape_text(weight.shape)}")
        # No fingerprint in the tape: backward reads no parameter, so its gradient is exact
        # whatever happened to the weights since.
        return weight[ids], ids

    def backward(self, tape: Tape, dy: ArrayLike) -> np.ndarray | None:
        ids = tape
        dy = _check_dy(dy, ids.shape + (self.embedding_dim,)).astype(self.dtype, copy=False)
        flat_ids = ids.reshape(-1)
        rows = dy.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = flat_ids != self.padding_idx
            flat_ids, rows = flat_ids[keep], rows[keep]
        np.add.at(self.grads["weight"], flat_ids, rows)
        return None  # ids are not differentiable


class Dropout(_Layer):
    """Inverted dropout: in training, zero each element with probability p and scale the
    rest by 1/(1-p); the identity at inference. The masks come from the layer's own
    generator, ``np.random.default_rng(seed)``, so a seeded model drops the same elements
    run after run."""

    # Declared here: mypy reads the numbers.Real check in __init__ as never passing.
    p: float
    seed: int | None
    _rng: np.random.Generator

    def __init__(self, p: float, *, seed: int | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"expected p as a float, got {type(p).__name__}")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"expected dropout probability p in [0, 1), got {p}")
        self.p = float(p)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p, "seed": self.seed}

    def forward(self, x: ArrayLike, *, training: bool = False, lengths: ArrayLike | None = None) -> tuple[np.ndarray, Tape]:
        x = as_numeric_array(x, "x")
        if not training or self.p == 0.0:
            return x, None
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        mask = (self._rng.random(x.shape) >= self.p).astype(dtype) / dtype.type(1.0 - self.p)
        return x * mask, (mask, x.shape)

    def backward(self, tape: Tape, dy: ArrayLike) -> np.ndarray | None:
        if tape is None:
            return as_numeric_array(dy, "dy")
        mask, shape = tape
        return _check_dy(dy, shape) * mask


class Masking(_Layer):
    """(B, T, F) -> (B, T, F), Keras's ``Masking``: a step whose features all equal
    ``mask_value`` is padding, at the end of a sequence. A ``Sequential`` that starts with
    this layer reads each sequence's length off x when it is given no ``lengths``
    (``lengths_of``); the padding steps come out as zeros, as from Keras."""

    def __init__(self, mask_value: float = 0.0) -> None:
        super().__init__()
        self.mask_value = check_finite_real(mask_value, "mask_value")

    def get_config(self) -> dict[str, Any]:
        return {"mask_value": self.mask_value}

    def lengths_of(self, x: ArrayLike) -> np.ndarray:
        """(B,) lengths of x (B, T, F): each sequence's steps up to its last step that is
        not all ``mask_value``; such a step before it, or a sequence of them alone, is a
        ValueError."""
        x = _check_sequence(as_numeric_array(x, "x"), "Masking")
        # compared in x's float type, as Keras compares
        value = x.dtype.type(self.mask_value) if x.dtype.kind == "f" else self.mask_value
        return lengths_from_mask((x != value).any(axis=2), f"every feature {self.mask_value}")

    def forward(self, x: ArrayLike, *, training: bool = False, lengths: ArrayLike | None = None) -> tuple[np.ndarray, Tape]:
        x = _check_sequence(as_numeric_array(x, "x"), "Masking")
        batch, steps, _ = x.shape
        lengths = self.lengths_of(x) if lengths is None else checked_lengths(lengths, batch, steps)
        valid = (np.arange(steps) < lengths[:, None])[:, :, None]  # (B, T, 1)
        return np.where(valid, x, x.dtype.type(0)), (x.shape, valid)

    def backward(self, tape: Tape, dy: ArrayLike) -> np.ndarray | None:
        shape, valid = tape
        dy = _check_dy(dy, shape)
        return np.where(valid, dy, dy.dtype.type(0))


class LastStep(_Layer):
    """(B, T, F) -> (B, F): each sequence's output at its last valid step, lengths[b] - 1.

    The last step of a reverse direction is the first one: ``reverse=True`` takes step 0
    for every feature (the output of a ``reverse=True`` layer), ``bidirectional=True``
    takes it for the second half of the features (a bidirectional layer's reverse
    direction), so the result is a bidirectional layer's h_n, concatenated.
    """

    reduces_time = True

    def __init__(self, *, bidirectional: bool = False, reverse: bool = False) -> None:
        super().__init__()
        self.bidirectional = check_bool(bidirectional, "bidirectional")
        self.reverse = check_bool(reverse, "reverse")
        if self.bidirectional and self.reverse:
            raise ValueError("LastStep takes bidirectional=True or reverse=True, not both")

    def get_config(self) -> dict[str, Any]:
        return {"bidirectional": self.bidirectional, "reverse": self.reverse}

    def _forward_features(self, features):
        """How many leading features come from the last valid step (the rest from step 0)."""
        if self.bidirectional:
            if features % 2:
                raise ValueError(f"LastStep(bidirectional=True) expects an even number of features, got {features}")
            return features // 2
        return 0 if self.reverse else features

    def forward(self, x: ArrayLike, *, training: bool = False, lengths: ArrayLike | None = None) -> tuple[np.ndarray, Tape]:
        x = _check_sequence(as_numeric_array(x, "x"), "LastStep")
        batch, steps, features = x.shape
        last = lengths_or_full(lengths, batch, steps) - 1
        cut = self._forward_features(features)
        y = np.concatenate([x[np.arange(batch), last, :cut], x[:, 0, cut:]], axis=1)
        return y, (x.shape, x.dtype, last, cut)

    def backward(self, tape: Tape, dy: ArrayLike) -> np.ndarray | None:
        shape, dtype, last, cut = tape
        dy = _check_dy(dy, (shape[0], shape[2]))
        dx = np.zeros(shape, np.result_type(dtype, dy.dtype))
        dx[np.arange(shape[0]), last, :cut] = dy[:, :cut]
        dx[:, 0, cut:] = dy[:, cut:]
        return dx


class RepeatLast(_Layer):
    """(B, T, F) -> (B, T, F): the steps past each sequence's length repeat its last valid
    step, as a Keras recurrent layer's outputs at masked steps do (``zero_output_for_mask``
    False, its default outside ``Bidirectional``); the identity without ``lengths``."""

    def forward(self, x: ArrayLike, *, training: bool = False, lengths: ArrayLike | None = None) -> tuple[np.ndarray, Tape]:
        x = _check_sequence(as_numeric_array(x, "x"), "RepeatLast")
        batch, steps, _ = x.shape
        last = lengths_or_full(lengths, batch, steps) - 1
        source = np.minimum(np.arange(steps), last[:, None])  # (B, T): the step each output copies
        return x[np.arange(batch)[:, None], source], (x.shape, last)

    def backward(self, tape: Tape, dy: ArrayLike) -> np.ndarray | None:
        shape, last = tape
        dy = _check_dy(dy, shape)
        padding = (np.arange(shape[1]) > last[:, None])[:, :, None]  # (B, T, 1)
        dx = np.where(padding, dy.dtype.type(0), dy)
        dx[np.arange(shape[0]), last] += np.where(padding, dy, dy.dtype.type(0)).sum(axis=1)
        return dx


class MeanPool(_Layer):
    """(B, T, F) -> (B, F): the mean over each sequence's valid steps, 0 .. lengths[b] - 1."""

    reduces_time = True

    def forward(self, x: ArrayLike, *, training: bool = False, lengths: ArrayLike | None = None) -> tuple[np.ndarray, Tape]:
        x = _check_sequence(as_numeric_array(x, "x"), "MeanPool")
        batch, steps, _ = x.shape
        lengths = lengths_or_full(lengths, batch, steps)
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        # (B, T, 1): 1/length on valid steps, 0 on padding
        weights = ((np.arange(steps) < lengths[:, None]) / lengths[:, None]).astype(dtype)[:, :, None]
        return (x * weights).sum(axis=1), (x.shape, weights)

    def backward(self, tape: Tape, dy: ArrayLike) -> np.ndarray | None:
        shape, weights = tape
        dy = _check_dy(dy, (shape[0], shape[2]))
        return dy[:, None, :] * weights


class RecurrentAdapter:
    """An LSTM, GRU or RNN seen through the feed-forward contract above.

    Sequential's data is always (B, T, F), so a layer built with batch_first=False is
    refused. The initial state is zero and the final state is dropped. ``lengths`` and
    ``training`` are passed on when the layer's forward takes them (it chooses what they
    mean: packed sequences, dropout between its layers). Without ``lengths`` support a
    bidirectional layer cannot honour padded sequences (its reverse direction would start
    in the padding), so a length shorter than T is then an error; a unidirectional one is
    exact on the valid steps, which never see later ones.
    """

    def __init__(self, layer: _GatedRecurrent) -> None:
        if not isinstance(layer, _GatedRecurrent):
            raise TypeError(f"expected an LSTM, GRU or RNN layer, got {type(layer).__name__}")
        if not layer.batch_first:
            raise ValueError(
                f"Sequential works on (B, T, F) batches: expected {type(layer).__name__} with "
                "batch_first=True, got batch_first=False"
            )
        self.layer = layer
        accepted = inspect.signature(layer.forward).parameters
        self._takes_lengths = "lengths" in accepted
        self._takes_training = "training" in accepted

    @property
    def params(self) -> Params:
        return self.layer.params

    @property
    def grads(self) -> Params:
        return self.layer.grads

    def zero_grad(self) -> None:
        self.layer.zero_grad()

    def get_config(self) -> dict[str, Any]:
        return self.layer.get_config()

    def forward(self, x: ArrayLike, *, training: bool = False, lengths: ArrayLike | None = None) -> tuple[np.ndarray, Tape]:
        options: dict[str, Any] = {"training": training} if self._takes_training else {}
        y, _, tape = self.layer.forward(x, **options, **self._lengths_option(x, lengths))
        return y, tape

    def infer(self, x: ArrayLike, *, lengths: ArrayLike | None = None) -> np.ndarray:
        return self.layer(x, **self._lengths_option(x, lengths))[0]

    def _lengths_option(self, x, lengths):
        if lengths is not None and self._takes_lengths:
            return {"lengths": lengths}
        if lengths is not None and self.layer.bidirectional:
            steps = np.shape(x)[1] if np.ndim(x) == 3 else None
            if steps is not None and np.any(np.asarray(lengths) < steps):
                raise ValueError(
                    f"this bidirectional {type(self.layer).__name__} does not take lengths, so it cannot "
                    f"run sequences shorter than T={steps}; pad-free batches or a unidirectional layer work"
                )
        return {}

    def check_tape(self, tape: Tape) -> None:
        self.layer.check_tape(tape)

    def backward(self, tape: Tape, dy: ArrayLike) -> np.ndarray:
        dx, _ = self.layer.backward(tape, dy)
        return dx
