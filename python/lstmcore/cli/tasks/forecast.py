"""The ``forecast`` task: an LSTM forecaster of a numeric CSV column (default: the shipped
monthly CO2 series).

A series becomes windows of past values and the values that follow, relative to each
window's last value, in units of a scale stored in the model file; ``lstmcore predict``
gives the values after a series' end.
"""

from __future__ import annotations

import math

import numpy as np

import lstmcore
from lstmcore import datasets
from lstmcore.cli import _arguments as arguments
from lstmcore.cli._cells import layer_text, recurrent_layer
from lstmcore.cli._errors import TaskError
from lstmcore.cli._files import check_output_paths, read_series
from lstmcore.cli._limits import BOUNDS, check_model_size, lstm_parameters
from lstmcore.cli._training import check_model_output, chronological_split, count_params, save_trained
from lstmcore.cli.tasks._plot import plot_forecast

NAME = "forecast"
SHIPPED_CO2 = "the shipped Mauna Loa CO2 series (monthly, 1958-2001)"


def add_parsers(train_tasks, commands):
    """``lstmcore train forecast``; a forecast model is run by ``lstmcore predict``."""
    defaults = arguments.defaults(train_forecast)
    parser = train_tasks.add_parser(
        "forecast",
        help="forecast a numeric CSV column (default: shipped monthly CO2)",
        description="Train LSTM -> LastStep -> Dense on windows of a series to forecast the next values. Inputs "
        "and targets are relative to each window's last value and scaled; the latest windows (in time order) "
        "are held out, and their RMSE is printed next to the naive last-value forecast.",
    )
    parser.add_argument("--csv", metavar="FILE", help="CSV file with a header row (default: shipped CO2 series)")
    parser.add_argument("--column", default=defaults["column"], help="numeric column to forecast (default %(default)s)")
    parser.add_argument(
        "--window",
        type=arguments.whole_number("window"),
        default=defaults["window"],
        help="past values per input (default %(default)s)",
    )
    parser.add_argument(
        "--horizon",
        type=arguments.whole_number("horizon"),
        default=defaults["horizon"],
        help="steps predicted ahead (default %(default)s)",
    )
    parser.add_argument(
        "--season",
        type=arguments.whole_number("season"),
        default=defaults["season"],
        help="season length for the seasonal-naive baseline, 0 for none (default %(default)s)",
    )
    parser.add_argument(
        "--plot", type=arguments.nonempty_path, metavar="PNG", help="write forecast vs actual to this PNG (needs matplotlib)"
    )
    arguments.training_options(parser, defaults, out="forecast.npz")
    parser.set_defaults(run=arguments.train_runner(train_forecast))


# ----------------------------------------------------------------------------- data


def scaled_windows(windows, scale):
    """Forecast windows (N, window), relative to their last value, as the model reads them:
    divided by the training scale, (N, window, 1) float32."""
    return (np.asarray(windows, dtype=np.float64) / scale)[..., None].astype(np.float32)


def forecast_windows(series, window, horizon):
    """Every window of a series and what follows it, relative to the window's last value.

    series (N,) -> x (M, window) = series[s : s+window] - last, y (M, horizon) =
    series[s+window : s+window+horizon] - last, last (M,), with M = N - window - horizon + 1.
    Predicting y = 0 is the naive last-value forecast.
    """
    count = len(series) - window - horizon + 1
    if count < 2:
        raise TaskError(f"the series has {len(series)} values: too short for --window {window} and --horizon {horizon}")
    starts = np.arange(count)[:, None]
    past = series[starts + np.arange(window)[None, :]]
    future = series[starts + window + np.arange(horizon)[None, :]]
    last = past[:, -1]
    return past - last[:, None], future - last[:, None], last


def rmse(predicted, actual):
    return float(np.sqrt(np.mean(np.square(np.asarray(predicted) - np.asarray(actual)))))


# ----------------------------------------------------------------------------- training


