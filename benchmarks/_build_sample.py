"""One sample for builds.py: time one case with whichever lstmcore PYTHONPATH gives.

Threads 0 means lstmcore's default. Uses only lstmcore's public API, so that one harness times builds from before and after
a change to the package's insides. Prints {"seconds_per_call": ...} as JSON.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time

import lstmcore
from benchmarks import sides
from benchmarks.cases import CASES_BY_NAME

WARM_UP_CALLS = 10
WARM_UP_SECONDS = 1.0


def main(case_name, threads, seconds):
    case = CASES_BY_NAME[case_name]
    if threads:  # else lstmcore's default, which also lets it sense busy cores
        lstmcore.set_num_threads(threads)
    x, dy = sides.make_inputs(case)
    _, side = sides.build_lstmcore(case, x, dy)
    # Warm-up: the process's heap reaches its steady size over the first calls (each new
    # block is a page fault per 4 kB), which a training loop's later steps do not pay.
    start, warm_calls = time.perf_counter(), 0
    while warm_calls < WARM_UP_CALLS and (warm_calls < 2 or time.perf_counter() - start < WARM_UP_SECONDS):
        side.step()
        warm_calls += 1
    start = time.perf_counter()
    side.step()
    calls = max(1, int(seconds / 5 / max(time.perf_counter() - start, 1e-9)))
    per_call = []
    gc.disable()
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            side.step()
        per_call.append((time.perf_counter() - start) / calls)
    print(json.dumps({"seconds_per_call": statistics.median(per_call)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
