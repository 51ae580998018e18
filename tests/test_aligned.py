"""Arrays the core writes start on a cache line (python/lstmcore/_util/aligned.py)."""

import numpy as np
import pytest

import lstmcore
from _variants import dtypes
from lstmcore._util import aligned as _aligned


def starts_on_line(array):
    return array.ctypes.data % _aligned.CACHE_LINE == 0


@dtypes
@pytest.mark.parametrize("shape", [(0,), (1,), 7, (3, 5), (100, 64, 256), (2, 3, 1, 5)])
def test_empty_and_zeros_are_aligned_contiguous_and_shaped(shape, dtype):
    for make in (_aligned.empty, _aligned.zeros):
        # Many at once, so that NumPy's own (16- or 32-byte) offsets all occur.
        arrays = [make(shape, dtype) for _ in range(20)]
        expected_shape = (shape,) if isinstance(shape, int) else shape
        for array in arrays:
            assert array.shape == expected_shape and array.dtype == dtype
            assert array.flags.c_contiguous and array.flags.writeable
            assert array.size == 0 or starts_on_line(array)
    assert not np.any(_aligned.zeros((17, 3), dtype))
    like = _aligned.empty_like(np.ones((4, 6), dtype))
    assert like.shape == (4, 6) and like.dtype == dtype and starts_on_line(like)


def test_arrays_do_not_overlap():
    first, second = _aligned.zeros((50,), np.float32), _aligned.zeros((50,), np.float32)
    first[:] = 1
    assert not np.any(second) and not np.may_share_memory(first, second)


@pytest.mark.parametrize("layer_class", [lstmcore.LSTM, lstmcore.GRU])
def test_layer_tapes_and_gradients_start_on_a_line(layer_class):
    layer = layer_class(8, 16, bidirectional=True, seed=0)
    x = np.random.default_rng(0).standard_normal((3, 5, 8)).astype(np.float32)
    _, _, tape = layer.forward(x)
    assert all(starts_on_line(grad) for grad in layer.grads.values())
    assert all(starts_on_line(run.y) for run in tape.runs)
    core_arrays = [a for run in tape.runs for a in _core_tape_arrays(run.tape)]
    core_arrays = [a for a in core_arrays if isinstance(a, np.ndarray)]
    assert core_arrays and all(starts_on_line(a) for a in core_arrays)


def _core_tape_arrays(core_tape):
    """The arrays a core-owned tape object exposes (None where it keeps no such buffer)."""
    names = ("gates", "cells", "cell_updates", "cell_out", "input_norm", "hidden_norm", "cell_norm", "inv_std", "c_n")
    return [getattr(core_tape, name) for name in names if hasattr(core_tape, name)]
