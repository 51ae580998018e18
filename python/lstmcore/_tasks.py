"""Data preparation for the command line's tasks: plain NumPy in, plain NumPy out.

- forecast: a numeric CSV column -> windows of past values and the values that follow,
  relative to each window's last value, in units of a scale stored in the model file.
- charlm: a text -> a character vocabulary and (input, next character) sequences.
- classify: CSV text and labels -> padded token ids, lengths and class indices.

Every error a user can cause (a missing file or column, a non-numeric value, a series
too short for the window) is a ``TaskError`` with a one-line message.
"""

from __future__ import annotations

import csv
import math
import re

import numpy as np


class TaskError(ValueError):
    """Bad input data or arguments; the command line prints the message, no traceback."""


# ----------------------------------------------------------------------------- CSV files


def read_csv_columns(path, columns):
    """The named columns of a CSV file with a header row, as lists of strings."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [name for name in columns if name not in header]
            if missing:
                raise TaskError(f"{path}: no column {missing[0]!r}; the columns are {header}")
            values = {name: [] for name in columns}
            for row in reader:
                for name in columns:
                    values[name].append(row[name] if row[name] is not None else "")
    except UnicodeDecodeError as error:
        raise TaskError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise TaskError(f"{path}: not a readable CSV file ({error})") from None
    except OSError as error:
        raise TaskError(f"cannot read {path}: {error.strerror or error}") from None
    return [values[name] for name in columns]


def read_series(path, column):
    """A numeric CSV column as a float64 array; empty cells and non-numbers are errors."""
    (cells,) = read_csv_columns(path, [column])
    series = np.empty(len(cells))
    for row, cell in enumerate(cells):
        line = row + 2  # the header is line 1
        if not cell.strip():
            raise TaskError(f"{path}: column {column!r} is empty on line {line}")
        try:
            series[row] = float(cell)
        except ValueError:
            raise TaskError(f"{path}: column {column!r} is not numeric: line {line} holds {cell!r}") from None
        if not math.isfinite(series[row]):
            raise TaskError(f"{path}: column {column!r} holds {cell!r} on line {line}, not a finite number")
    return series


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise TaskError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise TaskError(f"cannot read {path}: {error.strerror or error}") from None


# ----------------------------------------------------------------------------- forecast


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
        raise TaskError(
            f"the series has {len(series)} values: too short for --window {window} and --horizon {horizon}"
        )
    starts = np.arange(count)[:, None]
    past = series[starts + np.arange(window)[None, :]]
    future = series[starts + window + np.arange(horizon)[None, :]]
    last = past[:, -1]
    return past - last[:, None], future - last[:, None], last


def chronological_split(count, validation_fraction):
    """Index of the first validation item: the last ``validation_fraction`` of ``count``."""
    if not 0.0 < validation_fraction < 1.0:
        raise TaskError(f"expected a validation fraction in (0, 1), got {validation_fraction}")
    split = count - max(1, int(round(count * validation_fraction)))
    if split < 1:
        raise TaskError(f"{count} examples are too few to split into training and validation")
    return split


def rmse(predicted, actual):
    return float(np.sqrt(np.mean(np.square(np.asarray(predicted) - np.asarray(actual)))))


# ----------------------------------------------------------------------------- charlm


def char_vocabulary(text):
    """The sorted distinct characters of a text."""
    if not text:
        raise TaskError("the text is empty")
    return sorted(set(text))


def encode_chars(text, vocabulary):
    """A text as int64 ids into ``vocabulary``; characters outside it are an error."""
    index = {char: i for i, char in enumerate(vocabulary)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        shown = "".join(unknown[:10])
        raise TaskError(f"characters not in the model's vocabulary: {shown!r}")
    return np.fromiter((index[char] for char in text), dtype=np.int64, count=len(text))


def char_sequences(ids, steps):
    """Non-overlapping (input, next-character target) pairs: x, y (N, steps) int64."""
    count = (len(ids) - 1) // steps
    if count < 1:
        raise TaskError(f"a text of {len(ids)} characters is too short for sequences of {steps}")
    x = ids[: count * steps].reshape(count, steps)
    y = ids[1 : count * steps + 1].reshape(count, steps)
    return x, y


def unigram_nats(train_ids, validation_ids, size):
    """Mean cross-entropy (nats/char) of the validation ids under training frequencies
    (add-one smoothed): the baseline a character model must beat."""
    counts = np.bincount(train_ids, minlength=size) + 1.0
    log_probs = np.log(counts / counts.sum())
    return float(-np.mean(log_probs[validation_ids]))


# ----------------------------------------------------------------------------- classify

PAD, UNKNOWN = "<pad>", "<unk>"
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]")


def tokenize(text, unit):
    """``unit`` "word": lower-case words and single punctuation marks; "char": characters."""
    if unit == "char":
        return list(text)
    return _WORD.findall(text.lower())


def token_vocabulary(token_lists, max_size):
    """``[PAD, UNKNOWN]`` then the most frequent tokens (ties alphabetical), at most
    ``max_size`` entries in all."""
    counts = {}
    for tokens in token_lists:
        for token in tokens:
            counts[token] = counts.get(token, 0) + 1
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    return [PAD, UNKNOWN] + ranked[: max(0, max_size - 2)]


def encode_padded(token_lists, vocabulary, max_steps):
    """ids (N, T) int64 padded with 0 (PAD), lengths (N,) in [1, T]; T = the longest
    sequence, at most ``max_steps`` (longer ones keep their first ``max_steps`` tokens).
    An empty sequence becomes one UNKNOWN token."""
    index = {token: i for i, token in enumerate(vocabulary)}
    unknown = index[UNKNOWN]
    encoded = [[index.get(t, unknown) for t in tokens[:max_steps]] or [unknown] for tokens in token_lists]
    lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
    ids = np.zeros((len(encoded), int(lengths.max())), dtype=np.int64)
    for row, sequence in enumerate(encoded):
        ids[row, : len(sequence)] = sequence
    return ids, lengths


def encode_texts(texts, meta):
    """Texts as a classify model (its ``metadata``) reads them: ``encode_padded`` of their
    tokens with the model's vocabulary and step limit."""
    token_lists = [tokenize(text, meta["tokens"]) for text in texts]
    return encode_padded(token_lists, meta["vocabulary"], int(meta["max_steps"]))


def label_indices(labels, classes=None):
    """Class indices (N,) int64 and the sorted class names (given or found)."""
    labels = [label.strip() for label in labels]
    if classes is None:
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise TaskError(f"expected at least 2 distinct labels, got {classes}")
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise TaskError(f"labels not known to the model: {unknown[:5]}")
    return np.array([index[label] for label in labels], dtype=np.int64), list(classes)
