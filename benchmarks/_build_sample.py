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


def main(case_name, threads, seconds):
    case = CASES_BY_NAME[case_name]
    if threads:  # else lstmcore's default, which also lets it sense busy cores
        lstmcore.set_num_threads(threads)
    x, dy = sides.make_inputs(case)
    _, side = sides.build_lstmcore(case, x, dy)
    side.step()  # warm-up: first-touch of the tape, thread start
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
