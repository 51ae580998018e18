"""One data-parallel training step over MPI, timed: what docs/distributed.md's scaling model
stands on. Run under mpiexec, e.g. on one machine of 2 cores:

    OMP_NUM_THREADS=1 mpiexec -n 2 python -m benchmarks.distributed_step --json out/ranks2.json
    OMP_NUM_THREADS=2 mpiexec -n 1 python -m benchmarks.distributed_step --json out/ranks1.json

LSTM(I, H) -> LastStep -> Dense(H, 1), Adam, mse, a global batch of --batch rows of --steps
time steps. fit runs 2 epochs of --iterations steps; the second is timed (the first
allocates). Rank 0 prints one line and writes it as JSON: seconds per step, samples per
second, the seconds per step spent in the step's Allreduce (the summing of the gradients,
waiting for the slower rank included), and the seconds of one Allreduce of the same
buffer alone (the median of 10).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import time

import numpy as np

import lstmcore
from lstmcore.nn import _mpi


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--steps", type=int, default=32, help="time steps per sequence")
    parser.add_argument("--batch", type=int, default=32, help="the global batch")
    parser.add_argument("--iterations", type=int, default=4, help="optimizer steps per epoch")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args(argv)

    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    reduce_seconds = [0.0]
    plain_reduce = _mpi.Gradients.reduce

    def timed_reduce(self, *rest, **options):
        started = time.perf_counter()
        try:
            return plain_reduce(self, *rest, **options)
        finally:
            reduce_seconds[0] += time.perf_counter() - started

    _mpi.Gradients.reduce = timed_reduce

    rng = np.random.default_rng(0)
    samples = args.batch * args.iterations
    x = rng.normal(size=(samples, args.steps, args.input)).astype(np.float32)
    y = rng.normal(size=(samples, 1)).astype(np.float32)
    model = lstmcore.Sequential(
        [lstmcore.LSTM(args.input, args.hidden, seed=0), lstmcore.LastStep(), lstmcore.Dense(args.hidden, 1, seed=1)]
    )
    history = model.fit(x, y, loss="mse", epochs=1, batch_size=args.batch, distributed="mpi", verbose=False)
    reduce_seconds[0] = 0.0
    history = model.fit(x, y, loss="mse", epochs=1, batch_size=args.batch, distributed="mpi", verbose=False)
    step = args.batch / history.history["samples_per_s"][-1]

    parameters = sum(value.size for value in model.params.values())
    buffer = np.zeros(parameters + 4, np.float32)
    alone = []
    for _ in range(10):
        comm.Barrier()
        started = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        alone.append(time.perf_counter() - started)
    if comm.Get_rank() != 0:
        return
    result = {
        "ranks": comm.Get_size(),
        "threads_per_rank": lstmcore.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "model": f"LSTM({args.input}, {args.hidden}) -> LastStep -> Dense({args.hidden}, 1)",
        "parameters": int(parameters),
        "allreduce_bytes": int(buffer.nbytes),
        "batch": args.batch,
        "time_steps": args.steps,
        "seconds_per_step": step,
        "samples_per_s": args.batch / step,
        "allreduce_in_step_s": reduce_seconds[0] / args.iterations,
        "allreduce_alone_s": statistics.median(alone) if comm.Get_size() > 1 else 0.0,
        "mpi": MPI.Get_library_version().splitlines()[0].strip(),
        "machine": platform.processor() or platform.machine(),
    }
    print(
        f"{result['ranks']} rank(s) x {result['threads_per_rank']} thread(s): {step * 1e3:.1f} ms/step, "
        f"{result['samples_per_s']:.1f} samples/s, Allreduce {result['allreduce_in_step_s'] * 1e3:.1f} ms/step "
        f"({result['allreduce_in_step_s'] / step:.1%}), alone {result['allreduce_alone_s'] * 1e3:.2f} ms "
        f"for {result['allreduce_bytes'] / 1e6:.1f} MB"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
