"""lstmcore.distributed.predict on a Dask LocalCluster of 2 worker processes (1 thread each):
Dask arrays chunked along the samples and .npy/CSV/Parquet files, against a local
``model.predict``; the model loaded once per worker, the core's threads set to each
worker's share of the cores; ``lstmcore predict --dask``.

Every call that waits for the cluster (starting and closing it, computing, gathering,
running on the workers, the command line) runs through ``within``: a hang fails the test
after CALL_TIMEOUT_S instead of blocking the run (pytest-timeout is not installed, and
Client(timeout=...) bounds only connecting). A module-wide watchdog (faulthandler) ends
the process with every thread's traceback should anything else hang."""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")
pyarrow = pytest.importorskip("pyarrow")

import dask.array as da  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import lstmcore  # noqa: E402
from lstmcore.cli.main import main  # noqa: E402
from lstmcore.distributed import _dask  # noqa: E402

BATCH = 64
CALL_TIMEOUT_S = 60
MODULE_TIMEOUT_S = 600  # the watchdog's: far above the few seconds the module takes


def within(function, *args, limit_s=CALL_TIMEOUT_S, **kwargs):
    """``function(*args, **kwargs)`` run in a daemon thread (which cannot keep the process
    alive); the test fails if it has not returned within ``limit_s`` seconds."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    if thread.is_alive():
        pytest.fail(f"{getattr(function, '__name__', function)} did not return within {limit_s} s (a hang?)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture(scope="module", autouse=True)
def watchdog():
    faulthandler.dump_traceback_later(MODULE_TIMEOUT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def client():
    cluster = within(LocalCluster, n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        client = within(Client, cluster, timeout=30)
        try:
            yield client
        finally:
            within(client.close)
    finally:
        within(cluster.close)


def test_a_call_that_hangs_fails_the_test_instead_of_blocking():
    started = time.perf_counter()
    with pytest.raises(pytest.fail.Exception, match=r"wait did not return within 0\.2 s \(a hang\?\)"):
        within(threading.Event().wait, limit_s=0.2)  # waits forever
    assert time.perf_counter() - started < 5


def workers_state(client):
    return within(client.run, lambda: _dask.worker_state)


def sequence_model():
    """(N, 7, 5) floats -> (N, 7, 3): one output per step."""
    return lstmcore.Sequential([lstmcore.LSTM(5, 16, seed=0, num_layers=2), lstmcore.Dense(16, 3, seed=1)])


def ids_model():
    """(N, 6) ids -> (N, 4): one output per sequence."""
    return lstmcore.Sequential(
        [lstmcore.Embedding(20, 4, seed=2), lstmcore.GRU(4, 8, seed=3), lstmcore.LastStep(), lstmcore.Dense(8, 4, seed=4)]
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    models = {"sequence": sequence_model(), "ids": ids_model()}
    for name, model in models.items():
        model.save(folder / f"{name}.npz")
    return folder, models


def floats(count, seed=0):
    return np.random.default_rng(seed).normal(size=(count, 7, 5)).astype(np.float32)


def test_a_dask_array_of_sequences_gives_the_local_predictions_bit_for_bit(client, saved):
    folder, models = saved
    x = floats(203)  # locally batches of 64, 64, 64, 11 rows
    expected = models["sequence"].predict(x, batch_size=BATCH)
    result = lstmcore.distributed.predict(folder / "sequence.npz", da.from_array(x, chunks=50), client, batch_size=BATCH)
    assert isinstance(result, da.Array) and result.chunks == ((50, 50, 50, 50, 3), (7,), (3,))
    np.testing.assert_array_equal(within(result.compute), expected)
    # chunks of 65 rows: batches of 64 would leave one row, which the core computes on
    # another path (rounding differently); it joins the batch before it
    result = lstmcore.distributed.predict(folder / "sequence.npz", da.from_array(x, chunks=65), client, batch_size=BATCH)
    np.testing.assert_array_equal(within(result.compute), expected)


def test_a_quantized_model_file_predicts_as_the_quantized_model_locally(client, saved, tmp_path):
    _, models = saved
    quantized = lstmcore.quantize(models["sequence"], "int8")
    quantized.save(tmp_path / "int8.npz")
    x = floats(70, seed=3)
    result = lstmcore.distributed.predict(tmp_path / "int8.npz", da.from_array(x, chunks=35), client, batch_size=BATCH)
    np.testing.assert_array_equal(within(result.compute), quantized.predict(x, batch_size=BATCH))


@pytest.mark.parametrize(
    "rows, chunks, batch_size, merged",
    [
        # a last chunk of 1 row (202 = 3 x 67 + 1) is merged into the one before it
        (202, 67, BATCH, (67, 67, 68)),
        # locally 193 rows in batches of 64 would end with a batch of 1 row: it joins the
        # batch before it in predict too, so chunks of 100 and 93 give the same rows
        (193, 100, BATCH, (100, 93)),
        # chunks of 1 and 2 rows anywhere, the first included
        (40, ((1, 2, 30, 2, 5), 7, 5), BATCH, (3, 32, 5)),
        # batches of 2 rows all take the matrix-vector path, where a row depends on its
        # batch's size: the chunks are cut at multiples of 2, each holding whole batches
        (21, 5, 2, (4, 6, 4, 6, 1)),
    ],
)
def test_every_chunking_gives_the_local_predictions_bit_for_bit(client, saved, rows, chunks, batch_size, merged):
    folder, models = saved
    x = floats(rows, seed=5)
    expected = models["sequence"].predict(x, batch_size=batch_size)
    result = lstmcore.distributed.predict(
        folder / "sequence.npz", da.from_array(x, chunks=chunks), client, batch_size=batch_size
    )
    assert result.chunks[0] == merged
    np.testing.assert_array_equal(within(result.compute), expected)


def test_a_local_predict_computes_each_row_alike_in_any_batching_of_3_rows_or_more(saved):
    _, models = saved
    model, x = models["sequence"], floats(193, seed=6)
    expected = model.predict(x, batch_size=193)
    for batch_size in (3, 64, 96, 192):  # 193 = 64 x 3 + 1: the last row joins the batch before it
        np.testing.assert_array_equal(model.predict(x, batch_size=batch_size), expected, err_msg=f"{batch_size}")
    parts = np.concatenate([model.predict(x[:100], batch_size=64), model.predict(x[100:], batch_size=64)])
    np.testing.assert_array_equal(parts, expected)


def test_a_dask_array_of_ids_chunked_on_every_axis_gives_the_local_predictions(client, saved):
    folder, models = saved
    ids = np.random.default_rng(1).integers(0, 20, size=(150, 6))
    data = da.from_array(ids, chunks=(40, 3))  # the steps are joined into one chunk
    result = lstmcore.distributed.predict(folder / "ids.npz", data, client, batch_size=BATCH)
    assert result.chunks == ((40, 40, 40, 30), (4,))
    np.testing.assert_array_equal(within(result.compute), models["ids"].predict(ids, batch_size=BATCH))


def test_without_a_client_the_default_client_runs_it(client, saved):
    folder, models = saved
    x = floats(30, seed=2)
    result = lstmcore.distributed.predict(folder / "sequence.npz", da.from_array(x, chunks=10))
    np.testing.assert_array_equal(within(result.compute), models["sequence"].predict(x))


def test_each_worker_loads_the_model_once_and_takes_its_share_of_the_cores(client, tmp_path):
    path = tmp_path / "fresh.npz"
    sequence_model().save(path)
    before = workers_state(client)
    for _ in range(2):
        within(lstmcore.distributed.predict(path, da.from_array(floats(120), chunks=10), client, batch_size=BATCH).compute)
    after = workers_state(client)
    loads = [after[worker]["loads"] - before[worker]["loads"] for worker in after]
    assert sorted(loads) in ([0, 1], [1, 1]), loads  # 24 chunks, at most one load per worker
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    share = max(1, cores // 2)  # 2 workers of 1 task thread on this machine
    assert {state["threads"] for state in after.values() if state["loads"]} == {share}


def test_files_give_one_npy_each_with_the_local_predictions(client, saved, tmp_path):
    folder, models = saved
    inputs = tmp_path / "in"
    inputs.mkdir()
    x = floats(90, seed=3)
    np.save(inputs / "a.npy", x[:40])
    table = x[40:].reshape(50, 35)  # one sample per row: 7 steps of 5 inputs
    np.savetxt(inputs / "b.csv", table, delimiter=",", header=",".join(f"v{i}" for i in range(35)), comments="")
    pq.write_table(pyarrow.table({f"v{i}": table[:, i] for i in range(35)}), inputs / "c.parquet")
    written = within(
        lstmcore.distributed.predict,
        folder / "sequence.npz",
        sorted(inputs.iterdir()),
        client,
        batch_size=BATCH,
        output=tmp_path / "out",
    )
    assert [os.path.basename(path) for path in written] == ["a.npy", "b.npy", "c.npy"]
    model = models["sequence"]
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "a.npy"), model.predict(x[:40], batch_size=BATCH))
    # CSV text holds float64 digits of float32 values: read back, they are the same float32
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "b.npy"), model.predict(x[40:], batch_size=BATCH))
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "c.npy"), model.predict(x[40:], batch_size=BATCH))


def test_lstmcore_predict_dask_writes_one_output_per_input(client, saved, tmp_path, capsys):
    folder, models = saved
    ids = np.random.default_rng(4).integers(0, 20, size=(30, 6))
    for part in range(3):
        np.save(tmp_path / f"part{part}.npy", ids[part * 10 : (part + 1) * 10])
    address = client.scheduler.address
    pattern, out = str(tmp_path / "part*.npy"), str(tmp_path / "out")
    assert within(main, ["predict", str(folder / "ids.npz"), "--dask", address, "--input", pattern, "--output", out]) == 0
    assert f"wrote 3 output(s) to {out}" in capsys.readouterr().out
    for part in range(3):
        expected = models["ids"].predict(ids[part * 10 : (part + 1) * 10])
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"part{part}.npy"), expected)


def test_lstmcore_predict_input_needs_an_output_folder(saved, capsys):
    folder, _ = saved
    assert main(["predict", str(folder / "ids.npz"), "--input", "x*.npy"]) == 2
    assert "needs --input PATTERN and --output DIR" in capsys.readouterr().err


@pytest.mark.parametrize(
    "inputs, output, message",
    [
        (["a.npy"], None, "expected output=, the folder for the outputs"),
        (["a.txt"], "out", r"expected input files ending in \.npy, \.csv, \.parquet, got a\.txt"),
        (["x/a.npy", "y/a.csv"], "out", "would both be written to"),
        ("nothing*.npy", "out", "no file matches"),
    ],
)
def test_bad_file_arguments_are_refused_before_any_work(saved, tmp_path, monkeypatch, inputs, output, message):
    folder, _ = saved
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        lstmcore.distributed.predict(folder / "ids.npz", inputs, client=None, output=output)


@pytest.mark.parametrize("how", ["same folder", "a link to the folder", "a hard link to the input"])
def test_an_output_that_is_an_input_is_refused_before_any_work(saved, tmp_path, how):
    folder, _ = saved
    data = tmp_path / "data"
    data.mkdir()
    x = floats(10)
    np.save(data / "a.npy", x)
    output = data
    if how == "a link to the folder":
        output = tmp_path / "link"
        output.symlink_to(data, target_is_directory=True)
    elif how == "a hard link to the input":
        output = tmp_path / "out"
        output.mkdir()
        os.link(data / "a.npy", output / "a.npy")
    with pytest.raises(
        ValueError, match=r"a\.npy would overwrite the input .*a\.npy: give an output folder that holds no input"
    ):
        lstmcore.distributed.predict(folder / "sequence.npz", str(data / "*.npy"), client=None, output=output)
    np.testing.assert_array_equal(np.load(data / "a.npy"), x)


def test_lstmcore_predict_refuses_an_output_folder_holding_the_inputs(saved, tmp_path, capsys):
    folder, _ = saved
    np.save(tmp_path / "a.npy", floats(10))
    arguments = ["predict", str(folder / "sequence.npz"), "--input", str(tmp_path / "*.npy"), "--output", str(tmp_path)]
    assert main(arguments) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert np.load(tmp_path / "a.npy").shape == (10, 7, 5)


def test_a_parquet_column_of_strings_is_refused_naming_the_file_and_column(tmp_path):
    pq.write_table(pyarrow.table({"v0": [1.0, 2.0], "name": ["a", "b"]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t\.parquet: expected columns of numbers, column 'name' holds string"):
        _dask._read_parquet(str(tmp_path / "t.parquet"))


def test_without_dask_predict_says_which_extra_to_install(saved, monkeypatch):
    folder, _ = saved
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"needs Dask: pip install 'lstmcore\[dask\]'"):
        lstmcore.distributed.predict(folder / "ids.npz", ["a.npy"], output="out")
