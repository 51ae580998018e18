"""The GRU's two forms side by side in one build: reset_after=False (Cho et al.; ONNX's
default) against reset_after=True (PyTorch's), on the same weights and inputs, timed
interleaved (timing.py). Reset-before splits a step's recurrent product in two, and when
a pass is split over units its threads meet twice a step instead of once; the table says
what that costs, with the split each pass runs. The load sensor is off, so that both
forms run the plan of a quiet machine whatever other work the machine has.

    python -m benchmarks.gru_forms                 # the GRU cases of cases.py and a few more
    python -m benchmarks.gru_forms --json forms.json --repeats 9
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace

import numpy as np

import lstmcore
from benchmarks import cases, sides, timing

# Beside the registry's GRU cases: shapes whose passes split over units on two threads.
EXTRA = [
    cases.Case("gru_train_h512_t35_b8", "gru", "train", 512, 35, 8, default=False),
    cases.Case("gru_train_h256_t50_b4", "gru", "train", 256, 50, 4, default=False),
]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="samples per form (default 7)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args(argv)


def split_of(case, backward):
    """How the core splits one of the case's passes: (threads, 'units' or 'batch')."""
    return lstmcore._core.diagnostics.pass_plan(case.batch, case.input_size, case.hidden_size, 3, 4, backward, None)


def time_case(case, repeats):
    x, dy = sides.make_inputs(case)
    steps = {}
    for reset_after in (True, False):
        layer = lstmcore.GRU(case.input_size, case.hidden_size, seed=0, reset_after=reset_after)
        if case.mode == "train":

            def step(layer=layer):
                _, _, tape = layer.forward(x)
                layer.backward(tape, dy)

        else:

            def step(layer=layer):
                layer(x)

        step()  # warm-up: the heap reaches its steady size
        steps["after" if reset_after else "before"] = step
    samples, _ = timing.measure(steps, repeats)
    ratios = [b / a for a, b in zip(samples["after"], samples["before"])]
    return {
        "case": case.name,
        "describe": case.describe(),
        "split": {"forward": split_of(case, False), "backward": split_of(case, True) if case.mode == "train" else None},
        "after": timing.summarize(samples["after"]),
        "before": timing.summarize(samples["before"]),
        "before_over_after": statistics.median(ratios),
        "range": [min(ratios), max(ratios)],
    }


def main(argv=None):
    args = parse_args(argv)
    sensing = lstmcore._core.load_sensor()["enabled"]
    lstmcore._core.reset_load_sensor(False)
    try:
        return run(args)
    finally:
        lstmcore._core.reset_load_sensor(sensing)


def run(args):
    selected = [case for case in cases.CASES if case.kind == "gru"] + EXTRA
    if args.quick:
        selected = [replace(case.quick(), name=case.name) for case in selected[:1]]
    print(f"{len(selected)} cases, {lstmcore.get_num_threads()} threads, {args.repeats} samples per form")
    print(f"{'case':32s} {'split (fwd/bwd)':18s} {'after (ms)':>11s} {'before (ms)':>12s} {'before/after':>13s}  range")
    rows = []
    for case in selected:
        row = time_case(case, args.repeats)
        rows.append(row)
        split = "/".join(f"{s[0]} {s[1]}" for s in row["split"].values() if s)
        low, high = row["range"]
        print(
            f"{case.name:32s} {split:18s} {row['after']['median_ms']:11.3f} {row['before']['median_ms']:12.3f} "
            f"{row['before_over_after']:13.3f}  {low:.3f}-{high:.3f}"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"threads": lstmcore.get_num_threads(), "numpy": np.__version__, "results": rows}, file, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
