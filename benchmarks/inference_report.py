"""The table of the inference benchmark (inference.py): plain text or Markdown, headed by
the machine, its measured FMA peaks, the versions and how each side was set up."""

from __future__ import annotations

from benchmarks import output

COLUMNS = [
    "case",
    "threads",
    "prepared",
    "int8",
    "bf16",
    "ORT",
    "torch fp32",
    "torch int8",
    "ORT/prep",
    "fp32/prep",
    "t-int8/int8",
    "fp32/int8",
    "fp32/bf16",
    "int8 err",
    "bf16 err",
    "t-int8 err",
]
TIMED = ("prepared", "int8", "bfloat16", "ort", "torch", "torch_int8")
RATIOS = ("ort/prepared", "torch/prepared", "torch_int8/int8", "torch/int8", "torch/bfloat16")
ERRORS = ("int8", "bfloat16", "torch_int8")


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
    ms, errors = row["ms"], row.get("errors", {})
    ratios = [f"{row['ratios'][name]['median']:.2f}x" if name in row["ratios"] else "-" for name in RATIOS]
    return [
        *head,
        *(duration(ms.get(side)) for side in TIMED),
        *ratios,
        *(f"{errors[name]['max_abs']:.1g} / {errors[name]['mean_abs']:.1g}" if name in errors else "-" for name in ERRORS),
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
    rates = ", ".join(f"{name} {rate:.0f}" for name, rate in results.get("reduced_gmacs", {}).items())
    lines = [
        f"{machine['cpu']} ({machine['cpu_id']}), {machine['logical_cpus']} logical CPUs; "
        f"measured fp32 FMA peak (GFLOP/s): {peaks}",
        f"reduced products on 1 thread (GMAC/s, benchmarks/reduced_rates.py; fp32's peak is half its GFLOP/s): {rates}",
    ]
    if results.get("read_gbps"):
        reads = ", ".join(f"{name} {rate:.0f}" for name, rate in results["read_gbps"].items())
        lines.append(
            "reads of a buffer again and again on 1 thread (GB/s, _core.read_rate_gbps: from the cache level "
            f"it fits, or memory; W_hh is 4H x H float32): {reads}"
        )
    lines += [
        ", ".join(versions),
        f"threads per row: {settings['threads_how']}; {settings['competitors']} spinning competitor process(es)",
    ]
    if settings.get("ort"):
        lines.append(f"ORT: {settings['ort']}")
    lines += [
        f"each figure: the median time of one inference (x -> y and final state) over {settings['repeats']} "
        f"alternating samples per side of about {settings['sample_seconds']:g} s",
        "X/Y: the median of the per-round ratios of side X's time to side Y's (above 1: Y is faster); prep: "
        "lstmcore prepared, int8 and bf16: lstmcore.quantize, t-int8: torch's dynamic int8",
        "err: max / mean |y| error of a reduced side against its own float32 model (lstmcore's, torch's)",
    ]
    return lines
