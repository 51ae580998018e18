"""The forecast plot, with matplotlib when it is installed (the optional extra ``plot``)."""

from __future__ import annotations

import numpy as np


def plot_forecast(path, *, series, first, predicted, times=None, label="value", title=""):
    """Write a PNG of the series with the forecasts of ``series[first:]`` over it.

    series (N,): the whole series; predicted (M,): forecasts of series[first : first + M];
    times (N,): x values (dates) or None for the row number. Returns False, writing
    nothing, when matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")  # files only, no display needed
    from matplotlib import pyplot

    axis_values = np.arange(len(series)) if times is None else times
    shown = max(0, first - 3 * len(predicted))  # some training context before the forecasts
    figure, axes = pyplot.subplots(figsize=(10, 4.5), dpi=100)
    axes.plot(axis_values[shown:], series[shown:], color="0.25", linewidth=1.2, label=f"actual {label}")
    axes.plot(
        axis_values[first : first + len(predicted)],
        predicted,
        color="tab:red",
        linewidth=1.2,
        linestyle="--",
        label="LSTM one-step forecast",
    )
    axes.axvline(axis_values[first], color="0.6", linestyle="--", linewidth=1)
    axes.annotate(
        "validation  ",
        (axis_values[first], 1),
        xycoords=("data", "axes fraction"),
        ha="left",
        va="top",
        fontsize=9,
        color="0.4",
        xytext=(4, -4),
        textcoords="offset points",
    )
    axes.set_title(title, fontsize=11)
    axes.set_ylabel(label)
    axes.set_xlabel("month" if times is not None else "row")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return True
