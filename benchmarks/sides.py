"""The three sides of a benchmark case: lstmcore, PyTorch, the NumPy reference.

Each side is built from the same weights and the same x and dy, and is a ``step``
callable that does one timed iteration (inference: forward; training: forward and
backward of sum(y * dy)) and returns what it computed, so that ``check`` can show, before
anything is timed, that every side computes the same thing as lstmcore.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import lstmcore
from benchmarks.cases import CHECK_ATOL


@dataclass
class Side:
    """One implementation of a case: ``step()`` runs one iteration and returns its
    result; ``outputs(result)`` turns that into NumPy (y (B, T, D*W), dx (B, T, I) or None)."""

    name: str
    step: Callable
    outputs: Callable


def projection(case):
    """The proj_size keyword of both sides' LSTM, if the case has one."""
    return {"proj_size": case.proj_size} if case.proj_size else {}


def make_inputs(case, seed=1234):
    """x (B, T, I) and dy (B, T, D*W), W = proj_size or H, float32, standard normal."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.batch, case.seq_len, case.input_size), dtype=np.float32)
    dy = rng.standard_normal((case.batch, case.seq_len, case.directions * case.output_size), dtype=np.float32)
    return x, dy


def build_lstmcore(case, x, dy):
    """The lstmcore layer and its Side."""
    # By name: an older build that benchmarks.builds compares against may lack a kind.
    cls = getattr(lstmcore, {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[case.kind])
    layer = cls(
        case.input_size,
        case.hidden_size,
        case.num_layers,
        bidirectional=case.bidirectional,
        seed=0,
        **case.spec.lstmcore_kwargs,
        **projection(case),
    )

    if case.mode == "train":

        def step():
            y, _, tape = layer.forward(x)
            dx, _ = layer.backward(tape, dy)
            return y, dx

    else:

        def step():
            y, _ = layer(x)
            return y, None

    return layer, Side("lstmcore", step, lambda result: result)


def build_torch(case, x, dy, torch, params):
    """The PyTorch Side, with lstmcore's ``params`` copied in."""
    nn = torch.nn
    if case.spec.torch_cell is None:
        cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[case.kind]
        module = cls(
            case.input_size,
            case.hidden_size,
            case.num_layers,
            bidirectional=case.bidirectional,
            batch_first=True,
            **projection(case),
        )
        module.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in params.items()})
    else:
        from benchmarks import torch_cells

        cell_class = getattr(torch_cells, case.spec.torch_cell, None) or getattr(nn, case.spec.torch_cell)
        module = torch_cells.LoopRNN(cell_class(case.input_size, case.hidden_size))
        load_cell(module.cell, params, torch)

    x_torch = torch.from_numpy(x.copy())
    dy_torch = torch.from_numpy(dy.copy())

    if case.mode == "train":
        x_torch.requires_grad_(True)

        def step():
            x_torch.grad = None
            y, _ = module(x_torch)
            (y * dy_torch).sum().backward()
            return y, x_torch.grad

        def outputs(result):
            y, dx = result
            return y.detach().numpy(), dx.numpy()

    else:

        def step():
            with torch.no_grad():
                y, _ = module(x_torch)
            return y, None

        def outputs(result):
            return result[0].numpy(), None

    return Side("torch", step, outputs)


def load_cell(cell, params, torch):
    """Copy a one-layer lstmcore ``params`` dict into a torch cell's parameters.

    lstmcore key ``weight_ih_l0`` goes to the cell's ``weight_ih``; both sets of names must
    match exactly.
    """
    targets = dict(cell.named_parameters())
    sources = {key.removesuffix("_l0"): value for key, value in params.items()}
    if set(sources) != set(targets):
        raise ValueError(
            f"lstmcore params {sorted(params)} do not map onto the torch cell's parameters "
            f"{sorted(targets)}; name the torch cell's parameters as lstmcore's"
        )
    with torch.no_grad():
        for name, value in sources.items():
            if tuple(targets[name].shape) != value.shape:
                raise ValueError(f"torch {name} is {tuple(targets[name].shape)}, lstmcore's is {value.shape}")
            targets[name].copy_(torch.from_numpy(value.copy()))


def build_reference(case, x, dy, params):
    """The NumPy reference Side (time-major inside, batch-first outputs for the check)."""
    reference = importlib.import_module("lstmcore.reference")
    kind = case.spec.reference_kind or case.kind
    params = {name: value.copy() for name, value in params.items()}
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))
    dy_tm = np.ascontiguousarray(dy.transpose(1, 0, 2))

    def forward():
        return reference.rnn_forward(
            kind, params, x_tm, None, num_layers=case.num_layers, bidirectional=case.bidirectional, batch_first=False
        )

    if case.mode == "train":

        def step():
            y, _, cache = forward()
            dx, _, _ = reference.rnn_backward(cache, dy_tm, None)
            return y, dx

    else:

        def step():
            y, _, _ = forward()
            return y, None

    def outputs(result):
        y, dx = result
        return y.transpose(1, 0, 2), None if dx is None else dx.transpose(1, 0, 2)

    return Side("reference", step, outputs)


def compare(side_name, got, expected, atol=CHECK_ATOL):
    """None if ``got`` (y, dx) matches lstmcore's ``expected`` within atol times the
    tensor's scale (max(1, max |expected|)), else what differs:
    the tensor, its worst index, both values and the error."""
    for label, a, b in zip(("y", "dx"), got, expected):
        if a is None and b is None:
            continue
        if a is None or b is None or a.shape != b.shape:
            shapes = [None if v is None else v.shape for v in (a, b)]
            return f"{side_name} {label} has shape {shapes[0]}, lstmcore's {shapes[1]}"
        error = np.abs(a.astype(np.float64) - b.astype(np.float64))
        # Relative to the tensor's scale: gradients through 100 steps can reach 1e3.
        scale = max(1.0, float(np.abs(b).max())) if np.all(np.isfinite(b)) else 1.0
        if not np.all(np.isfinite(a)) or not np.all(np.isfinite(b)) or error.max() > atol * scale:
            worst = np.unravel_index(np.argmax(np.where(np.isfinite(error), error, np.inf)), error.shape)
            return (
                f"{side_name} {label} differs from lstmcore's: max |error| {error[worst]:.3g} > {atol:g} * {scale:.3g} at "
                f"(b, t, k) = {tuple(int(i) for i in worst)} ({side_name} {a[worst]:.6g}, lstmcore {b[worst]:.6g})"
            )
    return None
