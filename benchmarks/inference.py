"""Inference (forward only) of one recurrent layer: lstmcore (plain, prepared, int8, bfloat16),
ONNX Runtime, PyTorch fp32 and int8.

    python -m benchmarks.inference                       # every case at 1 and 2 threads
    python -m benchmarks.inference --cases 'lstm_h256_*' --threads 2 --repeats 21
    python -m benchmarks.inference --loaded              # one spinning process per core
    python -m benchmarks.inference --quick               # tiny sizes: a smoke test of the harness
    python -m benchmarks.inference --markdown benchmarks/INFERENCE.md

Each case is one layer (LSTM or GRU, batch first, float32, seed 0) and one input x
(B, T, I); one inference is x -> y and the final state, from a zero state. The sides
(inference_sides.py) run on the same weights: lstmcore's plain call ``layer(x)``,
``lstmcore.prepare(layer)``, ``lstmcore.quantize(layer, "int8" | "bfloat16")``, ONNX
Runtime on the graph ``lstmcore.onnx.export`` writes, torch.nn's layer and its dynamic
int8 quantization. Per case and thread count, every
float32 side runs once and its y and final state must match lstmcore's within 1e-4 of
each output's largest magnitude; a case where one does not is not timed and the run
exits with status 1. Then the sides alternate samples in one process (timing.py). The
table gives each side's median time per inference, each reduced-precision side's error
against its float32 model, and the ratios of times the targets name (RATIOS). Prints the table and writes JSON
(default benchmarks/results/inference.json). A side whose package (torch; onnx and
onnxruntime) is absent is left out with a note.
"""

from __future__ import annotations

import argparse
import contextlib
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

if __name__ == "__main__" and "--no-torch" not in sys.argv:
    # Before lstmcore, so that torch runs on its own OpenMP runtime (run.py says why).
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401

import lstmcore  # noqa: E402
from benchmarks import inference_cases, inference_report, inference_sides, output, timing  # noqa: E402
from benchmarks.contention import spin_competitors  # noqa: E402
from benchmarks.reduced_rates import reduced_rates  # noqa: E402
from benchmarks.run import NOISY_SPREAD, cpu_id, machine_info  # noqa: E402
from lstmcore._util import blas as _blas  # noqa: E402

DEFAULT_JSON = HERE / "results" / "inference.json"
# (theirs, ours): the median of the per-round ratios of theirs' time to ours' (above 1:
# ours is faster), for lstmcore's sides against what a user would pick instead.
RATIOS = [
    ("lstmcore", "prepared"),
    ("ort", "prepared"),
    ("torch", "prepared"),
    ("torch_int8", "int8"),
    ("torch", "int8"),
    ("torch", "bfloat16"),
    ("ort", "int8"),
]
MAX_CALLS = 100_000  # per sample: a 20 us inference still makes a sample of sample_seconds
# A sample ends early past 10 sample_seconds (timing.measure's max_sample_s): on busy cores
# a side 1000 times slower than its calibration call would otherwise hold the run for hours.


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--cases",
        default=None,
        help="comma-separated case names or globs, or 'beyond' for the shapes past the issue's\n"
        "(default: the issue's shapes); --list",
    )
    parser.add_argument(
        "--shape", action="append", default=[], help="an extra case KIND:I:H:T:B, e.g. lstm:40:300:200:2 (repeatable)"
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=None, help="alternating samples per side (default 15; quick 3)")
    parser.add_argument("--sample-seconds", type=float, default=None, help="time per sample (default 0.1 s)")
    parser.add_argument("--loaded", action="store_true", help="one spinning process per core while the cases run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds: a smoke test of the harness")
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch sides")
    parser.add_argument("--no-ort", action="store_true", help="leave out the ONNX Runtime side")
    parser.add_argument(
        "--ort-spinning", action="store_true", help="let ORT's idle intra-op threads spin (default: they sleep)"
    )
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the JSON (default %(default)s)")
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown here")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.sample_seconds = args.sample_seconds or (0.002 if args.quick else 0.1)
    try:
        args.threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"expected comma-separated thread counts, got {args.threads!r}")
    if args.repeats < 1 or args.sample_seconds <= 0 or any(t < 1 for t in args.threads):
        parser.error("repeats, sample seconds and thread counts must be positive")
    try:
        shapes = [inference_cases.parse_shape(text) for text in args.shape]
    except ValueError as error:
        parser.error(str(error))
    if args.cases == "beyond":
        args.selected = list(inference_cases.BEYOND_CASES)
    elif args.cases or not shapes:
        patterns = args.cases.split(",") if args.cases else [case.name for case in inference_cases.CASES]
        known = list(inference_cases.CASES_BY_NAME.values())
        args.selected = [case for case in known if any(fnmatch.fnmatchcase(case.name, p) for p in patterns)]
        if not args.selected:
            parser.error(f"no case matches {args.cases!r}; known: {', '.join(inference_cases.CASES_BY_NAME)}")
    else:
        args.selected = []
    args.selected += shapes
    return args


