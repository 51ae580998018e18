"""The command line, run in-process through ``main([...])`` with tiny models."""

import functools

import numpy as np
import pytest

from lstmcore import _commands
from lstmcore._cli import main

TINY_FORECAST = ["train", "forecast", "--epochs", "1", "--hidden", "4", "--window", "12", "--quiet"]
TINY_CHARLM = ["train", "charlm", "--epochs", "1", "--hidden", "8", "--embedding", "4", "--steps", "16", "--quiet"]
TINY_CLASSIFY = ["train", "classify", "--epochs", "1", "--hidden", "8", "--embedding", "8", "--quiet"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat. the dog sat on the log. " * 20, encoding="utf-8")
    return path


@pytest.fixture
def series_csv(tmp_path):
    path = tmp_path / "series.csv"
    t = np.arange(120)
    rows = [f"{i},{10 + 0.05 * i + np.sin(i * np.pi / 6):.4f},x{i}" for i in t]
    path.write_text("day,level,name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "command",
    [
        [], ["demo"], ["train"], ["train", "forecast"], ["train", "charlm"], ["train", "classify"],
        ["generate"], ["predict"],
    ],
)
def test_every_command_has_help(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and out.startswith("usage: lstmcore")


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required"),
        (["fly"], "invalid choice"),
        (["train", "forecast", "--epochs", "0"], "expected a number >= 1"),
        (["train", "forecast", "--window", "abc"], "expected a whole number"),
        (["train", "charlm", "--lr", "-1"], "expected a finite number > 0"),
        (["train", "classify", "--validation", "1.5"], "strictly between 0 and 1"),
        (["generate"], "MODEL"),
    ],
)
def test_bad_arguments_exit_2_with_usage(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and "usage:" in err and message in err


def test_train_forecast_on_shipped_co2_reports_rmse_and_naive_baseline(capsys, tmp_path):
    out_path = tmp_path / "f.npz"
    code, out, _ = run(capsys, *TINY_FORECAST, "--out", str(out_path))
    assert code == 0
    assert "validation RMSE" in out and "naive last value" in out and "seasonal naive" in out
    assert out_path.exists()


def test_train_forecast_on_a_csv_column_and_predict_the_next_values(capsys, tmp_path, series_csv):
    model = tmp_path / "f.npz"
    code, out, _ = run(capsys, *TINY_FORECAST, "--csv", str(series_csv), "--column", "level", "--horizon", "3",
                       "--out", str(model))
    assert code == 0 and "120 values" in out
    code, out, _ = run(capsys, "predict", str(model), "--csv", str(series_csv))
    lines = out.strip().splitlines()
    assert code == 0 and [line.split("\t")[0] for line in lines] == ["t+1", "t+2", "t+3"]
    assert all(np.isfinite(float(line.split("\t")[1])) for line in lines)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--column", "height"], "no column 'height'"),
        (["--column", "name"], "not numeric"),
        (["--column", "level", "--window", "200"], "too short"),
    ],
)
def test_train_forecast_bad_csv_column_is_one_line_error(capsys, series_csv, extra, message):
    code, _, err = run(capsys, *TINY_FORECAST, "--csv", str(series_csv), "--out", "", *extra)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "task", [["train", "forecast", "--csv"], ["train", "classify", "--csv"], ["train", "charlm", "--text"]]
)
def test_missing_input_file_is_one_line_error(capsys, tmp_path, task):
    code, _, err = run(capsys, *task, str(tmp_path / "nope.csv"), "--epochs", "1", "--quiet")
    assert code == 1 and err.startswith("lstmcore: error: cannot read") and "nope.csv" in err


def test_charlm_then_generate_round_trip(capsys, tmp_path, text_file):
    model = tmp_path / "lm.npz"
    code, out, _ = run(capsys, *TINY_CHARLM, "--text", str(text_file), "--out", str(model))
    assert code == 0 and "bits per character" in out and "unigram baseline" in out
    code, out, _ = run(capsys, "generate", str(model), "--length", "40", "--prime", "the ", "--seed", "1")
    assert code == 0 and out.startswith("the ") and len(out.rstrip("\n")) == 44
    assert set(out.rstrip("\n")) <= set("the cat sat on mat. dog log")
    again = run(capsys, "generate", str(model), "--length", "40", "--prime", "the ", "--seed", "1")[1]
    assert again == out  # the same seed samples the same text


