"""fit(distributed="mpi") on 1, 2 and 4 ranks of MPICH on loopback (tests/_mpi_fit.py under
``mpiexec -n N``): the same losses and parameters as one process within the rounding of
another summation order, the same History on every rank, checkpoints written by rank 0 and
resumed after a rank was killed, a failing rank that stops every rank with its error, and
the command line.

Every launch has a hard timeout, after which its whole process group is killed and the
test fails: a hang fails rather than blocks. Each rank runs the core on one thread
(OMP_NUM_THREADS=1): 4 ranks share this machine's 2 cores.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("mpi4py")

import _mpi_fit

HERE = pathlib.Path(__file__).resolve().parent
SCRIPT = HERE / "_mpi_fit.py"
LAUNCH_TIMEOUT_S = 60
PROMPT_S = 20  # a failed job must end this fast (its ranks wait at most one step for each other)


def _mpiexec():
    beside = pathlib.Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpi4py is installed but no mpiexec was found (pip install mpich, or the cluster's MPI)")
    return found


def launch(ranks, *arguments, timeout=LAUNCH_TIMEOUT_S, cwd=None):
    """(return code, stdout, stderr, seconds) of ``mpiexec -n ranks python arguments...``."""
    command = [_mpiexec(), "-n", str(ranks), sys.executable, *map(str, arguments)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{' '.join(command)} did not end within {timeout} s (a hang?)\n{out}\n{err}")
    return process.returncode, out, err, time.perf_counter() - started


def read_rank(out, rank):
    with np.load(out / f"rank{rank}.npz") as arrays:
        params = {key: arrays[key] for key in arrays.files}
    return params, json.loads((out / f"rank{rank}.json").read_text())


@pytest.fixture(scope="module")
def reference():
    """The one-process run, in this process: {name: (model, history)}."""
    return _mpi_fit.train()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{ranks: [(params, histories) of each rank]} of the uninterrupted runs on 1, 2, 4 ranks."""
    found = {}
    for ranks in (1, 2, 4):
        out = tmp_path_factory.mktemp(f"ranks{ranks}")
        code, _, err, _ = launch(ranks, SCRIPT, out, "--mpi")
        assert code == 0, err
        found[ranks] = [read_rank(out, rank) for rank in range(ranks)]
    return found


# ----------------------------------------------------------------------- the bound
#
# N ranks compute the same sums as one process in another order: each rank sums the
# gradient terms of its rows, Allreduce sums the N partial sums, and a forward of fewer
# rows may take another path through the core's products. A float32 sum of n terms in
# two orders differs by at most 2 n u sum|terms| (u = 2**-24, the unit roundoff; Higham,
# Accuracy and Stability, 4.2), so each gradient element differs by a relative
# delta <= 2 n u where the terms do not cancel; n is the longest sum behind a gradient:
# B rows times T steps of a weight-gradient product plus the I + H terms of the product
# that made each term. Adam's step lr * m_hat / (sqrt(v_hat) + eps) is invariant to
# the gradient's scale, so a relative change delta of the gradients moves it by at most
# 2 lr delta; and rounding the new parameter may differ by one more ulp, at most
# 2 u |theta|. To first order (the differences also feed back into later gradients,
# through the loss's curvature L, negligible while S lr L << 1, as in these few steps),
# after S steps, for every parameter element:
#
#     |theta_N - theta_1| <= S (4 lr n u + 2 u max|theta|)
#
# The losses of an epoch are float64 sums of float32 per-sample losses of parameters that
# differ by at most that much, and of a forward in another batch composition: relative
# differences of at most S n u.
U = 2.0**-24
# (steps in 3 epochs, the longest sum n): regress B=16 rows x T=6 steps + I+H = 3+8;
# tag B=7 x T=5 + 4+8.
SHAPES = {"regress": (3 * 3, 16 * 6 + 3 + 8), "tag": (3 * 5, 7 * 5 + 4 + 8)}


def parameter_bound(name, theta):
    steps, n = SHAPES[name]
    return steps * (4 * _mpi_fit.LR * n * U + 2 * U * float(np.max(np.abs(theta))))


def loss_rtol(name):
    steps, n = SHAPES[name]
    return steps * n * U


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_n_ranks_give_one_process_losses_and_parameters_within_the_rounding_bound(runs, reference, ranks):
    params, histories = runs[ranks][0]
    for name, (model, history) in reference.items():
        for key, expected in model.params.items():
            got = params[f"{name}/{key}"]
            if ranks == 1:  # one rank is the one-process loop itself
                np.testing.assert_array_equal(got, expected, err_msg=f"{name} {key}")
                continue
            bound = parameter_bound(name, expected)
            worst = float(np.max(np.abs(got.astype(np.float64) - expected)))
            assert worst <= bound, f"{name} {key}: {ranks} ranks differ by {worst:.3g} > the bound {bound:.3g}"
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            if key in history.history:
                np.testing.assert_allclose(
                    histories[name]["history"][key], history.history[key], rtol=loss_rtol(name), err_msg=f"{name} {key}"
                )


