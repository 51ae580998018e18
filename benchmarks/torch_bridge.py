"""One PyTorch training step with torch.nn's recurrent layer against lstmcore.torch's.

    python -m benchmarks.torch_bridge                  # every case, default threads
    python -m benchmarks.torch_bridge --cases 'gru_*' --repeats 21
    python -m benchmarks.torch_bridge --loaded         # one spinning process per core
    python -m benchmarks.torch_bridge --quick          # tiny sizes: a smoke test of the harness
    python -m benchmarks.torch_bridge --markdown benchmarks/TORCH_BRIDGE.md

Each case trains a next-token model, Embedding -> recurrent layer -> Linear, one step at
a time (zero_grad, forward, cross-entropy, backward, Adam step); bridge_models.py builds
both models and bridge_cases.py lists the cases. Before timing, one step's loss and every
gradient of lstmcore's model must match PyTorch's (per case tolerance); a case that does
not match is not timed and the run exits with status 1. Then the two sides alternate
samples in one process (timing.py); the table gives each side's median time per step and
torch/lstmcore with the range of the per-round ratios, against the issue's target. A third
side, the same model with no recurrent layer ("rest": Embedding, Linear, loss, Adam), gives
the recurrent layers' own ratio and the ceiling, the ratio a free layer would give. Prints
the table and writes JSON (default benchmarks/results/torch_bridge.json).
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

# Before lstmcore, so that torch runs on its own OpenMP runtime (run.py says why).
import torch  # noqa: E402

import lstmcore  # noqa: E402
from benchmarks import bridge_cases, bridge_models, bridge_report, output, timing  # noqa: E402
from benchmarks.contention import spin_competitors  # noqa: E402
from benchmarks.run import cpu_id, machine_info  # noqa: E402

DEFAULT_JSON = HERE / "results" / "torch_bridge.json"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cases", default=None, help="comma-separated case names or globs (default: all); --list")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--repeats", type=int, default=None, help="alternating samples per side (default 15; quick 3)")
    parser.add_argument("--sample-seconds", type=float, default=None, help="time per sample (default 0.2 s)")
    parser.add_argument("--threads", type=int, default=None, help="pin torch's and lstmcore's threads (default: theirs)")
    parser.add_argument("--loaded", action="store_true", help="one spinning process per core while the cases run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds: a smoke test of the harness")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the JSON (default %(default)s)")
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown here")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.sample_seconds = args.sample_seconds or (0.002 if args.quick else 0.2)
    if args.repeats < 1 or args.sample_seconds <= 0 or (args.threads is not None and args.threads < 1):
        parser.error("repeats, sample seconds and threads must be positive")
    patterns = args.cases.split(",") if args.cases else ["*"]
    args.selected = [case for case in bridge_cases.CASES if any(fnmatch.fnmatchcase(case.name, p) for p in patterns)]
    if not args.selected:
        parser.error(f"no case matches {args.cases!r}; known: {', '.join(bridge_cases.CASES_BY_NAME)}")
    return args


def run_case(case, args):
    """Check, then time, one case; the row of the results."""
    torch_model, lstmcore_model = bridge_models.build_models(case)
    batch = bridge_models.make_batch(case)
    error, mismatch = bridge_models.compare(
        bridge_models.gradients(torch_model, batch), bridge_models.gradients(lstmcore_model, batch), case.check_rtol
    )
    row = {"case": case.name, "description": case.describe(), "spec": asdict(case), "target": case.target_ratio}
    row["check"] = {"largest_error": error, "rtol": case.check_rtol, "mismatch": mismatch}
    if mismatch:
        return row
    steps = {
        "torch": bridge_models.training_step(torch_model, batch),
        "lstmcore": bridge_models.training_step(lstmcore_model, batch),
        "rest": bridge_models.training_step(bridge_models.rest_model(torch_model), batch),
    }
    samples, calls = timing.measure(steps, args.repeats, target_sample_s=args.sample_seconds)
    ratios = [theirs / ours for theirs, ours in zip(samples["torch"], samples["lstmcore"])]
    row["timing"] = {name: {**timing.summarize(samples[name]), "calls_per_sample": calls[name]} for name in steps}
    row["torch_ms"] = row["timing"]["torch"]["median_ms"]
    row["lstmcore_ms"] = row["timing"]["lstmcore"]["median_ms"]
    row["rest_ms"] = row["timing"]["rest"]["median_ms"]
    # What the recurrent layers alone compare at, and the most the whole step could reach
    # were lstmcore's layer free: a target above that ceiling is out of reach of any layer.
    row["layer_ratio"] = (row["torch_ms"] - row["rest_ms"]) / max(row["lstmcore_ms"] - row["rest_ms"], 1e-9)
    row["ceiling"] = row["torch_ms"] / row["rest_ms"]
    row["ratio"] = statistics.median(ratios)
    row["ratio_range"] = [min(ratios), max(ratios)]
    row["target_met"] = row["ratio"] >= case.target_ratio
    return row


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for case in bridge_cases.CASES:
            print(f"{case.name:32s} target {case.target_ratio:.1f}x  {case.describe()}")
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        lstmcore.set_num_threads(args.threads)
    threads = {
        "torch": torch.get_num_threads(),
        "lstmcore": lstmcore.get_num_threads(),
        "how": "pinned by --threads" if args.threads else "each library's default; lstmcore.torch follows torch's count",
    }
    # A peak is a maximum: the best of three, so that a moment of load elsewhere does not lower it.
    peak_seconds = 0.05 if args.quick else 0.3
    peak = max(lstmcore._core.fma_peak_gflops(threads["lstmcore"], seconds=peak_seconds) for _ in range(3))
    # The peak's runs are multi-threaded passes too, before any load: the sensor's counts in
    # the notes are to be the cases' own.
    lstmcore._core.reset_load_sensor(lstmcore._core.load_sensor()["enabled"])
    competitors = spin_competitors(os.cpu_count() or 1) if args.loaded else []
    rows = []
    try:
        time.sleep(0.3 if competitors else 0)
        for case in args.selected:
            print(f"  {case.name} ...", end="", flush=True)
            row = run_case(case.quick() if args.quick else case, args)
            rows.append(row)
            shown = "NOT TIMED: " + row["check"]["mismatch"] if "ratio" not in row else f"{row['ratio']:.2f}x"
            print(f" {shown}", flush=True)
    finally:
        for process in competitors:
            process.kill()
            process.wait()

    untimed = [row for row in rows if row["check"]["mismatch"]]
    notes = [f"{row['case']}: not timed, lstmcore's model differs: {row['check']['mismatch']}" for row in untimed]
    sensor = lstmcore._core.load_sensor()
    if sensor["busy_verdicts"] or sensor["holds_renewed"]:
        # Renewed holds count too: a pass planned during one runs on one thread unsensed.
        notes.append(
            f"the load sensor found the cores busy {sensor['busy_verdicts']} time(s) in "
            f"{sensor['passes_sensed']} multi-threaded passes and renewed its hold {sensor['holds_renewed']} "
            "time(s) without one (passes meanwhile planned as on busy cores: docs/production.md)"
        )
    results = {
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": ["python", "-m", "benchmarks.torch_bridge", *(sys.argv[1:] if argv is None else argv)],
        "machine": {**machine_info(torch), "cpu_id": cpu_id()},
        "fma_peak_gflops": peak,
        "settings": {
            "threads": threads,
            "competitors": len(competitors),
            "repeats": args.repeats,
            "sample_seconds": args.sample_seconds,
            "quick": args.quick,
            "step": bridge_models.STEP,
            "timing_method": timing.__doc__.strip(),
        },
        "notes": notes,
        "load_sensor": sensor,
        "results": rows,
    }
    output.publish(results, bridge_report.render, args.json, args.markdown)
    if untimed:
        print("error: lstmcore's model differs from PyTorch's (see notes); those cases were not timed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
