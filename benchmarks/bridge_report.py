"""The table of the PyTorch-bridge benchmark (torch_bridge.py): plain text or Markdown,
headed by the machine, the versions, the threads and what one step is."""

from __future__ import annotations

COLUMNS = ["case", "torch ms", "lstmcore ms", "torch/lstmcore", "range", "target", "met", "rest ms", "layers", "ceiling"]


def render(results, markdown=False):
    body = [_cells(row) for row in results["results"]]
    lines = _header(results)
    if markdown:
        lines = [line + "  " for line in lines]  # a Markdown line break
        lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    else:
        widths = [max(len(cells[k]) for cells in [COLUMNS, *body]) for k in range(len(COLUMNS))]
        for cells in [COLUMNS, *body]:
            lines.append("  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]))
    notes = [f"note: {note}" for note in results["notes"]]
    if markdown and notes:
        notes = ["", *(note + "  " for note in notes)]  # after the table, not a row of it
    lines += notes
    return "\n".join(lines) + "\n"


def _cells(row):
    target = f"{row['target']:.1f}x"
    if "ratio" not in row:  # its check failed: not timed
        return [row["case"], "-", "-", "not timed", "-", target, "-", "-", "-", "-"]
    low, high = row["ratio_range"]
    return [
        row["case"],
        f"{row['torch_ms']:.2f}",
        f"{row['lstmcore_ms']:.2f}",
        f"{row['ratio']:.2f}x",
        f"{low:.2f}-{high:.2f}",
        target,
        "yes" if row["target_met"] else "no",
        f"{row['rest_ms']:.2f}",
        f"{row['layer_ratio']:.2f}x",
        f"{row['ceiling']:.2f}x",
    ]


def _header(results):
    machine, settings = results["machine"], results["settings"]
    threads = settings["threads"]
    return [
        f"{machine['cpu']} ({machine['cpu_id']}), {machine['logical_cpus']} logical CPUs; measured fp32 FMA peak "
        f"{results['fma_peak_gflops']:.1f} GFLOP/s on {threads['lstmcore']} thread(s)",
        f"torch {machine['torch']}, lstmcore {machine['lstmcore']} ({machine['git_commit']}), NumPy {machine['numpy']}, "
        f"Python {machine['python']}",
        f"threads: torch {threads['torch']}, lstmcore {threads['lstmcore']} ({threads['how']}); "
        f"{settings['competitors']} spinning competitor process(es)",
        f"one step: {settings['step']}; median of {settings['repeats']} alternating samples per side",
        "rest: the step without a recurrent layer; layers: torch/lstmcore of the steps less the rest; "
        "ceiling: torch/rest, the ratio were lstmcore's layer free",
    ]
