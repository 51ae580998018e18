"""Batch inference over Dask: ``predict(model_path, data, client=None, ...)``.

Each worker process loads the model file once (kept by path and the file's size and
time, so a rewritten file is loaded again) and, the first time, sets the core's threads
to its share of its machine's cores: the cores it may run on divided by the task threads
of all the workers on that machine (from the scheduler), at least 1. Nothing is shipped
but the path: the model file must be readable at that path on every worker (a shared
file system, or a copy at the same place).

The results are a local ``model.predict(x, batch_size=...)``'s, bit for bit: each chunk
(or file) is predicted by ``model.predict`` with the same batch_size, which batches as
``nn._batches.predict_slices`` says. A row's output does not depend on the other rows of
its batch as long as the batch has 3 rows or more, and with batch_size >= 3 predict's last
batch never has fewer (a tail of 1 or 2 rows joins the batch before it); so chunks of
fewer than 3 rows are merged with a neighbour here. With batch_size 1 or 2 every batch
takes the core's matrix-vector path, where rows do depend on their batch's size: the
chunks are then cut at multiples of batch_size, so that each holds whole local batches.

dask and distributed are imported only when ``predict`` runs.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import glob
import math
import os
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from lstmcore._core import set_num_threads
from lstmcore._util.atomic import write_atomically
from lstmcore.inference import load
from lstmcore.nn._batches import SMALLEST_BATCH
from lstmcore.nn._layers import Embedding

_READERS = (".npy", ".csv", ".parquet")
_lock = threading.Lock()
_models: dict[tuple[str, int, int], Any] = {}
# What this process did, for the tests (read on each worker through client.run).
worker_state: dict[str, Any] = {"loads": 0, "threads": None}


def predict(
    model_path: str | os.PathLike[str],
    data: Any,
    client: Any = None,
    batch_size: int = 256,
    output: str | os.PathLike[str] | None = None,
) -> Any:
    """The model saved at ``model_path`` run over ``data`` on a Dask cluster.

    data: a Dask array of samples (N, ...) chunked along the samples (other axes are
    joined into one chunk) -> a Dask array of the outputs, chunked alike; or a list of
    ``.npy``, ``.csv`` or ``.parquet`` files (or one glob pattern) -> one ``.npy`` per
    input in the folder ``output``, named after the input (``a.csv`` -> ``output/a.npy``),
    written atomically; returns their paths. A CSV (a header row is skipped) or Parquet
    table holds one sample per row: as it is for a model that reads 2-D input (ids, or a
    Dense first), else each row is cut into steps of the first layer's input size.

    client: a ``distributed.Client`` (None: the default client if there is one, else
    Dask's local scheduler). With a client given, the array result is persisted on its
    cluster (computing starts now); without, it is lazy. batch_size: rows per call of the
    core on a worker.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"expected batch_size as an int >= 1, got {batch_size!r}")
    model_path = os.path.abspath(os.fspath(model_path))
    model = load(model_path)  # here too: a bad file fails now, and the output's shape is read off it
    status = os.stat(model_path)
    stamp = (model_path, status.st_size, status.st_mtime_ns)
    try:
        import dask
        import dask.array as da
    except ImportError as error:
        raise ImportError(f"lstmcore.distributed.predict needs Dask: pip install 'lstmcore[dask]' ({error})") from error
    given = client
    client = _client(client)
    hosts = None if client is None else _task_threads_by_host(client)
    if isinstance(data, da.Array):
        if output is not None:
            raise ValueError("output= is the folder for the outputs of files; a Dask array's outputs are a Dask array")
        result = _predict_array(da, model, data, stamp, hosts, batch_size)
        return result if given is None else given.persist(result)
    inputs = _input_files(data)
    if output is None:
        raise ValueError("expected output=, the folder for the outputs of the input files")
    outputs = _output_files(inputs, os.fspath(output))
    os.makedirs(output, exist_ok=True)
    if client is None:
        tasks = [dask.delayed(_predict_file)(i, o, stamp, hosts, batch_size) for i, o in zip(inputs, outputs)]
        return list(dask.compute(*tasks))
    # by partial: Client.map takes batch_size= as an option of its own
    futures = client.map(functools.partial(_predict_file, stamp=stamp, hosts=hosts, batch_size=batch_size), inputs, outputs)
    return client.gather(futures)


