"""Helpers of the lstmcore.torch tests (imported only by files that have torch): a torch.nn
module and its lstmcore.torch twin holding the same weights, the dtypes, and a comparison
in a dtype's tolerance.

Tolerances, |got - expected| <= tol * scale + tol * |expected| with scale the tensor's
largest magnitude (at least 1), as in tests/test_torch_interop.py: float64, 1e-12 (the
same arithmetic as torch.nn's in another order, so only rounding differs); float32,
1e-5 (both sides compute in float32, dot products of a few dozen terms per step over at
most 5 steps and 2 layers; tests/README.md, "Tolerances").
"""

from __future__ import annotations

import pytest
import torch

import lstmcore.torch as lt
from _compare import assert_close, scaled_atol

DTYPES = (torch.float32, torch.float64)
torch_dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


def twins(kind, *args, dtype=torch.float64, seed=0, **options):
    """(torch.nn.<kind>, lstmcore.torch.<kind>) built with the same arguments, the second
    holding the first's weights."""
    torch.manual_seed(seed)
    reference = getattr(torch.nn, kind)(*args, dtype=dtype, **options)
    ours = getattr(lt, kind)(*args, dtype=dtype, **options)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def parts(value):
    """A state (a tensor, or a tuple of them) as a list of tensors."""
    return list(value) if isinstance(value, (tuple, list)) else [value]


def check(name, got, expected, dtype=None, tol=None):
    """got against expected (tensors) in the dtype's tolerance; both must have that dtype."""
    dtype = expected.dtype if dtype is None else dtype
    assert got.dtype == expected.dtype == dtype, f"{name}: dtype {got.dtype}, expected {expected.dtype}"
    tol = TOLERANCE[dtype] if tol is None else tol
    expected = expected.detach().numpy()
    assert_close(name, got.detach().numpy(), expected, tol, scaled_atol(tol, expected))


def check_all(names, got, expected, dtype=None, tol=None):
    """Several tensors, named one by one; None (no gradient) must match None."""
    assert len(names) == len(got) == len(expected), (len(names), len(got), len(expected))
    for name, mine, theirs in zip(names, got, expected):
        if theirs is None or mine is None:
            assert mine is None and theirs is None, f"{name}: got {mine}, expected {theirs}"
        else:
            check(name, mine, theirs, dtype, tol)
