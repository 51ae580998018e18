"""fit(checkpoint=DIR, resume=True) in one process: a run stopped after some epochs and
resumed takes the same steps as an uninterrupted one (parameters, optimizer state, random
states of the shuffling and of dropout, schedule, early-stopping bookkeeping), the file is
plain arrays read without pickle, and a checkpoint of another run is refused. The same
under MPI is in tests/test_distributed_mpi.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lstmcore
from lstmcore.nn._checkpoint import CheckpointError


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
