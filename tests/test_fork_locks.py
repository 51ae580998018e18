"""A child made by fork while another Python thread was inside lstmcore's Python-level
locks (a layer's backward, NumPy's BLAS pinned to one thread) starts with those locks free
and that state reset, instead of waiting forever or keeping BLAS on one thread."""

import os
import threading
import time

import numpy as np
import pytest

import lstmcore
from _fork import in_child
from lstmcore._util import blas as _blas

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX's")


def _train_step(layer, x):
    y, _, tape = layer.forward(x)
    layer.backward(tape, np.ones_like(y))
    return True


class _Holding:
    """A thread inside ``context`` until stop(): what fork sees mid-call."""

    def __init__(self, context):
        self._inside, self._leave = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(context,))

    def _run(self, context):
        with context:
            self._inside.set()
            self._leave.wait(60)

    def __enter__(self):
        self._thread.start()
        assert self._inside.wait(10)
        return self

    def __exit__(self, *exc):
        self._leave.set()
        self._thread.join(10)


@pytest.mark.parametrize("cls", [lstmcore.LSTM, lstmcore.GRU])
def test_backward_in_a_child_forked_while_another_thread_held_the_grads_lock(cls):
    layer = cls(4, 8, seed=0)
    x = np.ones((2, 3, 4), np.float32)
    with _Holding(layer._grads_lock):  # as a thread inside layer.backward holds it
        assert in_child(lambda: _train_step(layer, x)) == 0


@pytest.mark.skipif(
    os.environ.get("LSTMCORE_SANITIZE") == "ON",
    reason="GCC 12's AddressSanitizer allocator takes no lock around fork: a child forked while"
    " the other thread is inside its malloc (the core allocates with the GIL released) waits"
    " forever on the allocator's mutex; glibc's fork takes the heap's locks, so unsanitized"
    " builds (the portable and main CI steps) run this test",
)
def test_children_forked_while_a_thread_loops_backward_on_the_same_layer():
    layer = lstmcore.LSTM(8, 64, seed=0)
    x = np.random.default_rng(0).normal(size=(16, 20, 8)).astype(np.float32)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            _train_step(layer, x)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        for _ in range(5):
            time.sleep(0.03)
            assert in_child(lambda: _train_step(layer, x[:2])) == 0
    finally:
        stop.set()
        thread.join(30)


@pytest.mark.skipif(_blas.blas_threads() is None, reason="NumPy's BLAS here is not an OpenBLAS")
def test_a_child_forked_inside_one_blas_thread_gets_the_blas_count_from_before(monkeypatch):
    monkeypatch.delenv("LSTMCORE_KEEP_BLAS_THREADS", raising=False)
    before = _blas.blas_threads()
    _blas.set_blas_threads(2)
    try:
        with _Holding(_blas.one_blas_thread()):
            assert _blas.blas_threads() == 1 and _blas._depth == 1

            def reset():
                if _blas._depth != 0 or _blas.blas_threads() != 2:
                    return False
                with _blas.one_blas_thread():
                    pinned = _blas.blas_threads() == 1
                return pinned and _blas._depth == 0 and _blas.blas_threads() == 2

            assert in_child(reset) == 0
        assert _blas.blas_threads() == 2 and _blas._depth == 0
    finally:
        _blas.set_blas_threads(before)


@pytest.mark.skipif(_blas.blas_threads() is None, reason="NumPy's BLAS here is not an OpenBLAS")
def test_a_child_forked_while_another_thread_held_the_blas_lock_can_use_it(monkeypatch):
    monkeypatch.delenv("LSTMCORE_KEEP_BLAS_THREADS", raising=False)
    model = lstmcore.Sequential([lstmcore.LSTM(3, 4, seed=0), lstmcore.LastStep(), lstmcore.Dense(4, 2, seed=1)])
    x = np.ones((2, 5, 3), np.float32)
    expected = model.predict(x)
    with _Holding(_blas._lock):
        assert in_child(lambda: np.array_equal(model.predict(x), expected)) == 0
