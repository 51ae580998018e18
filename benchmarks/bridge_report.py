"""The table of the PyTorch-bridge benchmark (torch_bridge.py): plain text or Markdown,
headed by the machine, the versions, the threads and what one step is."""

from __future__ import annotations

from benchmarks import output

COLUMNS = ["case", "torch ms", "lstmcore ms", "torch/lstmcore", "range", "target", "met", "rest ms", "layers", "ceiling"]


def render(results, markdown=False):
    body = [_cells(row) for row in results["results"]]
    return output.table(_header(results), COLUMNS, body, results["notes"], markdown)


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
