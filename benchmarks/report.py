"""The tables a person reads: plain text for the terminal, Markdown for RESULTS.md."""

from __future__ import annotations

COLUMNS = [
    # (heading, row key, format)
    ("case", "case", "{}"),
    ("threads", "threads", "{}"),
    ("lstmcore ms", "lstmcore_ms", "{:.2f}"),
    ("reference ms", "reference_ms", "{:.1f}"),
    ("torch ms", "torch_ms", "{:.2f}"),
    ("torch/lstmcore", "torch_over_lstmcore", "{:.2f}x"),
    ("reference/lstmcore", "reference_over_lstmcore", "{:.1f}x"),
    ("GFLOP/s", "lstmcore_gflops", "{:.1f}"),
    ("% peak", "percent_of_peak", "{:.1f}"),
    ("spread", "spread", "{:.0%}"),
]


def _cell(row, key, fmt):
    value = row.get(key)
    return "-" if value is None else fmt.format(value)


def scaling_rows(rows):
    """Per case run at several thread counts: ms at each and speedup over the fewest."""
    by_case = {}
    for row in rows:
        by_case.setdefault(row["case"], {})[row["threads"]] = row
    scaling = []
    for case, runs in by_case.items():
        counts = sorted(runs)
        if len(counts) < 2:
            continue
        base = runs[counts[0]]
        for threads in counts[1:]:
            row = runs[threads]
            scaling.append(
                {
                    "case": case,
                    "threads_from": counts[0],
                    "threads_to": threads,
                    "lstmcore_ms_from": base["lstmcore_ms"],
                    "lstmcore_ms_to": row["lstmcore_ms"],
                    "lstmcore_speedup": _ratio(base["lstmcore_ms"], row["lstmcore_ms"]),
                    "torch_speedup": _ratio(base["torch_ms"], row["torch_ms"]),
                }
            )
    return scaling


def _ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


SCALING_HEADINGS = ["case", "threads", "lstmcore ms", "lstmcore speedup", "torch speedup"]


def _scaling_cells(row):
    return [
        row["case"],
        f"{row['threads_from']}->{row['threads_to']}",
        f"{_cell(row, 'lstmcore_ms_from', '{:.2f}')} -> {_cell(row, 'lstmcore_ms_to', '{:.2f}')}",
        _cell(row, "lstmcore_speedup", "{:.2f}x"),
        _cell(row, "torch_speedup", "{:.2f}x"),
    ]


def _grid(headings, body, markdown):
    if markdown:
        lines = ["| " + " | ".join(headings) + " |", "|" + "|".join("---" for _ in headings) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(cells[i]) for cells in body)) if body else len(h) for i, h in enumerate(headings)]
    line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    )
    return "\n".join([line(headings), line(["-" * w for w in widths])] + [line(cells) for cells in body])


def _machine_line(machine):
    simd = machine.get("simd")
    return (
        f"Machine: {machine.get('logical_cpus')} logical CPUs"
        + (f" with {', '.join(simd)}" if simd else "")
        + f"; Python {machine.get('python')}, NumPy {machine.get('numpy')}, PyTorch {machine.get('torch') or 'not installed'}"
    )


def render(results, markdown=False):
    """The whole report: settings, the main table, thread scaling, notes."""
    settings = results["settings"]
    peaks = ", ".join(f"{t} thread{'s' if int(t) > 1 else ''}: {p:.1f}" for t, p in results["fma_peak_gflops"].items())
    head = [
        f"lstmcore {results['machine']['lstmcore']} at {results['machine']['git_commit'] or 'unknown commit'}, "
        f"{results['created']}, {results['machine']['cpu']}",
        _machine_line(results["machine"]),
        f"Measured fp32 FMA peak, GFLOP/s: {peaks}",
        f"fp32, batch-first x; lstmcore and torch: median of {settings['repeats']} interleaved samples; "
        f"the reference: {settings['reference_repeats']} samples on its own afterwards; ratios > 1 mean "
        "lstmcore is faster." + (" QUICK MODE: tiny sizes, not a measurement." if settings["quick"] else ""),
        "GFLOP/s counts matrix products only (see flop_model in the JSON); % peak is of the "
        "measured FMA peak at the row's thread count. spread: the widest interquartile range "
        "over median of lstmcore's and torch's samples.",
    ]
    looped = sorted({row["case"] for row in results["results"] if row.get("torch_cell")})
    if looped:
        head.append(
            f"The torch column of {', '.join(looped)} is a Python loop over a cell (benchmarks/torch_cells.py): "
            "PyTorch has no such layer."
        )
    body = [[_cell(row, key, fmt) for _, key, fmt in COLUMNS] for row in results["results"]]
    parts = ["\n".join(("- " + h) if markdown else h for h in head), _grid([c[0] for c in COLUMNS], body, markdown)]
    if results["thread_scaling"]:
        title = "Thread scaling (median ms, speedup over the fewest threads)"
        parts.append(
            ("### " if markdown else "")
            + title
            + "\n"
            + ("\n" if markdown else "")
            + _grid(SCALING_HEADINGS, [_scaling_cells(r) for r in results["thread_scaling"]], markdown)
        )
    notes = list(results["notes"])
    threads_of = {}  # (case, note) -> thread counts it was seen at, in order
    for row in results["results"]:
        for note in row["notes"]:
            threads_of.setdefault((row["case"], note), []).append(str(row["threads"]))
    for (case, note), threads in threads_of.items():
        notes.append(f"{case} ({', '.join(threads)} thread{'s' if threads != ['1'] else ''}): {note}")
    if notes:
        parts.append("Notes:\n" + ("\n" if markdown else "") + "\n".join("- " + n for n in notes))
    return "\n\n".join(parts) + "\n"
