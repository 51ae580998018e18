"""The files the command line reads and writes: CSV columns, series and texts in; output
paths checked before any training starts.

Every error a user can cause (a missing file or column, a non-numeric value, a folder
that takes no file) is a ``TaskError`` with a one-line message.
"""

from __future__ import annotations

import csv
import math
import os
import secrets

import numpy as np

from lstmcore.cli._errors import TaskError

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


# ----------------------------------------------------------------------------- outputs


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
