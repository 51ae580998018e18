"""The table of the inference benchmark (inference.py): plain text or Markdown, headed by
the machine, its measured FMA peaks, the versions and how each side was set up."""

from __future__ import annotations

from benchmarks import output

COLUMNS = [
    "case",
    "threads",
    "lstmcore",
    "prepared",
    "ORT",
    "torch fp32",
    "torch int8",
    "int8 max err",
    "int8 mean err",
    "ORT/prep",
    "fp32/prep",
    "int8/prep",
]
RATIO_SIDES = ("ort", "torch", "torch_int8")


def render(results, markdown=False):
    body = [_cells(row) for row in results["results"]]
    return output.table(_header(results), COLUMNS, body, results["notes"], markdown)


def duration(ms):
    """A time per call: microseconds below a millisecond, else milliseconds."""
    if ms is None:
        return "-"
    return f"{ms * 1e3:.1f} us" if ms < 1 else f"{ms:.2f} ms"


def _cells(row):
    head = [row["case"], str(row["threads"])]
    if row["mismatch"]:
        return head + ["not timed"] + ["-"] * (len(COLUMNS) - 3)
    ms = row["ms"]
    error = row.get("int8_error")
    ratios = [f"{row['ratios'][side]['median']:.2f}x" if side in row["ratios"] else "-" for side in RATIO_SIDES]
    return [
        *head,
        *(duration(ms.get(side)) for side in ("lstmcore", "prepared", "ort", "torch", "torch_int8")),
        "-" if error is None else f"{error['max_abs']:.2g}",
        "-" if error is None else f"{error['mean_abs']:.2g}",
        *ratios,
    ]


def _header(results):
    machine, settings = results["machine"], results["settings"]
    peaks = ", ".join(f"{peak:.1f} on {threads} thread(s)" for threads, peak in results["fma_peak_gflops"].items())
    versions = [
        f"lstmcore {machine['lstmcore']} ({machine['git_commit']})",
        f"NumPy {machine['numpy']}",
        f"Python {machine['python']}",
    ]
    if machine.get("torch"):
        versions.append(f"torch {machine['torch']} (quantized engine {machine['torch_quantized_engine']})")
    if machine.get("onnxruntime"):
        versions.append(f"onnxruntime {machine['onnxruntime']}, onnx {machine['onnx']}")
    lines = [
        f"{machine['cpu']} ({machine['cpu_id']}), {machine['logical_cpus']} logical CPUs; "
        f"measured fp32 FMA peak (GFLOP/s): {peaks}",
        ", ".join(versions),
        f"threads per row: {settings['threads_how']}; {settings['competitors']} spinning competitor process(es)",
    ]
    if settings.get("ort"):
        lines.append(f"ORT: {settings['ort']}")
    lines += [
        f"each figure: the median time of one inference (x -> y and final state) over {settings['repeats']} "
        f"alternating samples per side of about {settings['sample_seconds']:g} s",
        "X/prep: the median of the per-round ratios of side X's time to prepared's (above 1: prepared is faster); "
        "int8 err: |y| error of torch's dynamic int8 against its float32 model",
    ]
    return lines
