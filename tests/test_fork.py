"""A child made by fork after the parent ran multi-threaded passes computes what the parent
computes, with no hang: os.fork, a child of a child, a Python thread in the child, and a
multiprocessing pool with the fork start method (gunicorn --preload and Celery's prefork
workers do the same)."""

import multiprocessing
import os
import sys
import threading

import numpy as np
import pytest

import lstmcore
from _fork import in_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX's")

# Shapes that take two threads: split over hidden units (B=2) and over the batch (B=32).
CASES = {
    "lstm_units": (lstmcore.LSTM(32, 256, seed=0), (2, 20, 32)),
    "lstm_batch": (lstmcore.LSTM(32, 128, seed=1), (32, 20, 32)),
    "gru_units": (lstmcore.GRU(32, 256, seed=2), (2, 20, 32)),
    "layer_norm": (lstmcore.LSTM(32, 256, seed=3, layer_norm=True), (4, 20, 32)),
}


def _pass(layer, x):
    y, _, tape = layer.forward(x)
    dx, _ = layer.backward(tape, np.ones_like(y))
    return y, dx


def _inputs(shape):
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("case", CASES)
def test_forked_child_computes_what_the_parent_computes(case, two_threads):
    layer, shape = CASES[case]
    x = _inputs(shape)
    y, dx = _pass(layer, x)
    layer.zero_grad()

    def same_in_child():
        y_child, dx_child = _pass(layer, x)
        return np.array_equal(y_child, y) and np.array_equal(dx_child, dx)

    assert in_child(same_in_child) == 0


def test_child_of_a_forked_child_and_a_thread_in_the_child(two_threads):
    layer, shape = CASES["lstm_units"]
    x = _inputs(shape)
    y, _ = layer(x)

    def grandchild_and_thread():
        first, _ = layer(x)  # the child's own threads start
        grandchild = in_child(lambda: np.array_equal(layer(x)[0], y))
        # The thread comes after the fork: when a thread that ran passes ends, OpenMP tears
        # its pool down in the background, and a fork meanwhile may copy a lock held by an
        # exiting pool thread (docs/production.md).
        results = []
        worker = threading.Thread(target=lambda: results.append(layer(x)[0]))
        worker.start()
        worker.join(30)
        return np.array_equal(first, y) and len(results) == 1 and np.array_equal(results[0], y) and grandchild == 0

    assert in_child(grandchild_and_thread) == 0


def _pool_task(seed):
    layer, shape = CASES["lstm_units"]
    return layer(np.random.default_rng(seed).normal(size=shape).astype(np.float32))[0]


@pytest.mark.skipif(sys.platform != "linux", reason="the fork start method is safe to test on Linux")
def test_fork_pool_workers_after_the_parent_ran_passes(two_threads):
    expected = [_pool_task(seed) for seed in range(4)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(_pool_task, range(4)).get(timeout=60)
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)
