"""What bounds a float32 batch-1 step on this CPU: the core's step beside probes of its
product alone (its panels in one order every step, or alternating), and of the
alternating product with the input projection interleaved into its loop or run after it
(benchmarks/step_probes.cpp, built here with the C++ compiler on PATH).

Each figure is microseconds per step: the fastest of 7 rounds within each of `--rounds`
alternating rounds, and the table gives their median. GB/s is W_hh's bytes (4H x H
float32) read per step, to set beside `_core.read_rate_gbps` for W_hh's size. The core's
step is a prepared LSTM at I=1 (its projection next to nothing), B=1, on one thread; where
H is a multiple of 64, also at I=H, where it interleaves its projection as the
`interleaved` probe does.

    python -m benchmarks.step_probes [--hidden 128,176,256] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import lstmcore
from benchmarks.run import cpu_id, machine_info

SOURCE = Path(__file__).with_name("step_probes.cpp")
MODES = ("product", "alternating", "interleaved", "after")
# The modes without a projection, which take any H that is a multiple of 8, and those with.
PRODUCT_MODES, PROJECTION_MODES = MODES[:2], MODES[2:]
# The probes' own rounds (each reports its fastest); the core's step is timed as often.
PROBE_ROUNDS = 7
# A probe runs for well under a second at the sizes here; this bounds a hung one.
PROBE_TIMEOUT_S = 120


def build(directory):
    """The probes' executable, built with $CXX (or c++, g++, clang++) for this CPU."""
    compiler = os.environ.get("CXX") or next(
        (found for name in ("c++", "g++", "clang++") if (found := shutil.which(name))), None
    )
    if compiler is None:
        raise SystemExit("step_probes: no C++ compiler found (set CXX)")
    executable = Path(directory) / "step_probes"
    command = [compiler, "-std=c++17", "-O3", "-march=native", str(SOURCE), "-o", str(executable)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise SystemExit(f"step_probes: {' '.join(command)} failed:\n{done.stderr}")
    return executable


def probe_us(executable, mode, hidden, steps):
    """Microseconds per step of one probe (the fastest of its 7 rounds)."""
    done = subprocess.run(
        [str(executable), mode, str(hidden), str(steps)],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=True,
    )
    name, size, microseconds = done.stdout.split()
    assert (name, int(size)) == (mode, hidden), done.stdout
    return float(microseconds)


def core_step_us(hidden, steps, rounds, inputs=1):
    """The core's step: a prepared LSTM at I=`inputs`, B=1, one thread, over `steps` steps."""
    layer = lstmcore.prepare(lstmcore.LSTM(inputs, hidden, seed=0))
    x = np.random.default_rng(0).standard_normal((1, steps, inputs)).astype(np.float32)
    layer(x)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        layer(x)
        best = min(best, time.perf_counter() - start)
    return best / steps * 1e6


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="128,176,256", help="comma-separated H (multiples of 8; default 128,176,256)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="H=64, few steps: a smoke test of the harness")
    args = parser.parse_args(argv)
    args.hidden = [64] if args.quick else [int(h) for h in args.hidden.split(",")]
    if any(h < 8 or h % 8 for h in args.hidden) or args.rounds < 1:
        parser.error(f"--hidden takes multiples of 8 and --rounds at least 1, got {args.hidden}, {args.rounds}")
    return args


def main(argv=None):
    args = parse_args(argv)
    steps = 20 if args.quick else 2000
    previous = lstmcore._core.requested_threads()
    lstmcore.set_num_threads(1)
    try:
        peak = lstmcore._core.fma_peak_gflops(1, seconds=0.02 if args.quick else 0.2)
        print(f"{machine_info(None)['cpu']} ({cpu_id()}); measured fp32 FMA peak {peak:.1f} GFLOP/s on 1 thread")
        with tempfile.TemporaryDirectory() as directory:
            executable = build(directory)
            figures = {}
            for _ in range(args.rounds):
                for hidden in args.hidden:
                    modes = MODES if hidden % 64 == 0 else PRODUCT_MODES
                    for mode in modes:
                        figures.setdefault((mode, hidden), []).append(probe_us(executable, mode, hidden, steps))
                    figures.setdefault(("core", hidden), []).append(core_step_us(hidden, steps, PROBE_ROUNDS))
                    if hidden % 64 == 0:
                        core_interleaved = core_step_us(hidden, steps, PROBE_ROUNDS, inputs=hidden)
                        figures.setdefault(("core at I=H", hidden), []).append(core_interleaved)
    finally:
        lstmcore.set_num_threads(previous)
    print("| H | W_hh | read rate | core's step | product alone | alternating | core's step at I=H | interleaved | after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for hidden in args.hidden:
        weight_bytes = 4 * hidden * hidden * 4
        rate = lstmcore._core.read_rate_gbps(weight_bytes, seconds=0.02 if args.quick else 0.2)

        def cell(key, hidden=hidden, weight_bytes=weight_bytes):
            if key not in figures:
                return "-"
            us = statistics.median(figures[key])
            return f"{us:.2f} us ({weight_bytes / us / 1e3:.0f} GB/s)"

        columns = ["core", *PRODUCT_MODES, "core at I=H", *PROJECTION_MODES]
        cells = [cell((column, hidden)) for column in columns]
        print(f"| {hidden} | {weight_bytes / 1024:.0f} kB | {rate:.0f} GB/s | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
