"""Interleaved timing, and one thread count for every library in the process.

Method: every side has already run once (the correctness check is the warm-up). Each
side is then timed once more to choose how many calls make one sample (enough for about
``target_sample_s``, so a 1 ms case is not timed at the clock's resolution). Then, per
repeat, every side takes one sample, in an order rotated each repeat, so that machine
noise (other jobs, frequency changes) falls on all sides alike. A side may be limited to
fewer repeats (the slow NumPy reference, which run.py times on its own afterwards). The
result is the median per call.
Python's garbage collector is off while timing.
"""

from __future__ import annotations

import gc
import math
import statistics
import time

import lstmcore
from lstmcore._util import blas as _blas


def measure(steps, repeats, limits=None, target_sample_s=0.02, max_calls=50, max_sample_s=None):
    """Time ``steps`` (name -> callable) interleaved; name -> list of seconds per call.

    limits: name -> at most this many samples (and one call per sample).
    max_sample_s: a sample ends after the call that takes it past this many seconds (its
        time per call over the calls made), so that a side that became much slower than
        its calibration call (other work on the cores) cannot hold a run for minutes. The
        clock is then read after every call (tens of nanoseconds each); None: not.
    """
    limits = limits or {}
    calls = {}
    for name, step in steps.items():
        if name in limits:
            calls[name] = 1
            continue
        start = time.perf_counter()
        step()
        elapsed = time.perf_counter() - start
        calls[name] = max(1, min(max_calls, math.ceil(target_sample_s / max(elapsed, 1e-9))))
    samples = {name: [] for name in steps}
    names = list(steps)
    if not names:
        return samples, calls
    gc.collect()
    gc.disable()
    try:
        for repeat in range(repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                if len(samples[name]) >= limits.get(name, repeats):
                    continue
                step = steps[name]
                start = time.perf_counter()
                if max_sample_s is None:
                    for _ in range(calls[name]):
                        step()
                    made = calls[name]
                else:
                    deadline, made = start + max_sample_s, 0
                    while made < calls[name]:
                        step()
                        made += 1
                        if time.perf_counter() > deadline:
                            break
                samples[name].append((time.perf_counter() - start) / made)
    finally:
        gc.enable()
    return samples, calls


def let_blas_threads_idle(seconds=0.25):
    """Sleep long enough for NumPy's BLAS threads, woken by the reference, to stop spinning.

    OpenBLAS's idle threads spin (yielding) for about 0.1 s after each call; a side timed
    meanwhile shares its cores with them and runs several times slower in that window.
    """
    time.sleep(seconds)


def summarize(seconds):
    """Median and spread (interquartile range over median) of samples, in ms."""
    ms = [s * 1e3 for s in seconds]
    median = statistics.median(ms)
    if len(ms) >= 4:
        q1, _, q3 = statistics.quantiles(ms, n=4)
        spread = (q3 - q1) / median
    else:
        spread = (max(ms) - min(ms)) / median
    return {"median_ms": median, "spread": spread, "samples_ms": ms}


class ThreadControl:
    """Sets lstmcore's, PyTorch's and NumPy's BLAS thread counts together.

    NumPy's BLAS (OpenBLAS in NumPy's wheels) runs the reference's products; its thread
    count is set through lstmcore's own handle on it (lstmcore/_util/blas.py) when NumPy's BLAS
    is an OpenBLAS, else left as it is and ``blas_note`` says so.

    lstmcore at its default thread count is left at its default (set_num_threads(0)), so
    that the benchmarks measure what users get, load sensor included
    (docs/production.md); another count is set.
    """

    def __init__(self, torch=None):
        self.torch = torch
        previous = lstmcore._core.requested_threads()
        lstmcore.set_num_threads(0)
        self.lstmcore_default = lstmcore.get_num_threads()
        lstmcore.set_num_threads(previous)
        self._blas_settable = _blas.blas_threads() is not None
        self.blas_note = (
            None
            if self._blas_settable
            else "NumPy's BLAS thread count could not be set: the reference runs on its default threads"
        )

    def set(self, threads):
        lstmcore.set_num_threads(0 if threads == self.lstmcore_default else threads)
        if self.torch is not None:
            self.torch.set_num_threads(threads)
        if self._blas_settable:
            _blas.set_blas_threads(threads)
