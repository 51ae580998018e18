"""Test-only hooks into the core's kernels and plans (cpp/bindings/diagnostics.cpp)."""

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

_Floats = NDArray[np.floating[Any]]

# Bytes of packed input weights up to which a backward computes dx step by step.
per_step_input_gradient_bytes: int
# Rows from which an AVX2 build's bfloat16 products run on float32's tiles; 0 where
# the build has no such path (reduced_bf16_tiles.hpp).
bfloat16_tile_rows: int
# Rows of float32's product tiles in this build: 8 with 32 SIMD registers, else 6.
tile_rows: int

def allow_amx(allowed: bool) -> None: ...
def gate_tanh(x: _Floats) -> _Floats: ...
def gate_sigmoid(x: _Floats) -> _Floats: ...
def pass_plan(
    batch: int,
    input: int,
    hidden: int,
    gates: int,
    itemsize: int,
    backward: bool,
    batch_sizes: NDArray[np.int64] | None = None,
    steps: int = 1,
) -> tuple[int, Literal["units", "batch"]]: ...
def panel_ordered_product(a: _Floats, w: _Floats, batch_of_one: bool, last_to_first: bool) -> _Floats: ...
def reduced_pass_plan(
    batch: int,
    input: int,
    hidden: int,
    gates: int,
    precision: str,
    batch_sizes: NDArray[np.int64] | None = None,
    steps: int = 1,
    depth: int = 0,
) -> tuple[int, Literal["panels", "batch"]]: ...
def interleaves_projection(input: int, hidden: int, steps: int, gates: int, itemsize: int, threads: int) -> bool: ...
def built_for() -> list[str]: ...
def sense_team(slowest_start_us: float, longest_sleep_us: float) -> None: ...
def dx_after_the_loop(
    batch: int,
    input: int,
    hidden: int,
    gates: int,
    itemsize: int,
    batch_sizes: NDArray[np.int64] | None = None,
) -> tuple[bool, ...]: ...
