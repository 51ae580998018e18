"""The PNG of ``lstmcore demo memory``, with matplotlib when it is installed (the extra ``plot``)."""

from __future__ import annotations

import numpy as np

# One colour per kind, the same in both panels.
_COLOURS = {"RNN": "tab:red", "GRU": "tab:green", "LSTM": "tab:blue"}


def plot_memory(path, results, *, baseline):
    """Write a PNG of two panels: the mean ||dL/dh_t|| over t on a log scale (before training
    dashed, after training solid) and each kind's validation MSE per epoch against the
    constant baseline. Returns False, writing nothing, when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")  # files only, no display needed
    from matplotlib import pyplot

    figure, (gradients, losses) = pyplot.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    for result in results:
        colour = _COLOURS.get(result.kind)
        steps = np.arange(len(result.trained_norms))
        # Zeros (gradients below float32's range) have no place on a log axis: left out.
        gradients.plot(
            steps,
            np.where(result.initial_norms > 0, result.initial_norms, np.nan),
            color=colour,
            linestyle="--",
            linewidth=1,
            label=f"{result.kind}, initial",
        )
        gradients.plot(
            steps,
            np.where(result.trained_norms > 0, result.trained_norms, np.nan),
            color=colour,
            linewidth=1.6,
            label=f"{result.kind}, trained",
        )
        epochs = np.arange(1, len(result.val_loss) + 1)
        losses.plot(epochs, result.val_loss, color=colour, marker="o", markersize=3, label=result.kind)
    gradients.set_yscale("log")
    gradients.set_xlabel("step t")
    gradients.set_ylabel("mean ||dL/dh_t||  (L: the mean prediction)")
    gradients.set_title("How far back the gradient reaches", fontsize=11)
    gradients.grid(alpha=0.3)
    gradients.legend(fontsize=8)
    losses.axhline(baseline, color="0.4", linestyle="--", linewidth=1, label=f"predicting 1 ({baseline:.3f})")
    losses.set_yscale("log")
    losses.set_xlabel("epoch")
    losses.set_ylabel("validation MSE")
    losses.set_title("The adding problem", fontsize=11)
    losses.grid(alpha=0.3)
    losses.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return True
