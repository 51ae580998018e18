"""The gate microscope: statistics, plots and ablations of LSTM / GRU / RNN gate traces.

    y, state, traces = lstm(x, lengths=lengths, return_gates=True)
    summary = lstmcore.microscope.summarize(traces, lengths)
    print(lstmcore.microscope.format_summary(summary))
    lstmcore.microscope.plot(summary, "gates/")       # needs matplotlib: pip install 'lstmcore[plot]'
    rows = lstmcore.microscope.ablation_report(lambda ablate: my_loss(lstm, ablate))

``traces`` are what ``layer(x, return_gates=True)`` returns: per layer*D + direction, a
dict of time-major (T, B, H) arrays (LSTM: input, forget, candidate, output, cell; GRU:
reset, update, candidate; RNN: hidden, summarised as a state). With ``lengths`` (B,), the steps t >= lengths[b] are padding
and are left out of every statistic. The summary is plain JSON (dicts, lists, floats).
``hidden_gradients(layer, x, dy)`` gives dL/dh_t at every step (L*D, T, B, H): how far
back the loss's gradient reaches. ``lstmcore inspect MODEL DATA`` runs the gate part on a model file from the command line.
``lstmcore.inspect`` is this module's earlier name, kept as an alias; the module itself is
not named so, since ``inspect`` is the standard library's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, SupportsFloat

import numpy as np
from numpy.typing import ArrayLike

from lstmcore._hidden_gradients import hidden_gradients
from lstmcore.rnn._lengths import checked_lengths

__all__ = [
    "SIGMOID_GATES",
    "TANH_GATES",
    "DEFAULT_CLAMPS",
    "summarize",
    "format_summary",
    "plot",
    "ablation_report",
    "mean_values",
    "format_ablation",
    "direction_names",
    "hidden_gradients",
]

# Gates squashed by a sigmoid into [0, 1]; gates squashed by tanh into [-1, 1].
SIGMOID_GATES = ("input", "forget", "output", "reset", "update")
TANH_GATES = ("candidate",)
# The gate whose mean per time step the summary keeps: how much memory is carried over.
_MEMORY_GATES = ("forget", "update")
# Clamp values of ``ablation_report`` when no ``values`` are given (LSTM gates): a forget
# gate held open, no new input written, the whole cell shown, a zero candidate.
DEFAULT_CLAMPS = {"forget": 1.0, "input": 0.0, "output": 1.0, "candidate": 0.0}
_LSTM_ORDER = ("input", "forget", "candidate", "output", "cell")
_GRU_ORDER = ("reset", "update", "candidate")


def direction_names(num_layers: int, bidirectional: bool = False) -> list[str]:
    """Labels of the traces of a layer with ``num_layers`` and directions, in trace order:
    ``["l0", "l0_reverse", "l1", ...]`` (PyTorch's parameter suffixes)."""
    names = []
    for layer in range(num_layers):
        names.append(f"l{layer}")
        if bidirectional:
            names.append(f"l{layer}_reverse")
    return names


# ----------------------------------------------------------------------------- summarize


def _valid_mask(lengths: ArrayLike | None, steps: int, batch: int) -> np.ndarray:
    """(T, B) bools: True on the steps within each sequence's length."""
    if lengths is None:
        return np.ones((steps, batch), bool)
    return np.arange(steps)[:, None] < checked_lengths(lengths, batch, steps)[None, :]


def _number(value: SupportsFloat) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _gate_order(names: Iterable[str]) -> list[str]:
    order = _GRU_ORDER if ("reset" in names or "update" in names) else _LSTM_ORDER
    ordered = [name for name in order if name in names]
    return ordered + sorted(set(names) - set(ordered))


def _gate_stats(
    name: str, values: ArrayLike, mask: np.ndarray, low: float, high: float, dead_fraction: float, bins: int
) -> dict[str, Any]:
    """One gate's statistics: values (T, B, H), mask (T, B) of valid steps."""
    values = np.asarray(values, dtype=np.float64)
    valid = values[mask]  # (N, H): every valid step of every sequence
    finite = valid[np.isfinite(valid)]
    if name in SIGMOID_GATES:
        kind, lo, hi = "sigmoid", 0.0, 1.0
    elif name in TANH_GATES:
        kind, lo, hi = "tanh", -1.0, 1.0
    else:  # the cell state: over its own range
        kind = "state"
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(np.clip(finite, lo, hi), bins=bins, range=(lo, hi))
    stats = {
        "kind": kind,
        "count": int(valid.size),
        "nonfinite": int(valid.size - finite.size),
        "mean": _number(finite.mean()) if finite.size else None,
        "std": _number(finite.std()) if finite.size else None,
        "min": _number(finite.min()) if finite.size else None,
        "max": _number(finite.max()) if finite.size else None,
        "histogram": {"counts": [int(c) for c in counts], "edges": [float(e) for e in edges]},
        "unit_mean": [_number(m) for m in _nan_mean(valid, axis=0)],
    }
    if kind == "sigmoid":
        is_low, is_high = valid < low, valid > high
        stats["saturated"] = _number(np.mean(is_low | is_high)) if valid.size else None
        stats["low"] = _number(np.mean(is_low)) if valid.size else None
        stats["high"] = _number(np.mean(is_high)) if valid.size else None
        steps = valid.shape[0]
        if steps:
            stats["dead_units"] = [int(u) for u in np.flatnonzero(is_low.mean(axis=0) >= dead_fraction)]
            stats["open_units"] = [int(u) for u in np.flatnonzero(is_high.mean(axis=0) >= dead_fraction)]
        else:
            stats["dead_units"], stats["open_units"] = [], []
    elif kind == "tanh":
        stats["saturated"] = _number(np.mean(np.abs(valid) > high)) if valid.size else None
    else:
        stats["saturated"] = None
    if name in _MEMORY_GATES:
        # mean over units and valid sequences at each time step; None where no sequence is running
        totals = np.where(mask[:, :, None], values, 0.0).sum(axis=(1, 2))
        running = mask.sum(axis=1) * values.shape[2]
        stats["mean_over_time"] = [_number(t / n) if n else None for t, n in zip(totals, running)]
    return stats


def _nan_mean(valid: np.ndarray, axis: int) -> np.ndarray:
    if valid.shape[0] == 0:
        return np.full(valid.shape[1], np.nan)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(valid), valid, 0.0).sum(axis=axis) / np.maximum(np.isfinite(valid).sum(axis=axis), 1)


