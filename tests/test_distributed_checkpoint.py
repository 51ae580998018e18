"""fit(checkpoint=DIR, resume=True) in one process: a run stopped after some epochs and
resumed takes the same steps as an uninterrupted one (parameters, optimizer state, random
states of the shuffling and of dropout, schedule, early-stopping bookkeeping), the file is
plain arrays read without pickle, and a checkpoint of another run is refused. The same
under MPI is in tests/test_distributed_mpi.py."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import lstmcore
from lstmcore.nn._checkpoint import VERSION, CheckpointError


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5, 2)).astype(np.float32)
    return x, (x[:, :, 0].sum(axis=1, keepdims=True) / 3).astype(np.float32)


def model():
    return lstmcore.Sequential(
        [
            lstmcore.LSTM(2, 6, seed=0, num_layers=2, dropout=0.2),
            lstmcore.LastStep(),
            lstmcore.Dropout(0.3, seed=7),
            lstmcore.Dense(6, 1, seed=1),
        ]
    )


def train(net, epochs, optimizer_kind="adam", **options):
    x, y = data()
    optimizer = (
        lstmcore.optim.SGD(net.params, lr=0.05, momentum=0.9)
        if optimizer_kind == "sgd"
        else lstmcore.optim.Adam(net.params, lr=0.01)
    )
    schedule = lstmcore.optim.CosineLR(optimizer, 6)
    options = dict(batch_size=8, validation_split=0.25, verbose=False, schedule=schedule) | options
    return net.fit(x, y, loss="mse", optimizer=optimizer, epochs=epochs, **options)


@pytest.mark.parametrize("optimizer_kind", ["adam", "sgd"])
def test_a_resumed_run_takes_the_steps_of_an_uninterrupted_one(tmp_path, optimizer_kind):
    whole = model()
    expected = train(whole, 6, optimizer_kind)
    first = train(model(), 2, optimizer_kind, checkpoint=tmp_path)
    assert first.epochs == 2
    resumed_model = model()
    resumed = train(resumed_model, 6, optimizer_kind, checkpoint=tmp_path, resume=True)
    assert resumed.resumed_epochs == 2 and resumed.epochs == 6
    for key in ("loss", "val_loss", "lr"):
        assert resumed.history[key] == expected.history[key], key
    assert resumed.best_epoch == expected.best_epoch
    for name, value in whole.params.items():  # the best epoch's, restored by both
        np.testing.assert_array_equal(resumed_model.params[name], value, err_msg=name)


def test_a_run_without_a_seed_resumes_with_the_seed_it_drew(tmp_path):
    # seed=None draws a seed; the checkpoint records it, so the resumed run holds out the
    # same validation rows (and trains on the others) as the run that wrote it
    first = train(model(), 2, seed=None, checkpoint=tmp_path)
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as saved:
        drawn = json.loads(saved["__checkpoint__"].tobytes())["seed"]
    assert json.loads(json.dumps(drawn)) == drawn and type(drawn) is int
    whole = model()
    expected = train(whole, 4, seed=drawn)
    assert expected.history["val_loss"][:2] == first.history["val_loss"]
    resumed_model = model()
    resumed = train(resumed_model, 4, seed=None, checkpoint=tmp_path, resume=True)
    assert resumed.resumed_epochs == 2
    for key in ("loss", "val_loss"):
        assert resumed.history[key] == expected.history[key], key
    for name, value in whole.params.items():
        np.testing.assert_array_equal(resumed_model.params[name], value, err_msg=name)


def test_resume_without_a_checkpoint_starts_from_scratch_and_says_so(tmp_path, capsys):
    history = model().fit(*data(), loss="mse", epochs=1, checkpoint=tmp_path / "new", resume=True)
    assert history.resumed_epochs == 0 and history.epochs == 1
    assert f"no checkpoint in {tmp_path / 'new'}: training from scratch" in capsys.readouterr().err
    assert (tmp_path / "new" / "checkpoint.npz").exists()


def test_the_checkpoint_is_plain_arrays_and_a_json_header_read_without_pickle(tmp_path):
    net = model()
    train(net, 2, checkpoint=tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint.npz"]  # no temporary file left
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as saved:
        header = json.loads(saved["__checkpoint__"].tobytes().decode("utf-8"))
        assert all(saved[key].dtype.kind in "fu" for key in saved.files)
        assert header["epochs_done"] == 2 and header["params"] == list(net.params)
        assert header["optimizer"]["type"] == "Adam" and len(header["optimizer"]["arrays"]) == 2 * len(net.params)
        assert set(header["layer_states"][0]) == {"0._dropout_rng", "2._rng"}


def test_an_early_stopped_run_resumes_as_stopped(tmp_path):
    # a rate so high that val_loss soon rises
    options = dict(loss="mse", epochs=30, patience=1, validation_split=0.25, verbose=False, checkpoint=tmp_path)
    first = model()
    stopped = first.fit(*data(), optimizer=lstmcore.optim.Adam(first.params, lr=0.3), **options)
    assert stopped.stopped_early and stopped.epochs < 30
    second = model()
    again = second.fit(*data(), optimizer=lstmcore.optim.Adam(second.params, lr=0.3), **options, resume=True)
    assert again.stopped_early and again.epochs == stopped.epochs and again.resumed_epochs == stopped.epochs


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(batch_size=4), "written by a fit with batch_size=8, this fit has batch_size=4"),
        (dict(seed=3), "written by a fit with seed=0, this fit has seed=3"),
    ],
)
def test_a_checkpoint_of_another_run_is_refused(tmp_path, change, message):
    train(model(), 1, checkpoint=tmp_path)
    with pytest.raises(CheckpointError, match=message):
        train(model(), 2, checkpoint=tmp_path, resume=True, **change)


def test_a_checkpoint_of_another_model_or_optimizer_is_refused(tmp_path):
    train(model(), 1, checkpoint=tmp_path)
    x, y = data()
    other = lstmcore.Sequential([lstmcore.LSTM(2, 4, seed=0), lstmcore.LastStep(), lstmcore.Dense(4, 1, seed=1)])
    with pytest.raises(CheckpointError, match="written by a fit with params="):
        other.fit(x, y, loss="mse", batch_size=8, validation_split=0.25, checkpoint=tmp_path, resume=True, verbose=False)
    with pytest.raises(CheckpointError, match="written with optimizer Adam, this fit uses SGD"):
        train(model(), 2, "sgd", checkpoint=tmp_path, resume=True)


def test_a_damaged_checkpoint_is_refused_with_its_path(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match=r"checkpoint\.npz: not a readable lstmcore checkpoint"):
        train(model(), 1, checkpoint=tmp_path, resume=True)


def test_resume_needs_a_checkpoint_folder():
    with pytest.raises(ValueError, match="resume=True continues from checkpoint=DIR"):
        model().fit(*data(), loss="mse", resume=True, verbose=False)


def test_lstmcore_train_checkpoint_and_resume_on_the_command_line(tmp_path, capsys):
    from lstmcore.cli.main import main

    base = ["train", "forecast", "--hidden", "4", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "m.npz")]
    assert main([*base, "--epochs", "1"]) == 0
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"resuming from {tmp_path / 'ck' / 'checkpoint.npz'}: 1 epoch(s) done" in err and "epoch 2/2" in err
    assert main(["train", "forecast", "--resume"]) == 2
    assert "lstmcore: error: --resume continues from --checkpoint DIR: give that folder" in capsys.readouterr().err


# ----------------------------------------------------------------------- hostile files
#
# A checkpoint is read as a model file is: at a cost bounded by its real bytes, every
# header value type-checked and every array compared with the model and the optimizer
# before anything changes; a bad file is a CheckpointError saying what was expected.


def rewritten(folder, change, compressed=False):
    """The checkpoint of a 1-epoch run in ``folder``, rewritten by ``change(header, arrays)``."""
    train(model(), 1, checkpoint=folder)
    path = folder / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as saved:
        arrays = {key: saved[key] for key in saved.files}
    header = json.loads(arrays["__checkpoint__"].tobytes())
    change(header, arrays)
    arrays["__checkpoint__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


def assert_refused_unchanged(folder, message):
    """Resuming from ``folder`` raises CheckpointError matching ``message``, leaving the
    model's parameters and the optimizer's state as they were."""
    net, fresh = model(), model()
    optimizer = lstmcore.optim.Adam(net.params, lr=0.01)
    x, y = data()
    with pytest.raises(CheckpointError, match=message):
        net.fit(
            x,
            y,
            loss="mse",
            optimizer=optimizer,
            epochs=2,
            batch_size=8,
            validation_split=0.25,
            verbose=False,
            schedule=lstmcore.optim.CosineLR(optimizer, 6),
            checkpoint=folder,
            resume=True,
        )
    for name, value in fresh.params.items():
        np.testing.assert_array_equal(net.params[name], value, err_msg=name)
    assert optimizer.state == {} and optimizer.lr == 0.01


def set_header(key, value):
    def change(header, arrays):
        header[key] = value

    return change


def wrong_array(key, array):
    def change(header, arrays):
        arrays[key] = array

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        # an epoch count replayed as the file said would never end
        (set_header("epochs_done", 10**15), r"expected epochs_done as an integer in \[1, 1000000\], got integer 10{15}"),
        (set_header("epochs_done", "1"), r"expected epochs_done as an integer in \[1, 1000000\], got string '1'"),
        (set_header("epochs_done", 3), r"expected history\['loss'\] as 3 number\(s\), one per epoch done .* got 1 value"),
        (set_header("best_epoch", 5), r"expected best_epoch as null or in \[0, 1\), got integer 5"),
        (set_header("history", {"loss": [0.5]}), r"expected history\['lr'\], the History holds \['loss'\]"),
        (set_header("rng", {"bit_generator": "PCG64", "state": 3}), "rng is not a PCG64 state"),
        (lambda header, arrays: header.pop("waited"), r"the header's keys are not a checkpoint's: missing \['waited'\]"),
        (set_header("version", 7), f"expected checkpoint version {VERSION}, got 7"),
        (set_header("seed", -1), "expected seed as an integer >= 0, got integer -1"),
        # arrays: each checked before any is assigned (param/3 is not the first one)
        (
            wrong_array("param/3", np.zeros(3, np.float32)),
            r"expected param/3 \(0\.bias_hh_l0\) as float32 \(24,\), got float32 \(3,\)",
        ),
        (
            wrong_array("best/0", np.zeros((24, 2))),
            r"expected best/0 \(0\.weight_ih_l0\) as float32 \(24, 2\), got float64 \(24, 2\)",
        ),
        (wrong_array("optim/5", np.zeros(3, np.float32)), r"expected optim/5 as float32 \(24,\), got float32 \(3,\)"),
        (wrong_array("junk", np.zeros(2, np.uint8)), r"the arrays are not those its header names: unknown \['junk'\]"),
        (lambda header, arrays: arrays.pop("optim/1"), r"the arrays are not those its header names: missing \['optim/1'\]"),
        (
            lambda header, arrays: header["optimizer"]["scalars"]["0.weight_ih_l0"].update(step=1.5),
            r"expected Adam's scalar state of '0\.weight_ih_l0' as integers \['step'\], got",
        ),
    ],
    ids=[
        "epochs_done_huge",
        "epochs_done_text",
        "epochs_done_beyond_history",
        "best_epoch",
        "history_incomplete",
        "rng",
        "missing_key",
        "version",
        "seed",
        "param_shape",
        "best_dtype",
        "optimizer_shape",
        "unknown_member",
        "missing_member",
        "optimizer_scalar",
    ],
)
def test_a_hostile_or_damaged_checkpoint_is_refused_before_anything_changes(tmp_path, change, message):
    rewritten(tmp_path, change)
    assert_refused_unchanged(tmp_path, message)


def test_a_zip_bomb_checkpoint_is_refused_without_being_decompressed(tmp_path):
    # 32 MB of zeros deflate to some 32 KB: the members claim more than 10 times the file
    rewritten(tmp_path, wrong_array("junk", np.zeros(2**25, np.uint8)), compressed=True)
    assert (tmp_path / "checkpoint.npz").stat().st_size < 2**20
    assert_refused_unchanged(
        tmp_path, r"not a readable lstmcore checkpoint: the members claim \d+ bytes; .* \(a zip bomb\?\)"
    )


def test_a_fifo_in_place_of_the_checkpoint_is_refused_not_waited_on(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "checkpoint.npz")
    assert_refused_unchanged(tmp_path, "checkpoint.npz: not a regular file, so not a checkpoint")


def test_a_history_with_a_diverged_epoch_reads_back(tmp_path):
    # json writes NaN and Infinity for a diverged loss and the best loss before any epoch
    def diverged(header, arrays):
        header["history"]["loss"][0] = float("nan")
        header["best_loss"] = float("inf")

    rewritten(tmp_path, diverged)
    resumed = train(model(), 2, checkpoint=tmp_path, resume=True)
    assert resumed.resumed_epochs == 1 and np.isnan(resumed.history["loss"][0])
