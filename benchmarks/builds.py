"""Two builds of lstmcore side by side: is a change to the core within noise of before?

Each build is a checkout whose ``python/`` folder holds a built ``lstmcore`` (the
extension beside the sources, as a development build leaves it). Two builds cannot share
one process (both are the package ``lstmcore``), so every sample is a short child
process that imports one build and times one case; the parent runs the builds' samples
alternately, in an order rotated each round, so that the machine's noise (other jobs,
frequency changes) falls on both alike. The table gives each build's median time per
call and the ratio new/old with the spread of the per-round ratios.

    python -m benchmarks.builds --old ../before --new . --cases default --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD_TIMEOUT_S = 600


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="checkout of the build before the change")
    parser.add_argument("--new", default=str(HERE.parent), help="checkout of the build after (default: this one)")
    parser.add_argument("--cases", default="default", help="comma-separated names or globs, or 'default'")
    parser.add_argument(
        "--threads", type=int, help="threads for both builds (default: lstmcore's own default, as users run it)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="samples per build (default 5)")
    parser.add_argument("--seconds", type=float, default=0.3, help="time per sample (default 0.3 s)")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args(argv)


def sample(checkout, case, threads, seconds):
    """Seconds per call of ``case`` in a child process that imports ``checkout``'s build."""
    env = dict(os.environ, PYTHONPATH=str(Path(checkout).resolve() / "python"))
    command = [sys.executable, "-m", "benchmarks._build_sample", case, str(threads or 0), str(seconds)]
    done = subprocess.run(
        command, cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: case {case} failed:\n{done.stderr}")
    return json.loads(done.stdout)["seconds_per_call"]


def compare(args, names):
    builds = {"old": args.old, "new": args.new}
    rows = []
    for name in names:
        times = {"old": [], "new": []}
        for round_index in range(args.rounds):
            order = ["old", "new"] if round_index % 2 == 0 else ["new", "old"]
            for build in order:
                times[build].append(sample(builds[build], name, args.threads, args.seconds))
        ratios = [new / old for old, new in zip(times["old"], times["new"])]
        row = {
            "case": name,
            "old_ms": 1e3 * statistics.median(times["old"]),
            "new_ms": 1e3 * statistics.median(times["new"]),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
        rows.append(row)
        print(
            f"{name:42s} old {row['old_ms']:9.3f} ms  new {row['new_ms']:9.3f} ms  "
            f"new/old {row['ratio']:.3f} [{row['ratio_min']:.3f}, {row['ratio_max']:.3f}]",
            flush=True,
        )
    return rows


def main(argv=None):
    args = parse_args(argv)
    from benchmarks.cases import select

    patterns = None if args.cases == "default" else args.cases.split(",")
    names = [case.name for case in select(patterns)]
    threads = args.threads or "default"
    print(f"{len(names)} cases, {threads} threads, {args.rounds} rounds of {args.seconds} s per build")
    rows = compare(args, names)
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
