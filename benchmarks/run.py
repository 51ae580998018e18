"""Benchmark lstmcore against PyTorch's CPU layers and the NumPy reference.

    python benchmarks/run.py                         # the default cases, default threads
    python benchmarks/run.py --threads 1,2           # each case at 1 and 2 threads, + scaling
    python benchmarks/run.py --cases 'lstm_train_*' --repeats 21 --no-reference
    python benchmarks/run.py --quick                 # tiny sizes: a smoke test of the harness
    python benchmarks/run.py --markdown benchmarks/RESULTS.md

Prints a table and writes the same results as JSON (default benchmarks/results/latest.json).
Before timing, every side runs once on the same weights and inputs and its outputs must
match lstmcore's (fp32, atol 1e-4; per variant in cases.py); a side that does not match is not timed, the
mismatch is reported, and the run exits with status 1. Timing method: see timing.py;
FLOP counting: see cases.count_flops.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))  # `benchmarks` as a package, from any working directory

if __name__ == "__main__" and "--no-torch" not in sys.argv:
    # lstmcore and torch share one OpenMP runtime in a process (both need libgomp.so.1), the
    # one loaded first. Import torch first so that it runs on its own bundled runtime, as
    # its users see it; the JSON records which runtime was loaded.
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401

import numpy as np  # noqa: E402

import lstmcore  # noqa: E402
from benchmarks import cases as case_registry  # noqa: E402
from benchmarks import report, sides, timing  # noqa: E402

DEFAULT_JSON = HERE / "results" / "latest.json"
SCHEMA_VERSION = 1
NOISY_SPREAD = 0.25  # a row whose samples spread more than this (IQR / median) is flagged


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--cases", default=None, help="comma-separated case names or globs (default: the default set); --list shows them"
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--threads", default=None, help=f"comma-separated thread counts (default: {lstmcore.get_num_threads()})"
    )
    parser.add_argument("--repeats", type=int, default=None, help="interleaved samples per side (default 11; quick 3)")
    parser.add_argument(
        "--reference-repeats", type=int, default=None, help="samples of the slow NumPy reference (default 2; quick 1)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds: a smoke test of the harness")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the JSON (default %(default)s)")
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown here (e.g. benchmarks/RESULTS.md)")
    parser.add_argument("--no-torch", action="store_true", help="do not import or time PyTorch")
    parser.add_argument("--no-reference", action="store_true", help="do not time the NumPy reference")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 11)
    args.reference_repeats = args.reference_repeats or (1 if args.quick else 2)
    if args.threads:
        args.threads = [int(t) for t in args.threads.split(",")]
    else:
        args.threads = [lstmcore.get_num_threads()]
    if any(t < 1 for t in args.threads) or args.repeats < 1 or args.reference_repeats < 1:
        parser.error("thread counts and repeats must be positive")
    return args


def import_torch(notes):
    try:
        import torch
    except ImportError as error:
        notes.append(f"PyTorch not importable ({error}): torch columns skipped")
        return None
    return torch


def machine_info(torch):
    return {
        "cpu": _cpu_name(),
        "logical_cpus": os.cpu_count(),
        "simd": _simd_flags(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lstmcore": lstmcore.__version__,
        "torch": None if torch is None else torch.__version__,
        "torch_mkldnn_enabled": None if torch is None else bool(torch.backends.mkldnn.enabled),
        "git_commit": _git_commit(),
        "openmp_runtimes": _loaded_libraries("gomp", "libomp", "libiomp"),
        "blas_runtimes": _loaded_libraries("openblas", "mkl_rt", "libblas"),
    }


def cpu_id():
    """ "family F, model M" from /proc/cpuinfo: the model name of a cloud CPU is often generic."""
    fields = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return f"family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}"


def _loaded_libraries(*fragments):
    """Shared libraries loaded in this process whose file name has one of ``fragments``
    (Linux only; None elsewhere)."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = {line.split()[-1] for line in maps if line.split() and line.split()[-1].startswith("/")}
    return sorted(p for p in paths if any(f in Path(p).name for f in fragments))


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _simd_flags():
    """The vector instruction sets the core's kernels can use, as /proc/cpuinfo names them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags]
    except OSError:
        pass
    return None


def _git_commit():
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def run_case(case, threads, args, torch, peak):
    """Build, check and time one case at one thread count; the row of the results."""
    row = {
        "case": case.name,
        "threads": threads,
        "description": case.describe(),
        "kind": case.kind,
        "variant": case.variant,
        "torch_cell": case.spec.torch_cell,
        "mode": case.mode,
        "input_size": case.input_size,
        "hidden_size": case.hidden_size,
        "proj_size": case.proj_size,
        "seq_len": case.seq_len,
        "batch": case.batch,
        "num_layers": case.num_layers,
        "bidirectional": case.bidirectional,
        "flops": case_registry.count_flops(case),
        "checks": {},
        "notes": [],
    }
    x, dy = sides.make_inputs(case)
    built = {}
    layer, built["lstmcore"] = sides.build_lstmcore(case, x, dy)
    builders = {}
    if torch is not None:
        builders["torch"] = lambda: sides.build_torch(case, x, dy, torch, layer.params)
    if args.reference:
        builders["reference"] = lambda: sides.build_reference(case, x, dy, layer.params)
    for name, build in builders.items():
        try:
            built[name] = build()
        except Exception as error:  # e.g. a variant's weights that do not map onto the torch cell
            row["notes"].append(f"{name}: could not be built ({type(error).__name__}: {error})")

    # The check is also every side's warm-up run.
    expected = built["lstmcore"].outputs(built["lstmcore"].step())
    for name in [n for n in built if n != "lstmcore"]:
        try:
            got = built[name].outputs(built[name].step())
        except Exception as error:  # a side that cannot run this case is reported, not fatal
            row["notes"].append(f"{name}: failed to run ({type(error).__name__}: {error})")
            del built[name]
            continue
        mismatch = sides.compare(name, got, expected, case.spec.check_atol)
        row["checks"][name] = mismatch or "ok"
        if mismatch:
            row["notes"].append(f"NOT TIMED, outputs differ: {mismatch}")
            del built[name]

    # lstmcore and torch interleaved; the slow NumPy reference afterwards, on its own: its
    # BLAS threads keep spinning for a while after each call and took a core from
    # whichever side ran next (samples several times slower).
    timing.let_blas_threads_idle()
    target = 0.002 if args.quick else 0.02
    compared = {name: side.step for name, side in built.items() if name != "reference"}
    samples, calls = timing.measure(compared, args.repeats, target_sample_s=target)
    if "reference" in built:
        ref_samples, ref_calls = timing.measure(
            {"reference": built["reference"].step}, args.reference_repeats, limits={"reference": args.reference_repeats}
        )
        samples.update(ref_samples)
        calls.update(ref_calls)
        timing.let_blas_threads_idle()
    row["timing"] = {}
    for name in ("lstmcore", "reference", "torch"):
        if name in samples:
            row["timing"][name] = {**timing.summarize(samples[name]), "calls_per_sample": calls[name]}
        row[f"{name}_ms"] = row["timing"][name]["median_ms"] if name in samples else None
    lstmcore_ms = row["lstmcore_ms"]
    for name in ("torch", "reference"):
        theirs = row[f"{name}_ms"]
        row[f"{name}_over_lstmcore"] = theirs / lstmcore_ms if theirs is not None and lstmcore_ms else None
    spreads = [row["timing"][name]["spread"] for name in row["timing"] if name != "reference"]
    row["spread"] = max(spreads) if spreads else None
    row["noisy"] = row["spread"] is not None and row["spread"] > NOISY_SPREAD
    row["lstmcore_gflops"] = row["flops"] / (lstmcore_ms * 1e6) if lstmcore_ms else None
    row["percent_of_peak"] = 100 * row["lstmcore_gflops"] / peak if row["lstmcore_gflops"] else None
    if row["percent_of_peak"] is not None and row["percent_of_peak"] > 100:
        row["notes"].append("above 100% of the peak: the peak measurement at the start was disturbed")
    return row


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        for case in case_registry.CASES:
            print(f"{case.name:40s} {'default' if case.default else '       '}  {case.describe()}")
        return 0
    try:
        selected = case_registry.select(args.cases.split(",") if args.cases else None)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.quick:
        selected = [case.quick() for case in selected]

    notes = []
    torch = None if args.no_torch else import_torch(notes)
    if args.no_torch:
        notes.append("--no-torch: torch columns skipped")
    args.reference = not args.no_reference
    if args.no_reference:
        notes.append("--no-reference: reference columns skipped")
    else:
        try:
            importlib.import_module("lstmcore.reference")
        except ImportError as error:
            notes.append(f"lstmcore.reference not importable ({error}): reference columns skipped")
            args.reference = False
    threads_control = timing.ThreadControl(torch)
    if threads_control.blas_note and args.reference:
        notes.append(threads_control.blas_note)
    for note in notes:
        print(f"note: {note}")

    # A peak is a maximum: the best of three short measurements, so that a moment of
    # load from elsewhere on the machine does not lower it.
    peak_seconds = 0.05 if args.quick else 0.3
    peaks = {}
    for threads in args.threads:
        peaks[threads] = max(lstmcore._core.fma_peak_gflops(threads, seconds=peak_seconds) for _ in range(3))
        print(f"measured fp32 FMA peak at {threads} thread(s): {peaks[threads]:.1f} GFLOP/s", flush=True)

    previous_threads = lstmcore.get_num_threads()
    rows = []
    try:
        for threads in args.threads:
            threads_control.set(threads)
            for case in selected:
                print(f"  {case.name} at {threads} thread(s) ...", end="", flush=True)
                row = run_case(case, threads, args, torch, peaks[threads])
                rows.append(row)
                shown = ", ".join(
                    f"{name} {row[name + '_ms']:.2f} ms" for name in ("lstmcore", "torch", "reference") if row[name + "_ms"]
                )
                print(f" {shown or 'nothing timed'}", flush=True)
    finally:
        threads_control.set(previous_threads)

    # Busy verdicts on a machine meant to be quiet planned some passes on one thread.
    sensor = lstmcore._core.load_sensor()
    if sensor["busy_verdicts"]:
        notes.append(
            f"the load sensor found the cores busy {sensor['busy_verdicts']} time(s) in "
            f"{sensor['passes_sensed']} multi-threaded passes (docs/production.md)"
        )
    noisy = [f"{row['case']} ({row['threads']})" for row in rows if row["noisy"]]
    if noisy and not args.quick:
        notes.append(f"noisy rows (spread above {NOISY_SPREAD:.0%}; was the machine busy?): {', '.join(noisy)}")
    results = {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": ["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)],
        "machine": machine_info(torch),
        "settings": {
            "threads": args.threads,
            "repeats": args.repeats,
            "reference_repeats": args.reference_repeats,
            "quick": args.quick,
            "torch": torch is not None,
            "reference": args.reference,
            "dtype": "float32",
            "layout": "batch_first (B, T, I) for lstmcore and torch; time-major for the reference",
            "check_atol": {case.name: case.spec.check_atol for case in selected},
            "timing_method": timing.__doc__.strip(),
        },
        "flop_model": case_registry.FLOP_MODEL,
        "fma_peak_gflops": {str(t): p for t, p in peaks.items()},
        "notes": notes,
        "load_sensor": sensor,
        "results": rows,
        "thread_scaling": report.scaling_rows(rows),
    }
    text = report.render(results)
    print()
    print(text, end="")
    json_path = Path(args.json)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {json_path}")
    if args.markdown:
        markdown_path = Path(args.markdown)
        markdown_path.write_text(
            "# lstmcore benchmark results\n\n"
            f"`python {' '.join(results['command'])}`\n\n" + report.render(results, markdown=True)
        )
        print(f"wrote {markdown_path}")
    mismatched = [
        row["case"]
        for row in rows
        if any(check != "ok" and not check.startswith("not checked") for check in row["checks"].values())
    ]
    if mismatched:
        print(f"error: outputs differ from lstmcore's in {', '.join(mismatched)} (see notes)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