def test_the_bound_is_far_below_what_one_step_moves_a_parameter(reference):
    # Not vacuous: a gradient weighted wrongly (say each rank's mean averaged, with uneven
    # shares) changes an Adam step by a fraction of lr; the bound is 1000 times smaller.
    for name, (model, _) in reference.items():
        for key, value in model.params.items():
            assert parameter_bound(name, value) < _mpi_fit.LR / 1000, f"{name} {key}"


@pytest.mark.parametrize("ranks", [2, 4])
def test_every_rank_returns_the_same_history_and_parameters(runs, ranks):
    first_params, first_histories = runs[ranks][0]
    for rank in range(1, ranks):
        params, histories = runs[ranks][rank]
        assert histories == first_histories, f"rank {rank}"
        for key, value in first_params.items():
            np.testing.assert_array_equal(params[key], value, err_msg=f"rank {rank}: {key}")


# ----------------------------------------------------------------------- failures


def test_a_rank_that_raises_stops_every_rank_with_its_error(tmp_path):
    code, _, err, seconds = launch(2, SCRIPT, tmp_path, "--mpi", "--sabotage", "1:2:raise")
    assert code != 0 and seconds < PROMPT_S, err
    assert (tmp_path / "rank1.error").read_text() == "ValueError: this rank's share of the batch is broken (sabotage)"
    assert (tmp_path / "rank0.error").read_text() == (
        "RankFailed: rank 1 of 2 failed in a training step: ValueError: this rank's share of the batch is broken (sabotage)"
    )


def test_a_rank_failing_outside_a_shared_step_ends_the_job(tmp_path):
    # The optimizer's step runs after the step's Allreduce: rank 0 goes on to the next one,
    # where rank 1 never arrives. fit prints the error and ends the job (MPI_Abort).
    code, out, err, seconds = launch(2, SCRIPT, tmp_path, "--mpi", "--sabotage", "1:2:optimizer")
    assert code != 0 and seconds < PROMPT_S, err
    assert "lstmcore: rank 1 of 2 failed; ending the MPI job (MPI_Abort)" in err, f"exit status {code}\n{out}\n{err}"
    assert "RuntimeError: the optimizer failed on this rank alone (sabotage)" in err
    assert not list(tmp_path.glob("rank*.npz"))


def test_a_killed_rank_ends_the_job_and_a_rerun_resumes_to_the_uninterrupted_result(tmp_path, runs):
    checkpoint, out = tmp_path / "checkpoint", tmp_path / "out"
    out.mkdir()
    # step 4 is the second epoch's second step of the regress model
    code, _, err, seconds = launch(2, SCRIPT, out, "--mpi", "--checkpoint", checkpoint, "--sabotage", "1:4:kill")
    assert code != 0 and seconds < PROMPT_S, err
    assert (checkpoint / "regress" / "checkpoint.npz").exists() and not (checkpoint / "tag").exists()
    code, _, err, _ = launch(2, SCRIPT, out, "--mpi", "--checkpoint", checkpoint, "--resume")
    assert code == 0, err
    params, histories = read_rank(out, 0)
    expected_params, expected_histories = runs[2][0]
    assert histories["regress"]["resumed"] == 1 and histories["tag"]["resumed"] == 0
    for name in ("regress", "tag"):
        history, expected = histories[name]["history"], expected_histories[name]["history"]
        for key in ("loss", "val_loss", "lr"):
            assert history[key] == expected[key], f"{name} {key}"
    for key, value in expected_params.items():
        np.testing.assert_array_equal(params[key], value, err_msg=key)


def test_with_dropout_each_rank_drops_its_own_elements_and_a_resumed_run_matches(tmp_path):
    code, _, err, _ = launch(2, SCRIPT, tmp_path, "--mpi", "--dropout", "--checkpoint", tmp_path / "ck")
    assert code == 0, err
    reports = [json.loads((tmp_path / f"rank{rank}.dropout.json").read_text()) for rank in range(2)]
    for report in reports:
        assert report["worst"] == 0.0 and report["resumed"] == 1
    # the layers' generators (the recurrent layer's dropout, the Dropout layer's) differ by rank
    assert set(reports[0]["states"]) == {"0._dropout_rng", "2._rng"}
    for key in reports[0]["states"]:
        assert reports[0]["states"][key] != reports[1]["states"][key], key


def test_a_script_run_by_python_m_mpi4py_that_raises_outside_fit_ends_the_job(tmp_path):
    # docs/distributed.md: rank 1 raises before fit, rank 0 waits in fit's first collective;
    # mpi4py's runner calls MPI_Abort on an uncaught exception, which ends the job
    code, out, err, _ = launch(2, "-m", "mpi4py", SCRIPT, tmp_path, "--mpi", "--sabotage", "1:0:before", timeout=PROMPT_S)
    assert code != 0 and "RuntimeError: this rank failed before fit (sabotage)" in err, f"{code}\n{out}\n{err}"


# ----------------------------------------------------------------------- the command line


