"""lstmcore and PyTorch on busy cores: one CPU-bound competing process per core.

    python benchmarks/contention.py                    # the contended cases, both scenarios
    python benchmarks/contention.py --competitors 0    # the same on a quiet machine
    python benchmarks/contention.py --quick            # tiny sizes: a smoke test
    python benchmarks/contention.py --markdown benchmarks/CONTENTION.md

Two scenarios, at the default settings (the thread counts each library picks by itself)
and at one thread:
- competitors: ``--competitors`` processes (default: one per core) spin while every case
  is timed in this process, lstmcore and PyTorch in alternating blocks. Reported per case: the pass
  at the default thread count over the same pass at one thread (lstmcore's and PyTorch's),
  and PyTorch's time over lstmcore's at the default thread count.
- two processes: two lstmcore processes run the same case side by side on the machine,
  first both at one thread, then both at the default; reported: each process's time at
  the default over its time at one thread.

Prints a table and writes JSON (default benchmarks/results/contention.json). Each figure is
the median of the samples of its blocks (timing.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

if __name__ == "__main__" and "--no-torch" not in sys.argv and "--worker" not in sys.argv:
    # before lstmcore, so that torch runs on its own OpenMP runtime (run.py says why)
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401

import numpy as np  # noqa: E402

import lstmcore  # noqa: E402
from benchmarks import sides, timing  # noqa: E402
from benchmarks.cases import Case  # noqa: E402
from benchmarks.run import machine_info  # noqa: E402

DEFAULT_JSON = HERE / "results" / "contention.json"

# Shapes from a small training step (the one users reported) to a large one; `lengths`:
# uneven sequence lengths (lstmcore only: PyTorch takes them as packed sequences).
CASES = [
    (Case("small_train_i12_h64_t29_b16", "lstm", "train", 64, 29, 16, input_size=12), False),
    (Case("small_train_i12_h64_t29_b16_lengths", "lstm", "train", 64, 29, 16, input_size=12), True),
    (Case("small_infer_h64_t50_b8", "lstm", "infer", 64, 50, 8, input_size=32), False),
    (Case("lstm_infer_h256_t100_b1", "lstm", "infer", 256, 100, 1), False),
    (Case("gru_train_h256_t50_b4", "gru", "train", 256, 50, 4), False),
    (Case("lstm_train_h128_t100_b32", "lstm", "train", 128, 100, 32), False),
    (Case("lstm_infer_h256_t100_b64", "lstm", "infer", 256, 100, 64), False),
    (Case("lstm_train_h256_t100_b64", "lstm", "train", 256, 100, 64), False),
]
CASES_BY_NAME = {case.name: (case, lengths) for case, lengths in CASES}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cases", default=None, help="comma-separated case names (default: all); --list shows them")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--competitors", type=int, default=os.cpu_count(), help="spinning processes (default: cores)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of blocks per thread count (default 5)")
    parser.add_argument("--seconds", type=float, default=None, help="each process's time in the two-process runs")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds: a smoke test")
    parser.add_argument("--no-torch", action="store_true", help="do not import or time PyTorch")
    parser.add_argument("--no-two-processes", action="store_true", help="skip the two-process scenario")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the JSON (default %(default)s)")
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.seconds = args.seconds or (0.5 if args.quick else 4.0)
    if args.competitors < 0 or args.rounds < 1 or args.seconds <= 0:
        parser.error("competitors must be >= 0, rounds >= 1 and seconds > 0")
    names = args.cases.split(",") if args.cases else list(CASES_BY_NAME)
    unknown = [name for name in names if name not in CASES_BY_NAME]
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES_BY_NAME)}")
    args.selected = [CASES_BY_NAME[name] for name in names]
    return args


def lengths_for(case):
    """Uneven lengths, longest first, from 1 to T (the longest is T)."""
    rng = np.random.default_rng(7)
    lengths = np.sort(rng.integers(1, case.seq_len + 1, size=case.batch))[::-1].copy()
    lengths[0] = case.seq_len
    return lengths


def lstmcore_step(case, with_lengths, x, dy):
    layer, side = sides.build_lstmcore(case, x, dy)
    if not with_lengths:
        return layer, side.step
    lengths = lengths_for(case)

    def step():
        _y, _, tape = layer.forward(x, lengths=lengths)
        return layer.backward(tape, dy)

    return layer, step


def time_in_process(case, with_lengths, torch, default_threads, rounds):
    """Samples of each library at one thread and at its default, in blocks; seconds.

    A block times one library at one thread count. Rounds alternate the blocks, so slow
    changes of the load fall on all of them alike; after PyTorch's blocks the process
    sleeps until PyTorch's OpenMP threads, which spin after each call, have gone idle,
    so that they do not compete with the next block.
    """
    x, dy = sides.make_inputs(case)
    layer, lstmcore_side = lstmcore_step(case, with_lengths, x, dy)
    steps = {"lstmcore": lstmcore_side}
    if torch is not None and not with_lengths:
        steps["torch"] = sides.build_torch(case, x, dy, torch, layer.params).step
    samples = {(name, threads): [] for name in steps for threads in (1, "default")}
    sensor = {"passes_sensed": 0, "busy_verdicts": 0, "holds_renewed": 0}  # in lstmcore's default blocks
    for _ in range(rounds):
        for name, step in steps.items():
            for threads in (1, "default"):
                if name == "lstmcore":
                    # 0 is lstmcore's default (the one the load sensor adapts), not a count set.
                    lstmcore.set_num_threads(1 if threads == 1 else 0)
                else:
                    torch.set_num_threads(1 if threads == 1 else default_threads["torch"])
                before = lstmcore._core.load_sensor()
                step()  # the warm-up of this thread count
                # About half a second a block: as long as a user's loop between changes of
                # load, so that the sensor's first look at a block weighs as it would there.
                got, _ = timing.measure({name: step}, repeats=8, target_sample_s=0.06, max_calls=200)
                samples[(name, threads)].extend(got[name])
                if name == "lstmcore" and threads == "default":
                    after = lstmcore._core.load_sensor()
                    for key in sensor:
                        sensor[key] += after[key] - before[key]
                if name == "torch":
                    time.sleep(0.3)
    lstmcore.set_num_threads(0)
    if torch is not None:
        torch.set_num_threads(default_threads["torch"])
    times = {f"{name}@{threads}": statistics.median(seconds) for (name, threads), seconds in samples.items()}
    return times, sensor


def worker(args):
    """The two-process scenario's worker: run one case for args.seconds; print the median."""
    case, with_lengths = CASES_BY_NAME[args.worker]
    if args.quick:
        case = case.quick()
    lstmcore.set_num_threads(args.threads)
    x, dy = sides.make_inputs(case)
    _, step = lstmcore_step(case, with_lengths, x, dy)
    step()
    seconds = []
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end or len(seconds) < 3:
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"median_s": statistics.median(seconds), "calls": len(seconds)}))


