"""What the command line's tasks do: build a model, train it, report it against a baseline.

Each ``train_*`` function takes plain keyword arguments (the command line's options), prints
a short report through ``echo``, saves the model when given ``out`` and returns a dict of
the numbers it reported, so ``lstmcore demo`` and the tests call them directly.
"""

from __future__ import annotations

import math
import os
import secrets

import numpy as np

import lstmcore
from lstmcore import _task_metadata, _tasks, datasets
from lstmcore._limits import check_model_size, lstm_parameters
from lstmcore._recurrent import _GatedRecurrent
from lstmcore._tasks import TaskError

SHIPPED_CO2 = "the shipped Mauna Loa CO2 series (monthly, 1958-2001)"
SHIPPED_TEXT = "the shipped text, Alice's Adventures in Wonderland"
SHIPPED_SENTENCES = "the shipped sentences labelled carroll / shakespeare"


def _count_params(model):
    return sum(int(np.size(array)) for array in model.params.values())


def check_output_paths(*paths):
    """Fail before training, not after, when an output file cannot be written (None: no
    such output; an empty path is an error).

    The folder must exist and take a new file: one is created and removed beside the
    target, as saving a model does (a temporary file renamed over the target). An
    existing file is opened for appending, which changes nothing in it, so a read-only
    one is refused without touching it.
    """
    for path in paths:
        if path is None:
            continue
        path = os.fspath(path)
        if not path:
            raise TaskError("expected an output file name, got an empty path")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise TaskError(f"cannot write {path}: no folder {folder}")
        if os.path.isdir(path):
            raise TaskError(f"cannot write {path}: it is a folder")
        if os.path.exists(path) and not os.path.isfile(path):
            # a model is renamed over its target: that would replace a device such as /dev/null
            raise TaskError(f"cannot write {path}: not a regular file")
        probe = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.probe")
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(probe)
            if os.path.exists(path):
                with open(path, "ab"):
                    pass
        except OSError as error:
            raise TaskError(f"cannot write {path}: {error.strerror or error}") from None


def check_output_folder(path):
    """As ``check_output_paths`` for a folder that outputs go into: the folder, or when
    missing its nearest existing ancestor (in which writing would make it), must take a
    new file. Nothing is made here, so a command failing later leaves no folder behind."""
    if path is None:
        return
    path = os.fspath(path)
    if not path:
        raise TaskError("expected an output folder name, got an empty path")
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise TaskError(f"cannot write into {path}: {existing} is not a folder")
    check_output_paths(os.path.join(existing, "probe"))


def _save(model, out, echo):
    if out:
        if not all(np.isfinite(value).all() for value in model.params.values()):
            raise TaskError(f"training diverged (the weights hold NaN or infinity), so {out} was not written: lower --lr")
        try:
            model.save(out)
        except OSError as error:
            raise TaskError(f"cannot write {out}: {error.strerror or error}") from None
        echo(f"saved the model to {out}")


def read_model(path):
    """Any lstmcore model file, with the metadata its task needs (``_task_metadata``), or a
    TaskError naming what is wrong."""
    try:
        model = lstmcore.load(path)
    except FileNotFoundError:
        raise TaskError(f"no such model file: {path}") from None
    except IsADirectoryError:
        raise TaskError(f"{path} is a folder, not a model file") from None
    except OSError as error:
        raise TaskError(f"cannot read {path}: {error.strerror or error}") from None
    except lstmcore.ModelFileError as error:
        raise TaskError(str(error)) from None  # its message names the file
    except MemoryError:  # a real model too large for this machine (load checks the file's claims first)
        raise TaskError(f"{path}: its layers are too large to build here (out of memory)") from None
    for name, value in model.params.items():
        if not np.isfinite(value).all():
            raise TaskError(
                f"{path}: weight {name!r} holds NaN or infinity, so every output would be NaN "
                "(a diverged training run: train again, e.g. with a lower --lr)"
            )
    _task_metadata.check(model, path)
    return model


def load_model(path, tasks):
    """A model file made by ``lstmcore train TASK`` for one of ``tasks`` (a name or a tuple
    of names), or a TaskError naming what is wrong."""
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    model = read_model(path)
    found = model.metadata.get("task")
    if found not in tasks:
        made_by = f"a {found!r} model" if found else "a model without a task"
        wanted = " or ".join(repr(task) for task in tasks)
        raise TaskError(f"{path} is {made_by}; this needs a {wanted} model (made by lstmcore train TASK)")
    return model


