"""The rate of lstmcore's reduced-precision products on this machine, next to its fp32
FMA peak: the limit the int8 and bfloat16 inference reaches at large batches.

One product of 256 rows of activations (depth 256) with a 1024 x 256 weight matrix, the
shape of an LSTM's I=H=256 gate product, on one thread, for each precision on each
kernel the build has (AMX tiles, and AVX-512 with AMX not allowed). GMAC/s: multiply-adds
per second, the activations' conversion included; best of three samples.
"""

from __future__ import annotations

import time

import numpy as np

import lstmcore
from lstmcore.inference._quantization import reduce_matrix

ROWS, DEPTH, COLUMNS = 256, 256, 1024


def product_rate(precision, amx, seconds=0.2):
    """GMAC/s of the product on one thread, and the kernel it ran on."""
    core = lstmcore._core
    rng = np.random.default_rng(0)
    matrix = core.ReducedMatrix(precision, *reduce_matrix(rng.standard_normal((COLUMNS, DEPTH)), precision))
    a = rng.standard_normal((ROWS, DEPTH)).astype(np.float32)
    core.diagnostics.allow_amx(amx)
    try:
        kernel = matrix.kernel
        core.reduced_product(matrix, a)
        best = float("inf")
        for _ in range(3):
            calls, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds:
                core.reduced_product(matrix, a)
                calls += 1
            best = min(best, elapsed / calls)
    finally:
        core.diagnostics.allow_amx(True)
    return ROWS * DEPTH * COLUMNS / best / 1e9, kernel


def reduced_rates(quick=False):
    """{precision/kernel: GMAC/s} for every kernel this build runs."""
    rates = {}
    for precision in ("int8", "bfloat16"):
        for amx in (True, False):
            rate, kernel = product_rate(precision, amx, seconds=0.02 if quick else 0.2)
            # keyed by the setting too: a build without AMX runs the same kernel both times
            rates[f"{precision} ({kernel}{'' if amx else ', AMX not allowed'})"] = rate
    return rates