# ----------------------------------------------------------------------- the client's side


def _client(client: Any) -> Any:
    if client is not None:
        return client
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):  # no distributed, or no client made
        return None


def _task_threads_by_host(client: Any) -> dict[str, int]:
    """{host: task threads of all the workers there}."""
    threads: dict[str, int] = {}
    for worker in client.scheduler_info(n_workers=-1)["workers"].values():
        threads[worker["host"]] = threads.get(worker["host"], 0) + int(worker["nthreads"])
    return threads


def _predict_array(da: Any, model: Any, data: Any, stamp: tuple[str, int, int], hosts: Any, batch_size: int) -> Any:
    if data.ndim == 0:
        raise ValueError("expected a Dask array of samples (N, ...), got a scalar")
    if any(len(chunks) > 1 for chunks in data.chunks[1:]):
        data = data.rechunk(dict.fromkeys(range(1, data.ndim), -1))
    if any(math.isnan(size) for size in data.chunks[0]):
        raise ValueError("expected a Dask array whose chunk sizes along the samples are known (x.compute_chunk_sizes())")
    rows = _sample_chunks(data.chunks[0], batch_size)
    if rows != data.chunks[0]:
        data = data.rechunk({0: rows})
    probe = model.predict(np.zeros((0,) + tuple(data.shape[1:]), data.dtype))  # (0, ...): the output's shape and dtype
    out_shape = probe.shape[1:]
    chunks = (data.chunks[0],) + tuple((size,) for size in out_shape)
    keep = min(data.ndim, len(out_shape) + 1)
    return data.map_blocks(
        _predict_block,
        stamp,
        hosts,
        batch_size,
        dtype=probe.dtype,
        chunks=chunks,
        drop_axis=list(range(keep, data.ndim)),
        new_axis=list(range(data.ndim, len(out_shape) + 1)),
        meta=np.empty((0,) * (len(out_shape) + 1), probe.dtype),
    )


def _input_files(data: Any) -> list[str]:
    if isinstance(data, (str, os.PathLike)):
        pattern = os.fspath(data)
        found = sorted(glob.glob(pattern))
        if not found:
            raise ValueError(f"no file matches {pattern!r}")
        files = found
    elif isinstance(data, Sequence) and data and all(isinstance(item, (str, os.PathLike)) for item in data):
        files = [os.fspath(item) for item in data]
    else:
        raise TypeError(f"expected a Dask array, a list of files or a glob pattern, got {type(data).__name__}")
    for path in files:
        if os.path.splitext(path)[1].lower() not in _READERS:
            raise ValueError(f"expected input files ending in {', '.join(_READERS)}, got {path}")
    return [os.path.abspath(path) for path in files]


def _output_files(inputs: list[str], folder: str) -> list[str]:
    outputs: list[str] = []
    seen: dict[str, str] = {}
    for path in inputs:
        name = os.path.splitext(os.path.basename(path))[0] + ".npy"
        if name in seen:
            raise ValueError(f"{seen[name]} and {path} would both be written to {os.path.join(folder, name)}")
        seen[name] = path
        outputs.append(os.path.abspath(os.path.join(folder, name)))
    _refuse_overwriting(inputs, outputs)
    return outputs


def _refuse_overwriting(inputs: list[str], outputs: list[str]) -> None:
    """Refuses an output that is one of the inputs: the same path once links are resolved,
    or (for one that exists) the same file, a hard link included."""
    by_path = {os.path.realpath(path): path for path in inputs}
    by_inode = {}
    for path in inputs:
        with contextlib.suppress(OSError):  # a missing input fails when it is read
            status = os.stat(path)
            by_inode[status.st_dev, status.st_ino] = path
    for out in outputs:
        same = by_path.get(os.path.realpath(out))
        if same is None:
            with contextlib.suppress(OSError):  # no such output yet
                status = os.stat(out)
                same = by_inode.get((status.st_dev, status.st_ino))
        if same is not None:
            raise ValueError(f"{out} would overwrite the input {same}: give an output folder that holds no input")


# ----------------------------------------------------------------------- a worker's side


def _worker_model(stamp: tuple[str, int, int], hosts: dict[str, int] | None) -> Any:
    """The model of ``stamp``, loaded once per process; the first load also sets the core's
    threads to this worker's share of the cores."""
    with _lock:
        model = _models.get(stamp)
        if model is None:
            if worker_state["threads"] is None:
                _share_the_cores(hosts)
            _models.clear()  # one model at a time: another file (or a rewritten one) replaces it
            model = _models[stamp] = load(stamp[0])
            worker_state["loads"] += 1
        return model