def train_forecast(
    *,
    csv=None,
    column="co2",
    window=24,
    horizon=1,
    cell="lstm",
    hidden=64,
    layers=1,
    epochs=100,
    batch_size=32,
    lr=0.005,
    validation=0.2,
    season=12,
    seed=0,
    out=None,
    plot=None,
    verbose=True,
    echo=print,
    fit_options=None,
):
    """LSTM -> LastStep -> Dense forecaster of the next ``horizon`` values of a series.

    Inputs are each window minus its last value, targets the following values minus that
    same last value, both divided by one scale (the standard deviation of the training
    inputs): the model predicts changes, so it works at levels it never saw in training
    (CO2 keeps rising). The last ``validation`` fraction of windows, in time order, is
    held out; its RMSE is reported next to the naive forecast (the last value repeated)
    and, when ``season`` > 0, the seasonal-naive one (the value one season earlier).
    """
    check_output_paths(out, plot)
    check_model_output(out)
    check_model_size(
        parameters=lstm_parameters(1, hidden, layers) + (hidden + 1) * horizon,
        batch_size=batch_size,
        steps=window,
        hidden=hidden,
        layers=layers,
    )
    if csv is None:
        months, series = datasets.load_co2()
        source, column = SHIPPED_CO2, "co2"
    else:
        series = read_series(csv, column)
        months, source = None, f"{csv}, column {column!r}"
    x, y, last = forecast_windows(series, window, horizon)
    split = chronological_split(len(x), validation)
    scale = float(np.std(x[:split]))
    if not math.isfinite(scale):
        raise TaskError("the series' values are too large: their differences overflow")
    if not scale > 0:
        raise TaskError("the training windows are constant: nothing to learn")
    inputs = scaled_windows(x, scale)  # (N, window, 1)
    targets = (y / scale).astype(np.float32)  # (N, horizon)
    echo(
        f"forecast: {len(series)} values from {source}; windows of {window} -> next {horizon}; "
        f"{split} training and {len(x) - split} validation windows (the latest, in time order)"
    )

    model = lstmcore.Sequential(
        [
            recurrent_layer(cell, 1, hidden, layers, seed),
            lstmcore.LastStep(),
            lstmcore.Dense(hidden, horizon, seed=seed + 1),
        ]
    )
    optimizer = lstmcore.optim.Adam(model.params, lr=lr)
    history = model.fit(
        inputs[:split],
        targets[:split],
        loss="mse",
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(inputs[split:], targets[split:]),
        restore_best_weights=False,  # the validation windows are the reported test: no selection on them
        schedule=lstmcore.optim.CosineLR(optimizer, epochs),
        seed=seed,
        verbose=verbose,
        **(fit_options or {}),
    )
    predicted = model.predict(inputs[split:]).astype(np.float64) * scale  # changes, column units
    actual = y[split:]
    result = {
        "val_rmse": rmse(predicted, actual),
        "naive_rmse": rmse(np.zeros_like(actual), actual),
        "loss": history.history["loss"],
        "epochs": history.epochs,
    }
    baselines = f"naive last value {result['naive_rmse']:.4g}"
    if season and horizon <= season <= window:
        # the value one season before each target, read from the window (relative to its last value)
        seasonal = x[split:, window - season : window - season + horizon]
        result["seasonal_rmse"] = rmse(seasonal, actual)
        baselines += f", seasonal naive {result['seasonal_rmse']:.4g}"
    echo(
        f"model: {layer_text(cell, 1, hidden, layers)} -> LastStep -> Dense({hidden}, {horizon}), "
        f"{count_params(model):,} parameters, {history.epochs} epochs"
    )
    verdict = "beats" if result["val_rmse"] < result["naive_rmse"] else "does NOT beat"
    echo(f"validation RMSE {result['val_rmse']:.4g} ({baselines}): the model {verdict} the naive forecast")

    model.metadata = {
        "task": "forecast",
        "source": source if csv is None else str(csv),
        "column": column,
        "window": window,
        "horizon": horizon,
        "scale": scale,
        "inputs": "each window minus its last value, divided by scale",
        "targets": "the next horizon values minus the window's last value, divided by scale",
        "val_rmse": result["val_rmse"],
        "naive_rmse": result["naive_rmse"],
    }
    save_trained(model, out, echo)
    if plot:
        first = window + split  # series index of the first validation target
        wrote = plot_forecast(
            plot,
            series=series,
            first=first,
            predicted=last[split:] + predicted[:, 0],
            times=months,
            label=column,
            title=f"One-step forecast on the validation period (RMSE {result['val_rmse']:.3g}, "
            f"naive {result['naive_rmse']:.3g})",
        )
        echo(
            f"wrote the plot to {plot}"
            if wrote
            else "note: matplotlib is not installed, so no plot was written (pip install 'lstmcore[plot]')"
        )
    result["model"] = model
    return result


# ----------------------------------------------------------------------------- a trained model


def check_metadata(model, entries):
    window = entries.whole_number("window", *BOUNDS["window"])
    horizon = entries.whole_number("horizon", *BOUNDS["horizon"])
    entries.positive_number("scale")
    entries.text("column", optional=True)
    entries.probe(model, np.zeros((1, window, 1), np.float32), (1, horizon), f"one window of {window} values")


def forecast_next(model, series):
    """The next ``horizon`` values after the end of ``series``, from a forecast model."""
    meta = model.metadata
    window, scale = int(meta["window"]), float(meta["scale"])
    if len(series) < window:
        raise TaskError(f"the model reads windows of {window} values; the series has only {len(series)}")
    past = np.asarray(series[-window:], dtype=np.float64)
    inputs = scaled_windows((past - past[-1])[None, :], scale)
    return past[-1] + model.predict(inputs)[0].astype(np.float64) * scale


def predict(model, args):
    """``lstmcore predict``: the values after the end of ``--csv FILE --column NAME``."""
    if args.text:
        raise TaskError("--text is for classify models; a forecast model reads --csv FILE --column NAME")
    if args.csv is None:
        raise TaskError("a forecast model needs the series: --csv FILE --column NAME")
    column = args.column or model.metadata.get("column", "")
    values = forecast_next(model, read_series(args.csv, column))
    for step, value in enumerate(values, 1):
        print(f"t+{step}\t{value:.6g}")
    return 0


def inspection_data(model, path, args, targets):
    """``lstmcore inspect``: the windows of DATA, a CSV file, relative and scaled as in training."""
    meta = model.metadata
    column = args.column or meta.get("column", "")
    series = read_series(path, column)
    x, y, _ = forecast_windows(series, int(meta["window"]), int(meta["horizon"]))
    scale = float(meta["scale"])
    inputs = scaled_windows(x, scale)
    return inputs, (y / scale).astype(np.float32), None, "mse", f"{len(x)} windows of column {column!r}"