def import_libraries(args, notes):
    """The optional packages this run uses (inference_sides.Libraries), with a note for each absent one."""
    libraries = inference_sides.Libraries()
    notes += ["the torch sides were left out (--no-torch)"] if args.no_torch else []
    notes += ["the ORT side was left out (--no-ort)"] if args.no_ort else []
    if not args.no_torch:
        try:
            import torch
        except ImportError as error:
            notes.append(f"PyTorch not importable ({error}): the torch fp32 and int8 sides are left out")
        else:
            libraries.torch = torch
    if not args.no_ort:
        try:
            import onnx
            import onnxruntime
        except ImportError as error:
            notes.append(f"onnx or onnxruntime not importable ({error}): the ORT side is left out")
        else:
            libraries.onnx, libraries.ort = onnx, onnxruntime
    return libraries


def run_case(models, threads, args):
    """Check, then time, one case at one thread count (the threads already set); the row."""
    case = models.case
    sides = models.sides(threads)
    row = {"case": case.name, "description": case.describe(), "spec": asdict(case), "threads": threads}
    row["lstmcore_threads"] = lstmcore.get_num_threads()
    outputs = {name: side.outputs(side.call()) for name, side in sides.items()}  # also the warm-up
    expected = outputs["lstmcore"]
    row["check"], mismatches = {}, []
    for name in inference_sides.CHECKED:
        if name in outputs:
            error, mismatch = inference_sides.compare(expected, outputs[name])
            row["check"][name] = {"largest_error": error, "mismatch": mismatch}
            if mismatch:
                mismatches.append(f"{name}: {mismatch}")
    row["check_rtol"] = inference_sides.CHECK_RTOL
    row["mismatch"] = "; ".join(mismatches) or None
    row["errors"] = {
        name: inference_sides.reduced_error(outputs[name][0], outputs[reference][0])
        for name, reference in inference_sides.REDUCED.items()
        if name in outputs and reference in outputs
    }
    if row["mismatch"]:
        return row
    calls = {name: side.call for name, side in sides.items()}
    samples, per_sample = timing.measure(
        calls, args.repeats, target_sample_s=args.sample_seconds, max_calls=MAX_CALLS, max_sample_s=10 * args.sample_seconds
    )
    row["timing"] = {name: {**timing.summarize(samples[name]), "calls_per_sample": per_sample[name]} for name in calls}
    row["ms"] = {name: row["timing"][name]["median_ms"] for name in calls}
    row["ratios"] = {}
    for theirs, ours in RATIOS:
        if theirs in calls and ours in calls:
            ratios = [a / b for a, b in zip(samples[theirs], samples[ours])]
            row["ratios"][f"{theirs}/{ours}"] = {"median": statistics.median(ratios), "range": [min(ratios), max(ratios)]}
    return row


def fma_peaks(thread_counts, quick):
    # A peak is a maximum: the best of three, so that a moment of load elsewhere does not lower it.
    seconds = 0.05 if quick else 0.3
    return {str(t): max(lstmcore._core.fma_peak_gflops(t, seconds=seconds) for _ in range(3)) for t in thread_counts}


# Buffers whose read rate bounds a batch-1 float32 step, which reads all of W_hh (4H x H
# float32): L1-sized, then W_hh at H=128, 256 and 1024.
READ_SIZES = {"32 kB": 32 << 10, "256 kB (H=128)": 256 << 10, "1 MB (H=256)": 1 << 20, "16 MB (H=1024)": 16 << 20}


def read_rates(quick):
    # As the peaks: the best of three.
    seconds = 0.02 if quick else 0.2
    return {
        name: max(lstmcore._core.read_rate_gbps(size, seconds=seconds) for _ in range(3)) for name, size in READ_SIZES.items()
    }