def _share_the_cores(hosts: dict[str, int] | None) -> None:
    if hosts is None:
        return  # Dask's local scheduler: the caller's own process, whose threads are the caller's
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not a task on a Dask worker
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = hosts.get(urlsplit(worker.address).hostname or "", 0) or worker.state.nthreads
    threads = max(1, cores // max(1, busy))
    set_num_threads(threads)
    worker_state["threads"] = threads


def _sample_chunks(chunks: tuple[int, ...], batch_size: int) -> tuple[int, ...]:
    """The chunk sizes along the samples with which each chunk's predict computes every row
    as a local predict of all of them does (see the top): for batch_size >= 3, chunks of
    fewer than 3 rows merged into a neighbour; for 1 or 2, cut at multiples of batch_size."""
    if batch_size < SMALLEST_BATCH:
        bounds = sorted({end - end % batch_size for end in np.cumsum(chunks[:-1], dtype=np.int64).tolist()} - {0})
        total = int(sum(chunks))
        return tuple(int(size) for size in np.diff([0, *bounds, total])) if total else chunks
    merged: list[int] = []
    for size in chunks:
        if merged and (size < SMALLEST_BATCH or merged[-1] < SMALLEST_BATCH):
            merged[-1] += size
        else:
            merged.append(size)
    return tuple(merged)


def _predict_block(block: np.ndarray, stamp: tuple[str, int, int], hosts: Any, batch_size: int) -> np.ndarray:
    return _worker_model(stamp, hosts).predict(block, batch_size=batch_size)


def _predict_file(path: str, out: str, stamp: tuple[str, int, int], hosts: Any, batch_size: int) -> str:
    model = _worker_model(stamp, hosts)
    y = model.predict(_read_input(path, model), batch_size=batch_size)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_atomically(out, lambda file: np.save(file, y, allow_pickle=False))
    return out


# ----------------------------------------------------------------------- input files


def _read_input(path: str, model: Any) -> np.ndarray:
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    table = _read_csv(path) if suffix == ".csv" else _read_parquet(path)
    return _as_model_input(table, model, path)


def _read_csv(path: str) -> np.ndarray:
    with open(path, newline="", encoding="utf-8") as file:
        rows = [row for row in csv.reader(file) if row]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # a header
    try:
        return np.array([[float(value) for value in row] for row in rows], np.float64).reshape(len(rows), -1)
    except ValueError as error:
        raise ValueError(f"{path}: expected rows of numbers of the same length ({error})") from None


def _numeric(row: list[str]) -> bool:
    try:
        [float(value) for value in row]
    except ValueError:
        return False
    return True


def _read_parquet(path: str) -> np.ndarray:
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ImportError(f"reading {path} needs pyarrow: pip install 'lstmcore[dask]' ({error})") from error
    table = pq.read_table(path)
    columns = []
    for name, column in zip(table.column_names, table.columns):
        try:
            columns.append(np.asarray(column.to_numpy(), np.float64))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: expected columns of numbers, column {name!r} holds {column.type}") from error
    return np.column_stack(columns) if columns else np.empty((table.num_rows, 0))


def _as_model_input(table: np.ndarray, model: Any, path: str) -> np.ndarray:
    """A table of one sample per row as the model reads it: ids (Embedding first) as
    integers; for a recurrent first layer each row cut into steps of its input size."""
    for layer in model.layers:
        if isinstance(layer, Embedding):
            if not np.array_equal(table, np.round(table)):
                raise ValueError(f"{path}: expected whole-number ids for the model's Embedding, got fractions")
            return table.astype(np.int64)
        if hasattr(layer, "in_features"):
            return table.astype(layer.dtype)
        if hasattr(layer, "input_size"):
            size = layer.input_size
            if table.shape[1] % size:
                raise ValueError(
                    f"{path}: rows of {table.shape[1]} values cannot be cut into steps of the model's {size} inputs"
                )
            return table.astype(layer.dtype).reshape(len(table), -1, size)
    raise ValueError(f"{path}: the model's first layers take no table (no Embedding, Dense or recurrent layer)")