def test_lstmcore_train_distributed_mpi_trains_on_every_rank_and_rank_0_alone_writes(tmp_path):
    code, out, err, _ = launch(
        2,
        "-m",
        "lstmcore",
        "train",
        "forecast",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--distributed",
        "mpi",
        "--checkpoint",
        "ck",
        "--out",
        "model.npz",
        cwd=tmp_path,
    )
    assert code == 0, err
    assert out.count("saved the model to model.npz") == 1 and out.count("forecast: ") == 1, out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ck", "model.npz"]
    import lstmcore

    model = lstmcore.load(tmp_path / "model.npz")
    assert model.metadata["task"] == "forecast"
    with np.load(tmp_path / "ck" / "checkpoint.npz", allow_pickle=False) as saved:
        assert json.loads(saved["__checkpoint__"].tobytes())["epochs_done"] == 2


def test_lstmcore_train_distributed_options_refused_on_one_rank_stop_every_rank(tmp_path):
    # --checkpoint is checked by rank 0 alone (it writes it), but on every rank together:
    # every rank exits with the error instead of waiting in fit for rank 0
    (tmp_path / "ckfile").touch()
    command = ["-m", "lstmcore", "train", "forecast", "--epochs", "1", "--hidden", "8", "--distributed", "mpi"]
    code, out, err, _ = launch(2, *command, "--checkpoint", "ckfile", cwd=tmp_path, timeout=PROMPT_S)
    assert code == 2, f"{code}\n{out}\n{err}"
    assert "lstmcore: error: cannot write into ckfile:" in err and "is not a folder" in err
    assert "lstmcore: error: rank 0 of 2 failed checking the command line's options: TaskError:" in err


def test_lstmcore_train_distributed_failing_on_one_rank_before_fit_ends_the_job(tmp_path):
    # --out is checked by the task on rank 0 alone (the others write nothing), before fit:
    # the command line ends the job (MPI_Abort) rather than leave rank 1 waiting in fit
    (tmp_path / "outdir").mkdir()
    command = ["-m", "lstmcore", "train", "forecast", "--epochs", "1", "--hidden", "8", "--distributed", "mpi"]
    code, out, err, _ = launch(2, *command, "--out", "outdir", cwd=tmp_path, timeout=PROMPT_S)
    assert code != 0 and "lstmcore: rank 0 of 2 failed; ending the MPI job (MPI_Abort)" in err, f"{code}\n{out}\n{err}"
    assert "TaskError: cannot write outdir: it is a folder" in err


# ----------------------------------------------------------------------- in this process


def test_fit_without_mpi4py_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py then raises ImportError
    x, y = _mpi_fit.regress_data()
    with pytest.raises(ImportError, match=r"needs mpi4py and an MPI library: pip install 'lstmcore\[mpi\]'"):
        _mpi_fit.regress_model().fit(x, y, loss="mse", distributed="mpi", verbose=False)


def test_fit_refuses_a_plain_callable_loss_when_distributed():
    # A callable gives its batch's mean, which weights the ranks' shares by rows rather than
    # by loss terms: with lengths, 2 ranks took another step than one process.
    def mean_squared(pred, target, mask):
        error = pred - target
        return float((error**2).mean()), (2 * error / error.size).astype(pred.dtype)

    x, y = _mpi_fit.regress_data()
    with pytest.raises(TypeError, match=r"distributed= needs a loss that gives its sum and its count .*sum_and_count"):
        _mpi_fit.regress_model().fit(x, y, loss=mean_squared, distributed="mpi", verbose=False)
    # the loss objects have it, and alone the callable still trains
    _mpi_fit.regress_model().fit(x, y, loss=mean_squared, epochs=1, verbose=False)


@pytest.mark.parametrize("given, error", [("gloo", ValueError), (4, TypeError)])
def test_fit_refuses_an_unknown_distributed_backend(given, error):
    x, y = _mpi_fit.regress_data()
    with pytest.raises(error, match="expected distributed as None, 'mpi' or an mpi4py communicator"):
        _mpi_fit.regress_model().fit(x, y, loss="mse", distributed=given, verbose=False)


def test_the_step_benchmark_runs_on_two_ranks(tmp_path):
    # benchmarks/distributed_step.py, which docs/distributed.md's measurement comes from, at a tiny size
    arguments = ["--input", "4", "--hidden", "8", "--steps", "3", "--batch", "6", "--iterations", "2"]
    code, out, err, _ = launch(
        2, "-m", "benchmarks.distributed_step", *arguments, "--json", tmp_path / "step.json", cwd=HERE.parent
    )
    assert code == 0, err
    result = json.loads((tmp_path / "step.json").read_text())
    assert result["ranks"] == 2 and result["parameters"] == 4 * 8 * (4 + 8) + 8 * 8 + 8 + 1
    assert result["allreduce_bytes"] == 4 * (result["parameters"] + 4) and result["allreduce_in_step_s"] > 0
    assert "2 rank(s) x 1 thread(s)" in out