def test_generate_refuses_unknown_prime_characters_and_other_tasks(capsys, tmp_path, text_file):
    lm, forecast = tmp_path / "lm.npz", tmp_path / "f.npz"
    assert run(capsys, *TINY_CHARLM, "--text", str(text_file), "--out", str(lm))[0] == 0
    code, _, err = run(capsys, "generate", str(lm), "--prime", "Zeta")
    assert code == 1 and "never saw" in err and "'Z'" in err
    assert run(capsys, *TINY_FORECAST, "--out", str(forecast))[0] == 0
    code, _, err = run(capsys, "generate", str(forecast))
    assert code == 1 and "'forecast' model" in err and "'charlm'" in err
    code, _, err = run(capsys, "generate", str(tmp_path / "none.npz"))
    assert code == 1 and "no such model file" in err
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    code, _, err = run(capsys, "generate", str(junk))
    assert code == 1 and "junk.npz" in err


def test_train_classify_on_shipped_sentences_and_predict(capsys, tmp_path):
    model = tmp_path / "c.npz"
    code, out, _ = run(capsys, *TINY_CLASSIFY, "--out", str(model))
    assert code == 0 and "validation accuracy" in out and "majority class" in out
    code, out, _ = run(capsys, "predict", str(model), "--text", "Curiouser and curiouser, said Alice.")
    assert code == 0 and out.split("\t")[0] in ("carroll", "shakespeare")


def test_train_classify_csv_without_the_label_column(capsys, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,sentiment\ngood film,pos\nbad film,neg\n", encoding="utf-8")
    code, _, err = run(capsys, *TINY_CLASSIFY, "--csv", str(path))
    assert code == 1 and "no column 'label'" in err


def test_classify_characters_on_a_small_csv(capsys, tmp_path):
    path = tmp_path / "t.csv"
    rows = [f"{'good' if i % 2 else 'bad'} film {i},{'pos' if i % 2 else 'neg'}" for i in range(40)]
    path.write_text("review,sentiment\n" + "\n".join(rows) + "\n", encoding="utf-8")
    code, out, _ = run(capsys, *TINY_CLASSIFY, "--csv", str(path), "--text-column", "review",
                       "--label-column", "sentiment", "--tokens", "char", "--out", "")
    assert code == 0 and "['neg', 'pos']" in out


def test_same_seed_gives_the_same_losses():
    quiet = dict(epochs=2, hidden=4, window=12, verbose=False, echo=lambda *_: None)
    first = _commands.train_forecast(seed=3, **quiet)
    second = _commands.train_forecast(seed=3, **quiet)
    other = _commands.train_forecast(seed=4, **quiet)
    assert first["loss"] == second["loss"] and first["val_rmse"] == second["val_rmse"]
    assert first["loss"] != other["loss"]


def test_plot_is_written_or_skipped_with_a_note(capsys, tmp_path):
    png = tmp_path / "f.png"
    code, out, _ = run(capsys, *TINY_FORECAST, "--out", "", "--plot", str(png))
    assert code == 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out and not png.exists()
    else:
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_demo_beats_the_naive_forecast_and_prints_a_sample(capsys, monkeypatch):
    # the real forecaster (a few seconds); a small character model to keep the test short
    real = _commands.train_charlm
    small = functools.wraps(real)(lambda **options: real(**{**options, "hidden": 16, "embedding": 8}))
    monkeypatch.setattr(_commands, "train_charlm", small)  # wraps: the parser reads real's defaults
    code, out, _ = run(capsys, "demo", "--charlm-epochs", "1", "--quiet")
    assert code == 0
    assert "the model beats the naive forecast" in out
    assert "A sample" in out and "\nAlice " in out and "demo done in" in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("lstmcore ")
