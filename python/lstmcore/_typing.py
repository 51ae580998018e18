"""Type aliases shared by the public signatures; annotations only, nothing here runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["ArrayLike", "DTypeLike", "Layer", "Params", "State", "StateLike", "Tape"]

# A recurrent layer's state as returned: h (GRU) or (h, c) (LSTM), each (num_layers * D, B, H).
State: TypeAlias = np.ndarray | tuple[np.ndarray, ...]
# A state as given: anything NumPy reads as those arrays, or None for zeros.
StateLike: TypeAlias = ArrayLike | tuple[ArrayLike, ...] | None
# Parameters or gradients by PyTorch's names (a layer's or a model's `params`, `grads`).
Params: TypeAlias = dict[str, np.ndarray]
# A layer's or a model's tape: opaque to the caller, handed back to `backward`.
Tape: TypeAlias = Any


class Layer(Protocol):
    """What Sequential needs of a layer (Dense, LSTM through its adapter, a user's own);
    x and dy are whatever the neighbouring layers produce."""

    @property
    def params(self) -> Any: ...
    @property
    def grads(self) -> Any: ...
    def forward(self, x: Any, *, training: bool = ..., lengths: Any = ...) -> tuple[Any, Tape]: ...
    def backward(self, tape: Tape, dy: Any) -> Any: ...
    def zero_grad(self) -> None: ...
    def get_config(self) -> dict[str, Any]: ...


class Model(Protocol):
    """What training and model files need of a ``Sequential``: they are named by this
    protocol rather than by the class, since the class's module imports theirs."""

    @property
    def layers(self) -> Sequence[Any]: ...
    @property
    def params(self) -> Any: ...
    @property
    def grads(self) -> Any: ...
    @property
    def metadata(self) -> Any: ...
    @property
    def output_is_sequence(self) -> bool: ...
    def __call__(self, x: Any, lengths: Any = ...) -> Any: ...
    def forward(self, x: Any, *, training: bool = ..., lengths: Any = ...) -> tuple[Any, Any]: ...
    def backward(self, tape: Any, dy: Any) -> Any: ...
    def zero_grad(self) -> None: ...
    def get_config(self) -> dict[str, Any]: ...
