"""The fixed cost of a call: an LSTM call and step, plain and prepared, at sizes where the
arithmetic is next to nothing, and at two small sizes.

What `lstmcore.prepare` takes away is each call's work besides the arithmetic (checking
and converting the parameters, building each layer-direction's core call, Python around
the core). Each figure is the median time of one call over 15 samples of about 0.05 s,
the core on one thread; docs/inference.md keeps the table.

    python -m benchmarks.fixed_cost [--samples N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import lstmcore
from benchmarks.run import cpu_id, machine_info

# (name, input, hidden, steps, batch, step): step=True times layer.step on x[:, 0].
ROWS = [
    ("LSTM I=H=T=B=1 (the fixed cost)", 1, 1, 1, 1, False),
    ("LSTM I=16 H=32 T=20 B=1", 16, 32, 20, 1, False),
    ("step, I=H=1, B=1 (the fixed cost of a step)", 1, 1, 1, 1, True),
    ("step, I=H=128, B=1", 128, 128, 1, 1, True),
]


def median_call_seconds(call, samples, sample_seconds=0.05):
    for _ in range(50):
        call()
    times = []
    for _ in range(samples):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < sample_seconds:
            call()
            calls += 1
        times.append(elapsed / calls)
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15, help="samples per figure (default 15)")
    args = parser.parse_args(argv)
    previous = lstmcore.get_num_threads()
    lstmcore.set_num_threads(1)
    try:
        peak = max(lstmcore._core.fma_peak_gflops(1, seconds=0.2) for _ in range(3))
        print(f"{machine_info(None)['cpu']} ({cpu_id()}); measured fp32 FMA peak {peak:.1f} GFLOP/s on 1 thread")
        print("| call | plain | prepared | int8 |")
        print("|---|---|---|---|")
        for name, inputs, hidden, steps, batch, step in ROWS:
            layer = lstmcore.LSTM(inputs, hidden, seed=0)
            x = np.random.default_rng(0).standard_normal((batch, steps, inputs)).astype(np.float32)
            sides = [layer, lstmcore.prepare(layer), lstmcore.quantize(layer, "int8")]
            if step:
                x_t = np.ascontiguousarray(x[:, 0])
                state = layer.step(x_t)[1]
                figures = [
                    median_call_seconds(lambda s=side, x_t=x_t, state=state: s.step(x_t, state), args.samples)
                    for side in sides
                ]
            else:
                figures = [median_call_seconds(lambda s=side, x=x: s(x), args.samples) for side in sides]
            print(f"| {name} | " + " | ".join(f"{seconds * 1e6:.1f} us" for seconds in figures) + " |")
    finally:
        lstmcore.set_num_threads(previous)


if __name__ == "__main__":
    main()