# ----------------------------------------------------------------------------- forecast


def train_forecast(
    *,
    csv=None,
    column="co2",
    window=24,
    horizon=1,
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
    check_model_size(
        parameters=lstm_parameters(1, hidden, layers) + (hidden + 1) * horizon,
        batch_size=batch_size, steps=window, hidden=hidden, layers=layers,
    )
    if csv is None:
        months, series = datasets.load_co2()
        source, column = SHIPPED_CO2, "co2"
    else:
        series = _tasks.read_series(csv, column)
        months, source = None, f"{csv}, column {column!r}"
    x, y, last = _tasks.forecast_windows(series, window, horizon)
    split = _tasks.chronological_split(len(x), validation)
    scale = float(np.std(x[:split]))
    if not math.isfinite(scale):
        raise TaskError("the series' values are too large: their differences overflow")
    if not scale > 0:
        raise TaskError("the training windows are constant: nothing to learn")
    inputs = _tasks.scaled_windows(x, scale)  # (N, window, 1)
    targets = (y / scale).astype(np.float32)  # (N, horizon)
    echo(
        f"forecast: {len(series)} values from {source}; windows of {window} -> next {horizon}; "
        f"{split} training and {len(x) - split} validation windows (the latest, in time order)"
    )

    model = lstmcore.Sequential(
        [
            lstmcore.LSTM(1, hidden, num_layers=layers, seed=seed),
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
    )
    predicted = model.predict(inputs[split:]).astype(np.float64) * scale  # changes, column units
    actual = y[split:]
    result = {
        "val_rmse": _tasks.rmse(predicted, actual),
        "naive_rmse": _tasks.rmse(np.zeros_like(actual), actual),
        "loss": history.history["loss"],
        "epochs": history.epochs,
    }
    baselines = f"naive last value {result['naive_rmse']:.4g}"
    if season and horizon <= season <= window:
        # the value one season before each target, read from the window (relative to its last value)
        seasonal = x[split:, window - season : window - season + horizon]
        result["seasonal_rmse"] = _tasks.rmse(seasonal, actual)
        baselines += f", seasonal naive {result['seasonal_rmse']:.4g}"
    echo(
        f"model: LSTM(1, {hidden}, num_layers={layers}) -> LastStep -> Dense({hidden}, {horizon}), "
        f"{_count_params(model):,} parameters, {history.epochs} epochs"
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
    _save(model, out, echo)
    if plot:
        from lstmcore._plot import plot_forecast

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
        echo(f"wrote the plot to {plot}" if wrote else "note: matplotlib is not installed, so no plot was "
             "written (pip install 'lstmcore[plot]')")
    result["model"] = model
    return result


def forecast_next(model, series):
    """The next ``horizon`` values after the end of ``series``, from a forecast model."""
    meta = model.metadata
    window, scale = int(meta["window"]), float(meta["scale"])
    if len(series) < window:
        raise TaskError(f"the model reads windows of {window} values; the series has only {len(series)}")
    past = np.asarray(series[-window:], dtype=np.float64)
    inputs = _tasks.scaled_windows((past - past[-1])[None, :], scale)
    return past[-1] + model.predict(inputs)[0].astype(np.float64) * scale


# ----------------------------------------------------------------------------- charlm


def train_charlm(
    *,
    text=None,
    steps=64,
    embedding=64,
    hidden=128,
    layers=1,
    epochs=10,
    batch_size=16,
    lr=0.01,
    validation=0.1,
    seed=0,
    out=None,
    verbose=True,
    echo=print,
):
    """Embedding -> LSTM -> Dense character model: predicts every next character.

    The last ``validation`` fraction of the text is held out; its cross-entropy is
    reported in bits per character next to the unigram model (character frequencies of
    the training text), which knows nothing about order.
    """
    check_output_paths(out)
    if text is None:
        content, source = datasets.load_text("alice"), SHIPPED_TEXT
    else:
        content, source = _tasks.read_text(text), str(text)
    vocabulary = _tasks.char_vocabulary(content)
    ids = _tasks.encode_chars(content, vocabulary)
    split = _tasks.chronological_split(len(ids), validation)
    x_train, y_train = _tasks.char_sequences(ids[:split], steps)
    x_val, y_val = _tasks.char_sequences(ids[split:], steps)
    size = len(vocabulary)
    check_model_size(
        parameters=size * embedding + lstm_parameters(embedding, hidden, layers) + (hidden + 1) * size,
        batch_size=batch_size, steps=steps, hidden=hidden, layers=layers, outputs_per_step=size,
    )
    echo(
        f"charlm: {len(content):,} characters ({size} distinct) from {source}; "
        f"{len(x_train)} training and {len(x_val)} validation sequences of {steps}"
    )
    model = lstmcore.Sequential(
        [
            lstmcore.Embedding(size, embedding, seed=seed),
            lstmcore.LSTM(embedding, hidden, num_layers=layers, seed=seed + 1),
            lstmcore.Dense(hidden, size, seed=seed + 2),
        ]
    )
    optimizer = lstmcore.optim.Adam(model.params, lr=lr)
    history = model.fit(
        x_train,
        y_train,
        loss="cross_entropy",
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(x_val, y_val),
        restore_best_weights=False,
        clip_norm=5.0,
        seed=seed,
        verbose=verbose,
    )
    nats = model.evaluate(x_val, y_val, loss="cross_entropy")
    unigram = _tasks.unigram_nats(ids[:split], ids[split:], size)
    result = {
        "val_loss": nats,
        "val_bpc": nats / math.log(2),
        "unigram_bpc": unigram / math.log(2),
        "loss": history.history["loss"],
        "epochs": history.epochs,
    }
    echo(
        f"model: Embedding({size}, {embedding}) -> LSTM({embedding}, {hidden}, num_layers={layers}) -> "
        f"Dense({hidden}, {size}), {_count_params(model):,} parameters, {history.epochs} epochs"
    )
    verdict = "beats" if result["val_bpc"] < result["unigram_bpc"] else "does NOT beat"
    echo(
        f"validation loss {nats:.4f} nats = {result['val_bpc']:.3f} bits per character "
        f"(unigram baseline {result['unigram_bpc']:.3f}): the model {verdict} the baseline"
    )
    model.metadata = {
        "task": "charlm",
        "source": str(source),
        "vocabulary": "".join(vocabulary),
        "steps": steps,
        "val_bpc": result["val_bpc"],
        "unigram_bpc": result["unigram_bpc"],
    }
    _save(model, out, echo)
    result["model"] = model
    return result


def _step_layers(model, x, states):
    """Run ``x`` (B, T) ids through the layers, carrying each recurrent layer's state."""
    new_states = []
    recurrent = 0
    for layer in model.layers:
        if isinstance(layer, _GatedRecurrent):
            x, state = layer(x, states[recurrent] if states else None)
            new_states.append(state)
            recurrent += 1
        else:
            x, _ = layer.forward(x)
    return x, new_states


def generate(model, *, length=300, temperature=0.8, prime="The ", seed=None):
    """Sample ``length`` characters after ``prime`` from a charlm model, one at a time.

    Returns the prime followed by the sampled text. Each step feeds one character and
    carries every LSTM's (h, c) state, so the model sees all that came before.
    """
    vocabulary = model.metadata.get("vocabulary")
    if not isinstance(vocabulary, str) or not vocabulary:
        raise TaskError("the model has no character vocabulary in its metadata")
    if not prime:
        raise TaskError("--prime must hold at least one character")
    if not temperature > 0:
        raise TaskError(f"--temperature must be > 0, got {temperature}")
    unknown = sorted(set(prime) - set(vocabulary))
    if unknown:
        raise TaskError(
            f"--prime holds characters the model never saw: {''.join(unknown)!r} "
            f"(its vocabulary: {vocabulary!r})"
        )
    index = {char: i for i, char in enumerate(vocabulary)}
    rng = np.random.default_rng(seed)
    logits, states = _step_layers(model, np.array([[index[c] for c in prime]], dtype=np.int64), None)
    produced = []
    for _ in range(length):
        scores = logits[0, -1].astype(np.float64) / temperature
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        choice = int(rng.choice(len(vocabulary), p=probabilities))
        produced.append(vocabulary[choice])
        logits, states = _step_layers(model, np.array([[choice]], dtype=np.int64), states)
    return prime + "".join(produced)


# ----------------------------------------------------------------------------- classify


def train_classify(
    *,
    csv=None,
    text_column="text",
    label_column="label",
    tokens="word",
    vocabulary_size=5000,
    max_steps=60,
    embedding=64,
    hidden=64,
    layers=1,
    epochs=10,
    batch_size=32,
    lr=0.005,
    validation=0.2,
    seed=0,
    out=None,
    verbose=True,
    echo=print,
):
    """Embedding -> LSTM -> LastStep -> Dense classifier of texts (word or character tokens).

    A seeded random ``validation`` fraction of the rows is held out (rows of a CSV are
    often sorted by label); the vocabulary comes from the training rows only. Validation
    accuracy is reported next to the majority-class baseline (always answer the most
    frequent training label).
    """
    check_output_paths(out)
    if csv is None:
        texts, labels = datasets.load_sentences()
        source, text_column, label_column = SHIPPED_SENTENCES, "text", "label"
    else:
        texts, labels = _tasks.read_csv_columns(csv, [text_column, label_column])
        source = f"{csv}, columns {text_column!r} / {label_column!r}"
    if len(texts) < 4:
        raise TaskError(f"{len(texts)} rows are too few to train and validate on")
    targets, classes = _tasks.label_indices(labels)
    order = np.random.default_rng(seed).permutation(len(texts))
    split = _tasks.chronological_split(len(texts), validation)
    train, held = order[:split], order[split:]
    token_lists = [_tasks.tokenize(text, tokens) for text in texts]
    vocabulary = _tasks.token_vocabulary([token_lists[i] for i in train], vocabulary_size)
    check_model_size(
        parameters=len(vocabulary) * embedding + lstm_parameters(embedding, hidden, layers) + (hidden + 1) * len(classes),
        batch_size=batch_size, steps=max_steps, hidden=hidden, layers=layers,
    )
    ids, lengths = _tasks.encode_padded(token_lists, vocabulary, max_steps)
    echo(
        f"classify: {len(texts)} texts from {source}; {len(classes)} classes {classes}; "
        f"{tokens} tokens, vocabulary {len(vocabulary)}; {len(train)} training and {len(held)} validation rows"
    )
    model = lstmcore.Sequential(
        [
            lstmcore.Embedding(len(vocabulary), embedding, padding_idx=0, seed=seed),
            lstmcore.LSTM(embedding, hidden, num_layers=layers, seed=seed + 1),
            lstmcore.LastStep(),
            lstmcore.Dense(hidden, len(classes), seed=seed + 2),
        ]
    )
    optimizer = lstmcore.optim.Adam(model.params, lr=lr)
    history = model.fit(
        ids[train],
        targets[train],
        lengths=lengths[train],
        loss="cross_entropy",
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(ids[held], targets[held], lengths[held]),
        restore_best_weights=False,
        clip_norm=5.0,
        seed=seed,
        verbose=verbose,
        metrics=["accuracy"],
    )
    predicted = model.predict(ids[held], lengths=lengths[held]).argmax(axis=-1)
    majority = int(np.bincount(targets[train], minlength=len(classes)).argmax())
    result = {
        "val_accuracy": float(np.mean(predicted == targets[held])),
        "majority_accuracy": float(np.mean(targets[held] == majority)),
        "loss": history.history["loss"],
        "epochs": history.epochs,
    }
    echo(
        f"model: Embedding({len(vocabulary)}, {embedding}) -> LSTM({embedding}, {hidden}, num_layers={layers}) "
        f"-> LastStep -> Dense({hidden}, {len(classes)}), {_count_params(model):,} parameters, {history.epochs} epochs"
    )
    verdict = "beats" if result["val_accuracy"] > result["majority_accuracy"] else "does NOT beat"
    echo(
        f"validation accuracy {result['val_accuracy']:.1%} (majority class {classes[majority]!r}: "
        f"{result['majority_accuracy']:.1%}): the model {verdict} the baseline"
    )
    model.metadata = {
        "task": "classify",
        "source": str(source),
        "tokens": tokens,
        "vocabulary": vocabulary,
        "max_steps": max_steps,
        "classes": classes,
        "val_accuracy": result["val_accuracy"],
        "majority_accuracy": result["majority_accuracy"],
    }
    _save(model, out, echo)
    result["model"] = model
    return result


def classify_texts(model, texts):
    """Class names and probabilities (N, C) for a list of texts, from a classify model."""
    meta = model.metadata
    ids, lengths = _tasks.encode_texts(texts, meta)
    logits = model.predict(ids, lengths=lengths).astype(np.float64)
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    return [meta["classes"][i] for i in probabilities.argmax(axis=-1)], probabilities