def describe_ort(libraries, spinning):
    if libraries.ort is None:
        return None
    from lstmcore.onnx._export import DEFAULT_OPSET

    return (
        f"CPUExecutionProvider, the graph of lstmcore.onnx.export (opset {DEFAULT_OPSET}), "
        "default graph optimizations; intra_op_num_threads = the row's threads, inter_op_num_threads = 1, "
        f'session.intra_op.allow_spinning = "{1 if spinning else 0}"'
        + (
            " (idle pool threads spin between calls)"
            if spinning
            else " (idle pool threads sleep, taking no core from the other sides between samples)"
        )
        + '; session.run(None, {"x": x}) gives y, h_n (and c_n)'
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.list:
        for case in inference_cases.CASES:
            print(f"{case.name:24s} {case.describe()}")
        print("beyond (--cases beyond):")
        for case in inference_cases.BEYOND_CASES:
            print(f"{case.name:24s} {case.describe()}")
        return 0
    notes = []
    libraries = import_libraries(args, notes)
    torch = libraries.torch
    threads = timing.ThreadControl(torch)
    if threads.blas_note:
        notes.append(threads.blas_note)
    previous = (lstmcore._core.requested_threads(), torch.get_num_threads() if torch else None, _blas.blas_threads())
    peaks = fma_peaks(args.threads, args.quick)
    lstmcore.set_num_threads(1)
    rates = reduced_rates(args.quick)
    reads = read_rates(args.quick)
    competitors = spin_competitors(os.cpu_count() or 1) if args.loaded else []
    rows = []
    try:
        time.sleep(0.3 if competitors else 0)
        for case in args.selected:
            models = inference_sides.CaseModels(case.quick() if args.quick else case, libraries, args.ort_spinning)
            for count in args.threads:
                threads.set(count)
                print(f"  {case.name} at {count} thread(s) ...", end="", flush=True)
                row = run_case(models, count, args)
                rows.append(row)
                shown = "NOT TIMED: " + row["mismatch"] if row["mismatch"] else _progress(row)
                print(f" {shown}", flush=True)
    finally:
        for process in competitors:
            process.kill()
            process.wait()
        lstmcore.set_num_threads(previous[0])
        if torch is not None:
            torch.set_num_threads(previous[1])
        if previous[2] is not None:
            _blas.set_blas_threads(previous[2])

    untimed = [row for row in rows if row["mismatch"]]
    notes += [f"{row['case']} at {row['threads']} thread(s): not timed, {row['mismatch']}" for row in untimed]
    for row in [] if args.quick else rows:  # --quick's 2 ms samples are noisy by design
        noisy = [f"{name} {t['spread']:.2f}" for name, t in row.get("timing", {}).items() if t["spread"] > NOISY_SPREAD]
        if noisy:
            notes.append(
                f"{row['case']} at {row['threads']} thread(s) is noisy, spread (IQR / median) above "
                f"{NOISY_SPREAD}: {', '.join(noisy)}"
            )
    sensor = lstmcore._core.load_sensor()
    if sensor["busy_verdicts"]:
        notes.append(
            f"the load sensor found the cores busy {sensor['busy_verdicts']} time(s) in "
            f"{sensor['passes_sensed']} multi-threaded passes (each planned as on busy cores: docs/production.md)"
        )
    machine = {**machine_info(torch), "cpu_id": cpu_id()}
    machine["torch_quantized_engine"] = torch.backends.quantized.engine if torch else None
    machine["onnxruntime"] = libraries.ort.__version__ if libraries.ort else None
    machine["onnx"] = libraries.onnx.__version__ if libraries.onnx else None
    results = {
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": ["python", "-m", "benchmarks.inference", *argv],
        "machine": machine,
        "fma_peak_gflops": peaks,
        "reduced_gmacs": rates,
        "read_gbps": reads,
        "settings": {
            "threads": args.threads,
            "sides": [name for name in inference_sides.SIDES if name in _present_sides(libraries)],
            "threads_how": (
                "lstmcore.set_num_threads (at lstmcore's default count: its default, the load sensor on), "
                "torch.set_num_threads, ORT's intra_op_num_threads"
            ),
            "ort": describe_ort(libraries, args.ort_spinning),
            "ort_spinning": args.ort_spinning,
            "competitors": len(competitors),
            "repeats": args.repeats,
            "sample_seconds": args.sample_seconds,
            "quick": args.quick,
            "timing_method": timing.__doc__.strip(),
        },
        "notes": notes,
        "load_sensor": sensor,
        "results": rows,
    }
    output.publish(results, inference_report.render, args.json, args.markdown)
    if untimed:
        print(
            "error: a float32 side's outputs differ from lstmcore's (see notes); those cases were not timed", file=sys.stderr
        )
        return 1
    return 0


def _present_sides(libraries):
    present = {"lstmcore", "prepared", "int8", "bfloat16"}
    present |= {"ort"} if libraries.ort is not None else set()
    present |= {"torch", "torch_int8"} if libraries.torch is not None else set()
    return present


def _progress(row):
    return ", ".join(f"{name} {inference_report.duration(ms)}" for name, ms in row["ms"].items())


if __name__ == "__main__":
    sys.exit(main())