def two_processes(case_name, threads, args):
    """Two workers side by side; each one's median seconds per call."""
    command = [sys.executable, __file__, "--worker", case_name, "--threads", str(threads), "--seconds", str(args.seconds)]
    command += ["--quick"] if args.quick else []
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for process in workers:
        out, _ = process.communicate(timeout=args.seconds * 20 + 120)
        if process.returncode != 0:
            raise RuntimeError(f"a worker of {case_name} exited with {process.returncode}")
        results.append(json.loads(out)["median_s"])
    return results


def spin_competitors(count):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def render(rows, machine, args, markdown=False):
    head = [
        "case",
        "lstmcore 1t ms",
        "default ms",
        "default/1t",
        "torch 1t ms",
        "default ms",
        "default/1t",
        "torch/lstmcore",
        "2 procs default/1t",
    ]

    def ms(value):
        return "-" if value is None else f"{value * 1e3:.2f}"

    def ratio(a, b):
        return "-" if a is None or b is None else f"{a / b:.2f}x"

    body = []
    for row in rows:
        t = row["times"]
        procs = row.get("two_processes")
        proc_ratio = "-" if not procs else "/".join(f"{d / o:.2f}x" for d, o in zip(procs["default"], procs["one"]))
        body.append(
            [
                row["case"],
                ms(t.get("lstmcore@1")),
                ms(t.get("lstmcore@default")),
                ratio(t.get("lstmcore@default"), t.get("lstmcore@1")),
                ms(t.get("torch@1")),
                ms(t.get("torch@default")),
                ratio(t.get("torch@default"), t.get("torch@1")),
                ratio(t.get("torch@default"), t.get("lstmcore@default")),
                proc_ratio,
            ]
        )
    title = (
        f"{machine['cpu']}, {machine['logical_cpus']} logical CPUs, measured fp32 FMA peak "
        f"{machine['fma_peak_gflops']:.0f} GFLOP/s; {args.competitors} competing processes; default threads: "
        f"lstmcore {machine['default_threads']['lstmcore']}, torch {machine['default_threads'].get('torch', '-')}"
    )
    if markdown:
        lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines) + "\n"
    widths = [max(len(str(r[k])) for r in [head, *body]) for k in range(len(head))]
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(cells, widths)) for cells in body]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for case, lengths in CASES:
            print(f"{case.name}: {case.describe()}{', uneven lengths' if lengths else ''}")
        return 0
    if args.worker:
        worker(args)
        return 0
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch not importable: torch columns skipped", file=sys.stderr)
    default_threads = {"lstmcore": lstmcore.get_num_threads()}
    if torch is not None:
        default_threads["torch"] = torch.get_num_threads()
    machine = machine_info(torch)
    machine["fma_peak_gflops"] = lstmcore._core.fma_peak_gflops(os.cpu_count() or 1, 0.5)
    machine["default_threads"] = default_threads
    rows = []
    for case, with_lengths in args.selected:
        case_run = case.quick() if args.quick else case
        competitors = spin_competitors(args.competitors)
        try:
            time.sleep(0.3)
            times, sensor = time_in_process(case_run, with_lengths, torch, default_threads, args.rounds)
        finally:
            for process in competitors:
                process.kill()
                process.wait()
        row = {
            "case": case.name,
            "description": case_run.describe(),
            "lengths": with_lengths,
            "times": times,
            "load_sensor": sensor,
        }
        if not args.no_two_processes:
            row["two_processes"] = {
                "one": two_processes(case.name, 1, args),
                "default": two_processes(case.name, 0, args),
            }
        rows.append(row)
        print(render([row], machine, args).splitlines()[-1], flush=True)
    print()
    print(render(rows, machine, args))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"machine": machine, "competitors": args.competitors, "rows": rows}, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(render(rows, machine, args, markdown=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