def summarize(
    traces: dict[str, ArrayLike] | Sequence[dict[str, ArrayLike]],
    lengths: ArrayLike | None = None,
    *,
    saturation: tuple[float, float] = (0.05, 0.95),
    dead_fraction: float = 0.99,
    bins: int = 20,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Statistics of gate traces, as a JSON-serialisable dict.

    traces: a list (per layer*D + direction) of dicts gate -> (T, B, H) time-major array,
    as from ``layer(x, return_gates=True)``; a single dict is one layer-direction.
    lengths: None or (B,) ints in [1, T]; padding steps (t >= lengths[b]) are excluded
    from everything. saturation: (low, high); a sigmoid gate (input, forget, output, reset,
    update) is saturated below low or above high, the candidate (tanh) when |v| > high.
    dead_fraction: a unit of a sigmoid gate is *dead* when it is below low on at least this
    fraction of the valid steps, *always open* when above high as often. bins: histogram
    bins over [0, 1] (sigmoid gates), [-1, 1] (candidate) or the cell's own [min, max]
    (values outside a fixed range are counted in the end bins). names: labels of the
    layer-directions (default "0", "1", ...; see ``direction_names``).

    Returns ``{"steps", "batch", "valid_steps", "settings", "layers": [{"name", "hidden",
    "gates": {gate: stats}}]}``; each gate's stats hold kind ("sigmoid", "tanh", "state"),
    count, mean, std, min, max, histogram {counts, edges}, unit_mean (H,), saturated (the
    fraction of valid values; None for the cell), for sigmoid gates low / high fractions,
    dead_units and open_units (unit indices), and for the forget (LSTM) / update (GRU)
    gate mean_over_time (T,): the mean over units and running sequences at each step
    (None where none is running).
    """
    if isinstance(traces, dict):
        traces = [traces]
    traces = list(traces)
    if not traces or not all(isinstance(entry, dict) and entry for entry in traces):
        raise ValueError("expected traces as a non-empty list of dicts gate -> (T, B, H) array")
    low, high = (float(v) for v in saturation)
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"expected saturation as (low, high) with 0 <= low < high <= 1, got {saturation}")
    if not 0.0 < float(dead_fraction) <= 1.0:
        raise ValueError(f"expected dead_fraction in (0, 1], got {dead_fraction}")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"expected bins as an int >= 1, got {bins!r}")
    if names is None:
        names = [str(index) for index in range(len(traces))]
    if len(names) != len(traces):
        raise ValueError(f"expected {len(traces)} names, one per layer-direction, got {len(names)}")
    shape = np.shape(next(iter(traces[0].values())))
    if len(shape) != 3:
        raise ValueError(f"expected (T, B, H) gate traces, got shape {shape}")
    steps, batch = shape[0], shape[1]
    mask = _valid_mask(lengths, steps, batch)
    layers = []
    for name, entry in zip(names, traces):
        gates = {}
        for gate in _gate_order(entry):
            values = np.asarray(entry[gate])
            if values.ndim != 3 or values.shape[:2] != (steps, batch):
                raise ValueError(
                    f"expected trace {name!r} {gate!r} of shape (T, B, H) = ({steps}, {batch}, H), got {values.shape}"
                )
            gates[gate] = _gate_stats(gate, values, mask, low, high, float(dead_fraction), int(bins))
        hidden = int(np.shape(next(iter(entry.values())))[2])
        layers.append({"name": str(name), "hidden": hidden, "gates": gates})
    return {
        "steps": int(steps),
        "batch": int(batch),
        "valid_steps": int(mask.sum()),
        "settings": {"saturation": [low, high], "dead_fraction": float(dead_fraction), "bins": int(bins)},
        "layers": layers,
    }


# ----------------------------------------------------------------------------- text


_SHADES = " .:-=+*#%@"


def _sparkline(counts: ArrayLike) -> str:
    counts = np.asarray(counts, dtype=float)
    if counts.size == 0 or counts.max() <= 0:
        return ""
    levels = np.ceil(counts / counts.max() * (len(_SHADES) - 1)).astype(int)
    return "".join(_SHADES[level] for level in levels)


def _fmt(value: float | None, spec: str = "7.3f") -> str:
    return format(value, spec) if value is not None else " " * (int(spec.split(".")[0]) - 1) + "-"


def _units(units: Sequence[int], limit: int = 8) -> str:
    if not units:
        return "-"
    shown = ",".join(str(u) for u in units[:limit])
    return shown + (f",+{len(units) - limit}" if len(units) > limit else "")


def format_summary(summary: Mapping[str, Any]) -> str:
    """A readable table of a ``summarize`` result: one row per layer-direction and gate
    (mean, std, fraction saturated, dead / always-open units, a histogram sketch), then
    the forget / update gate's mean over time."""
    low, high = summary["settings"]["saturation"]
    lines = [
        f"{summary['batch']} sequences, {summary['steps']} steps, {summary['valid_steps']} valid steps; "
        f"saturated: < {low:g} or > {high:g} (candidate |v| > {high:g}); dead / open: on >= "
        f"{summary['settings']['dead_fraction']:.0%} of valid steps",
        f"{'layer':<12} {'gate':<10} {'mean':>7} {'std':>7} {'satur.':>7}  {'dead units':<16} {'open units':<16} histogram",
    ]
    for layer in summary["layers"]:
        for gate, stats in layer["gates"].items():
            saturated = f"{stats['saturated']:6.1%}" if stats.get("saturated") is not None else "     -"
            dead = _units(stats["dead_units"]) if "dead_units" in stats else "-"
            opened = _units(stats["open_units"]) if "open_units" in stats else "-"
            edges = stats["histogram"]["edges"]
            sketch = f"[{_sparkline(stats['histogram']['counts'])}] {edges[0]:.3g}..{edges[-1]:.3g}"
            lines.append(
                f"{layer['name']:<12} {gate:<10} {_fmt(stats['mean'])} {_fmt(stats['std'])} {saturated:>7}  "
                f"{dead:<16} {opened:<16} {sketch}"
            )
    for layer in summary["layers"]:
        for gate in _MEMORY_GATES:
            over_time = layer["gates"].get(gate, {}).get("mean_over_time")
            known = [v for v in over_time or () if v is not None]
            if not known and over_time:  # every step NaN (NaN inputs or weights)
                lines.append(f"{layer['name']} {gate} gate mean over time: no finite values")
            elif known:
                lines.append(
                    f"{layer['name']} {gate} gate mean over time: first {known[0]:.3f}, min {min(known):.3f}, "
                    f"max {max(known):.3f}, last {known[-1]:.3f}  [{_time_sketch(over_time)}]"
                )
    return "\n".join(lines)


def _time_sketch(values: Sequence[float | None], width: int = 40) -> str:
    series = np.array([np.nan if v is None else v for v in values], dtype=float)
    if series.size > width:
        parts = np.array_split(series, width)
        series = np.array([np.nanmean(p) if np.isfinite(p).any() else np.nan for p in parts])
    levels = np.clip(np.round(np.nan_to_num(series, nan=0.0) * (len(_SHADES) - 1)), 0, len(_SHADES) - 1)
    return "".join(" " if not np.isfinite(v) else _SHADES[int(level)] for v, level in zip(series, levels))


# ----------------------------------------------------------------------------- plots


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "layer"


def plot(summary: Mapping[str, Any], directory: str | os.PathLike[str]) -> list[str]:
    """Write PNGs of a ``summarize`` result into ``directory`` (created if missing):
    per layer-direction the histograms of its gates (``gates_<name>.png``) and, for an
    LSTM / GRU, the forget / update gate's mean over time of every layer-direction
    (``memory_gate_over_time.png``). Returns the paths written.

    Needs matplotlib (the Agg backend, no display); raises ImportError without it.
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting gate summaries needs matplotlib: pip install 'lstmcore[plot]'") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    os.makedirs(directory, exist_ok=True)
    paths = []
    for layer in summary["layers"]:
        gates = list(layer["gates"].items())
        figure, axes = pyplot.subplots(1, len(gates), figsize=(3.2 * len(gates), 3.0), dpi=100, squeeze=False)
        for axis, (gate, stats) in zip(axes[0], gates):
            edges = np.asarray(stats["histogram"]["edges"])
            counts = np.asarray(stats["histogram"]["counts"])
            axis.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue", edgecolor="white")
            saturated = stats.get("saturated")
            title = gate if saturated is None else f"{gate} ({saturated:.0%} saturated)"
            axis.set_title(title, fontsize=10)
            axis.set_yticks([])
        figure.suptitle(f"gates of {layer['name']}", fontsize=11)
        figure.tight_layout()
        path = os.path.join(directory, f"gates_{_safe(layer['name'])}.png")
        figure.savefig(path)
        pyplot.close(figure)
        paths.append(path)
    curves = [
        (layer["name"], gate, layer["gates"][gate]["mean_over_time"])
        for layer in summary["layers"]
        for gate in _MEMORY_GATES
        if gate in layer["gates"]
    ]
    if curves:
        figure, axis = pyplot.subplots(figsize=(8, 3.5), dpi=100)
        for name, gate, values in curves:
            axis.plot([np.nan if v is None else v for v in values], label=f"{name} {gate}")
        axis.set_xlabel("time step")
        axis.set_ylabel("mean gate value")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=9)
        figure.tight_layout()
        path = os.path.join(directory, "memory_gate_over_time.png")
        figure.savefig(path)
        pyplot.close(figure)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- ablation


def mean_values(
    summary: Mapping[str, Any], gates: Sequence[str] = ("input", "forget", "candidate", "output")
) -> dict[str, np.ndarray]:
    """Mean-ablation values from a summary: per gate an (L*D, H) array of each unit's mean
    activation on the summarised data (per layer-direction), ready for ``ablate=`` and
    for ``ablation_report(values=...)``. Gates missing from the summary are skipped."""
    values = {}
    for gate in gates:
        rows = [layer["gates"][gate]["unit_mean"] for layer in summary["layers"] if gate in layer["gates"]]
        if len(rows) == len(summary["layers"]):
            values[gate] = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)
    return values


def _json_value(value: ArrayLike) -> Any:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return _number(array)
    return [_json_value(item) for item in array]


def ablation_report(
    evaluate: Callable[[dict[str, Any] | None], float],
    gates: Sequence[str] = ("input", "forget", "candidate", "output"),
    values: Mapping[str, ArrayLike] | None = None,
) -> list[dict[str, Any]]:
    """The loss with each gate clamped, next to the loss without: what each gate is worth.

    evaluate: ``evaluate(ablate) -> loss``, called with None (the baseline) and then once
    per gate with ``{gate: value}`` (pass it to the LSTM's ``ablate=``). gates: the gates
    to clamp, one at a time. values: optional dict gate -> clamp value (a number, an (H,)
    or (L*D, H) array; e.g. ``mean_values(summary)`` for *mean ablation*, each unit held at
    its mean activation on the data). Gates not in ``values`` are clamped at the fixed
    defaults ``DEFAULT_CLAMPS``: forget = 1.0 (memory kept whole), input = 0.0 (nothing
    written), output = 1.0 (the whole cell shown), candidate = 0.0 (nothing to write).

    Returns one dict per gate: gate, value (the clamp, JSON-ready), source ("given" or
    "default"), baseline, loss, change (loss - baseline) and relative_change.
    """
    values = {} if values is None else dict(values)
    baseline = float(evaluate(None))
    rows = []
    for gate in gates:
        if gate in values:
            value, source = values[gate], "given"
        elif gate in DEFAULT_CLAMPS:
            value, source = DEFAULT_CLAMPS[gate], "default"
        else:
            raise ValueError(f"no default clamp for gate {gate!r}: give it in values")
        loss = float(evaluate({gate: value}))
        rows.append(
            {
                "gate": gate,
                "value": _json_value(value),
                "source": source,
                "baseline": baseline,
                "loss": loss,
                "change": loss - baseline,
                "relative_change": (loss - baseline) / abs(baseline) if baseline else None,
            }
        )
    return rows


def format_ablation(rows: Iterable[Mapping[str, Any]]) -> str:
    """A readable table of an ``ablation_report``."""
    lines = [f"{'gate':<10} {'clamped at':<16} {'baseline':>10} {'ablated':>10} {'change':>10} {'relative':>9}"]
    for row in rows:
        value = row["value"]
        shown = f"{value:g}" if isinstance(value, float) else ("per-unit mean" if row["source"] == "given" else "array")
        if value is None:
            shown = "nan"
        relative = f"{row['relative_change']:+8.1%}" if row["relative_change"] is not None else "       -"
        lines.append(
            f"{row['gate']:<10} {shown:<16} {row['baseline']:>10.4g} {row['loss']:>10.4g} "
            f"{row['change']:>+10.4g} {relative:>9}"
        )
    return "\n".join(lines)
