"""Several Python threads calling one prepared model at once: calls per second in all,
against one thread, and against a lock that lets one call run at a time.

A server that answers requests from a thread pool calls one prepared model from several
threads. The core releases the GIL while it runs, so calls overlap; this measures how
far. The model: LSTM(16, 64) -> LastStep -> Dense(64, 3), a batch of 4 sequences of 50
steps a call, the core on one thread per call (lstmcore.set_num_threads(1), as a server
with one Python thread per core would set it). Each figure is the best of three samples.

    python -m benchmarks.prepared_threads [--seconds S]
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

import lstmcore
from benchmarks.run import cpu_id, machine_info


def calls_per_second(call, threads, seconds):
    """Calls completed per second by `threads` Python threads calling `call` in a loop."""
    stop = threading.Event()
    counts = [0] * threads

    def work(index):
        while not stop.is_set():
            call()
            counts[index] += 1

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    return sum(counts) / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per sample (default 1 s)")
    args = parser.parse_args(argv)
    model = lstmcore.Sequential([lstmcore.LSTM(16, 64, seed=0), lstmcore.LastStep(), lstmcore.Dense(64, 3, seed=1)])
    prepared = lstmcore.prepare(model)
    x = np.random.default_rng(0).standard_normal((4, 50, 16)).astype(np.float32)
    lock = threading.Lock()

    def one_at_a_time():
        with lock:
            prepared(x)

    previous = lstmcore.get_num_threads()
    lstmcore.set_num_threads(1)
    try:
        peak = max(lstmcore._core.fma_peak_gflops(1, seconds=0.2) for _ in range(3))
        print(f"{machine_info(None)['cpu']} ({cpu_id()}); measured fp32 FMA peak {peak:.1f} GFLOP/s on 1 thread")
        alone = max(calls_per_second(lambda: prepared(x), 1, args.seconds) for _ in range(3))
        print(f"1 Python thread: {alone:.0f} calls/s ({1e6 / alone:.0f} us a call)")
        for threads in (2, 4):
            overlapped = max(calls_per_second(lambda: prepared(x), threads, args.seconds) for _ in range(3))
            serial = max(calls_per_second(one_at_a_time, threads, args.seconds) for _ in range(3))
            print(
                f"{threads} Python threads: {overlapped:.0f} calls/s ({overlapped / alone:.2f}x one thread); "
                f"one call at a time under a lock: {serial:.0f} calls/s"
            )
    finally:
        lstmcore.set_num_threads(previous)


if __name__ == "__main__":
    main()
