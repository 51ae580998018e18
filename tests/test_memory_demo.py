"""``lstmcore demo memory`` and the adding problem it trains on, with tiny settings in-process."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lstmcore import datasets
from lstmcore.cli.main import main

TINY = ["demo", "memory", "--steps", "8", "--epochs", "1", "--samples", "64", "--hidden", "4", "--batch-size", "32"]


def test_the_adding_problem_marks_one_number_in_each_half_and_sums_them():
    x, y = datasets.adding_problem(500, 10, seed=0)
    assert x.shape == (500, 10, 2) and y.shape == (500, 1) and x.dtype == y.dtype == np.float32
    markers = x[..., 1]
    assert np.array_equal(markers[:, :5].sum(axis=1), np.ones(500))
    assert np.array_equal(markers[:, 5:].sum(axis=1), np.ones(500))
    assert np.allclose(y[:, 0], (x[..., 0] * markers).sum(axis=1))
    assert x[..., 0].min() >= 0 and x[..., 0].max() <= 1
    assert abs(float(((y - 1) ** 2).mean()) - 1 / 6) < 0.03  # the constant guess scores 1/6
    assert np.array_equal(datasets.adding_problem(5, 10, seed=3)[0], datasets.adding_problem(5, 10, seed=3)[0])


@pytest.mark.parametrize("count, steps", [(0, 10), (5, 1), (5, 2.5)])
def test_the_adding_problem_refuses_sizes_it_cannot_make(count, steps):
    with pytest.raises(ValueError, match="expected"):
        datasets.adding_problem(count, steps)


def test_demo_memory_prints_each_models_error_and_two_gradient_tables(capsys):
    assert main(TINY) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    for kind in ("RNN", "GRU", "LSTM"):
        assert re.search(rf"{kind}: validation MSE \d\.\d{{4}} \(predicting 1: \d\.\d{{4}}\)", out), out
    for title in ("Before training:", "After training:"):
        table = out.split(title)[1].strip().splitlines()
        assert table[0].split() == ["t", "RNN", "GRU", "LSTM"]
        assert [row.split()[0] for row in table[1:6]] == ["0", "2", "4", "6", "7"]  # 0, T/4, T/2, 3T/4, T-1
        for row in table[1:6]:
            assert all(float(value) >= 0 for value in row.split()[1:])
    assert "memory demo done in" in out


def test_demo_memory_plot_writes_pngs(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "memory.png"
    assert main([*TINY, "--plot", str(path)]) == 0
    assert f"wrote the plot to {path}" in capsys.readouterr().out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [(["--steps", "1"], "expected a number >= 2"), (["--lr", "0"], "> 0")])
def test_demo_memory_refuses_bad_settings_with_usage(capsys, argv, message):
    assert main([*TINY, *argv]) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err


def test_the_demo_help_names_the_memory_demo_and_its_help_its_time(capsys):
    assert main(["demo", "--help"]) == 0
    assert "lstmcore demo memory" in " ".join(capsys.readouterr().out.split())
    assert main(["demo", "memory", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "adding problem" in help_text and "seconds on 2 cores" in help_text
