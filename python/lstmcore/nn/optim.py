"""Optimizers, gradient clipping and learning-rate schedules, with PyTorch's semantics.

An optimizer keeps the ``params`` mapping it was built with (a layer's ``params`` or a
model's) and ``opt.step(grads)`` updates those arrays IN PLACE, looking each array up by
name at every step; its per-parameter state is keyed by the same names. ``opt.lr`` may be
set at any time (schedules do).

A schedule wraps an optimizer, sets its ``lr`` at construction to the rate of the first
epoch, and advances by one epoch at each ``.step()``; ``Sequential.fit`` calls ``step()``
once after every epoch. ``schedule.lr`` is the current rate.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["SGD", "Adam", "AdamW", "clip_grad_norm", "StepLR", "CosineLR"]


def _real(
    value: float, name: str, low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = True
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected {name} as a number, got {type(value).__name__}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high or math.isnan(value):
        interval = ("(" if low_open else "[") + f"{low}, {high}" + (")" if high_open else "]")
        raise ValueError(f"expected {name} in {interval}, got {value}")
    return value


class _Optimizer:
    def __init__(self, params: Mapping[str, np.ndarray], lr: float) -> None:
        if not hasattr(params, "keys") or not hasattr(params, "__getitem__"):
            raise TypeError(
                f"expected params as a dict of arrays (layer.params or model.params), got {type(params).__name__}"
            )
        if len(params) == 0:
            raise ValueError("expected at least one parameter, got an empty params dict")
        self.params = params
        self.lr = _real(lr, "lr", 0.0, low_open=True)
        self.state: dict[str, Any] = {}  # per parameter name

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        # 0 is allowed here so a schedule may anneal to a floor of 0.
        self._lr = _real(value, "lr", 0.0)

    def step(self, grads: Mapping[str, ArrayLike]) -> None:
        """Update every parameter from ``grads[name]``; gradients of parameters this
        optimizer does not hold are ignored (so one may train a subset of a model)."""
        names = list(self.params.keys())
        missing = sorted(set(names) - set(grads.keys()))
        if missing:
            raise ValueError(f"expected a gradient for every parameter, missing {missing}")
        for name in names:
            param, grad = self.params[name], grads[name]
            if np.shape(grad) != np.shape(param):
                raise ValueError(f"expected grads[{name!r}] of shape {np.shape(param)}, got {np.shape(grad)}")
            self._update(name, param, np.asarray(grad, dtype=param.dtype))

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr})"


class SGD(_Optimizer):
    """p -= lr * g with g = grad + weight_decay * p, through a momentum buffer
    b = momentum * b + g (b = g at the first step); Nesterov uses g + momentum * b."""

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = _real(momentum, "momentum", 0.0, 1.0)
        self.weight_decay = _real(weight_decay, "weight_decay", 0.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0")

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if self.momentum:
            buffer = self.state.get(name)
            if buffer is None:
                buffer = self.state[name] = grad.copy()
            else:
                buffer *= self.momentum
                buffer += grad
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        param -= self.lr * grad


class Adam(_Optimizer):
    """Adam (Kingma & Ba) as ``torch.optim.Adam``: weight_decay adds L2 (weight_decay * p)
    to the gradient before the moments."""

    _decoupled = False

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if len(betas) != 2:
            raise ValueError(f"expected betas as a pair (beta1, beta2), got {betas!r}")
        self.betas = (_real(betas[0], "betas[0]", 0.0, 1.0), _real(betas[1], "betas[1]", 0.0, 1.0))
        self.eps = _real(eps, "eps", 0.0)
        self.weight_decay = _real(weight_decay, "weight_decay", 0.0)

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        beta1, beta2 = self.betas
        if name not in self.state:
            self.state[name] = {"step": 0, "m": np.zeros_like(param), "v": np.zeros_like(param)}
        state = self.state[name]
        state["step"] += 1
        if self.weight_decay and self._decoupled:
            param *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:
            grad = grad + self.weight_decay * param
        m, v = state["m"], state["v"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * np.square(grad)
        correction1 = 1 - beta1 ** state["step"]
        correction2 = 1 - beta2 ** state["step"]
        # PyTorch's arrangement: eps is added to sqrt(v_hat), not to sqrt(v).
        param -= (self.lr / correction1) * m / (np.sqrt(v) / math.sqrt(correction2) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``: p *= 1 - lr * weight_decay
    before the Adam update, which sees the plain gradient."""

    _decoupled = True

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


def clip_grad_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> float:
    """Scale every gradient in place so their global L2 norm is at most ``max_norm``;
    returns the norm before clipping, as ``torch.nn.utils.clip_grad_norm_``."""
    max_norm = _real(max_norm, "max_norm", 0.0, low_open=True)
    arrays = list(grads.values())
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in arrays))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for grad in arrays:
            grad *= grad.dtype.type(scale)
    return total


class _Schedule:
    def __init__(self, optimizer: _Optimizer) -> None:
        if not isinstance(optimizer, _Optimizer):
            raise TypeError(f"expected an lstmcore optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0  # steps taken so far

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    def step(self) -> None:
        self.epoch += 1
        self.optimizer.lr = self._rate(self.epoch)

    def _rate(self, epoch: int) -> float:
        raise NotImplementedError

    def _start(self) -> None:
        self.optimizer.lr = self._rate(0)


class StepLR(_Schedule):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    # Declared here: mypy reads the numbers.Integral checks in __init__ as never passing.
    step_size: int
    gamma: float

    def __init__(self, optimizer: _Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) or step_size < 1:
            raise ValueError(f"expected step_size as an int >= 1, got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = _real(gamma, "gamma", 0.0, low_open=True)
        self._start()

    def _rate(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(_Schedule):
    """Linear warm-up then cosine annealing from base_lr to min_lr over total_steps epochs.

    For epoch e: if e < warmup_steps, lr = base_lr * (e + 1) / (warmup_steps + 1), a ramp
    that reaches base_lr at epoch warmup_steps; from there, with progress
    p = (e - warmup_steps) / (total_steps - warmup_steps) capped at 1,
    lr = min_lr + (base_lr - min_lr) * (1 + cos(pi p)) / 2 (PyTorch's CosineAnnealingLR
    when warmup_steps = 0). From epoch total_steps on the rate stays at min_lr.
    """

    # Declared here: mypy reads the numbers.Integral checks in __init__ as never passing.
    total_steps: int
    warmup_steps: int
    min_lr: float

    def __init__(self, optimizer: _Optimizer, total_steps: int, min_lr: float = 0.0, warmup_steps: int = 0) -> None:
        super().__init__(optimizer)
        if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 1:
            raise ValueError(f"expected total_steps as an int >= 1, got {total_steps!r}")
        not_int = isinstance(warmup_steps, bool) or not isinstance(warmup_steps, numbers.Integral)
        if not_int or not 0 <= warmup_steps < total_steps:
            raise ValueError(f"expected warmup_steps as an int in [0, total_steps={total_steps}), got {warmup_steps!r}")
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.min_lr = _real(min_lr, "min_lr", 0.0, self.base_lr, high_open=False)
        self._start()

    def _rate(self, epoch: int) -> float:
        if epoch < self.warmup_steps:
            return self.base_lr * (epoch + 1) / (self.warmup_steps + 1)
        progress = min(1.0, (epoch - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2
