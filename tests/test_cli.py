"""The command line, run in-process through ``main([...])`` with tiny models."""

import functools
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import lstmcore
from lstmcore.cli import _errors, _files, tasks
from lstmcore.cli.main import main

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
        [],
        ["demo"],
        ["train"],
        ["train", "forecast"],
        ["train", "charlm"],
        ["train", "classify"],
        ["generate"],
        ["predict"],
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
        (["train", "forecast", "--cell", "transformer"], "invalid choice: 'transformer'"),
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
    code, out, _ = run(
        capsys, *TINY_FORECAST, "--csv", str(series_csv), "--column", "level", "--horizon", "3", "--out", str(model)
    )
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
def test_train_forecast_bad_csv_column_is_one_line_error(capsys, tmp_path, series_csv, extra, message):
    code, _, err = run(capsys, *TINY_FORECAST, "--csv", str(series_csv), "--out", str(tmp_path / "f.npz"), *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "task", [["train", "forecast", "--csv"], ["train", "classify", "--csv"], ["train", "charlm", "--text"]]
)
def test_missing_input_file_is_one_line_error(capsys, tmp_path, task):
    code, _, err = run(
        capsys, *task, str(tmp_path / "nope.csv"), "--epochs", "1", "--quiet", "--out", str(tmp_path / "m.npz")
    )
    assert code == 2 and err.startswith("lstmcore: error: cannot read") and "nope.csv" in err


def test_charlm_then_generate_round_trip(capsys, tmp_path, text_file):
    model = tmp_path / "lm.npz"
    code, out, _ = run(capsys, *TINY_CHARLM, "--text", str(text_file), "--out", str(model))
    assert code == 0 and "bits per character" in out and "unigram baseline" in out
    code, out, _ = run(capsys, "generate", str(model), "--length", "40", "--prime", "the ", "--seed", "1")
    assert code == 0 and out.startswith("the ") and len(out.rstrip("\n")) == 44
    assert set(out.rstrip("\n")) <= set("the cat sat on mat. dog log")
    again = run(capsys, "generate", str(model), "--length", "40", "--prime", "the ", "--seed", "1")[1]
    assert again == out  # the same seed samples the same text


@pytest.mark.parametrize("cell, name", [("gru", "GRU"), ("rnn", "RNN")])
def test_every_task_trains_the_cell_chosen_and_its_model_is_used_again(capsys, tmp_path, text_file, cell, name):
    forecast, lm = tmp_path / "f.npz", tmp_path / "lm.npz"
    code, out, _ = run(capsys, *TINY_FORECAST, "--cell", cell, "--out", str(forecast))
    assert code == 0 and f"model: {name}(1, 4, num_layers=1) -> LastStep" in out
    assert type(lstmcore.load(forecast).layers[0]) is getattr(lstmcore, name)
    code, out, _ = run(capsys, *TINY_CHARLM, "--cell", cell, "--text", str(text_file), "--out", str(lm))
    assert code == 0 and f"-> {name}(4, 8, num_layers=1) ->" in out
    code, out, _ = run(capsys, "generate", str(lm), "--length", "10", "--prime", "the ")
    assert code == 0 and len(out.rstrip("\n")) == 14
    code, out, _ = run(capsys, *TINY_CLASSIFY, "--cell", cell, "--out", str(tmp_path / "c.npz"))
    assert code == 0 and f"-> {name}(8, 8, num_layers=1)" in out


def test_generate_refuses_unknown_prime_characters_and_other_tasks(capsys, tmp_path, text_file):
    lm, forecast = tmp_path / "lm.npz", tmp_path / "f.npz"
    assert run(capsys, *TINY_CHARLM, "--text", str(text_file), "--out", str(lm))[0] == 0
    code, _, err = run(capsys, "generate", str(lm), "--prime", "Zeta")
    assert code == 2 and "never saw" in err and "'Z'" in err
    assert run(capsys, *TINY_FORECAST, "--out", str(forecast))[0] == 0
    code, _, err = run(capsys, "generate", str(forecast))
    assert code == 2 and "'forecast' model" in err and "'charlm'" in err
    code, _, err = run(capsys, "generate", str(tmp_path / "none.npz"))
    assert code == 2 and "no such model file" in err
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    code, _, err = run(capsys, "generate", str(junk))
    assert code == 2 and "junk.npz" in err


def test_train_classify_on_shipped_sentences_and_predict(capsys, tmp_path):
    model = tmp_path / "c.npz"
    code, out, _ = run(capsys, *TINY_CLASSIFY, "--out", str(model))
    assert code == 0 and "validation accuracy" in out and "majority class" in out
    code, out, _ = run(capsys, "predict", str(model), "--text", "Curiouser and curiouser, said Alice.")
    assert code == 0 and out.split("\t")[0] in ("carroll", "shakespeare")


def test_train_classify_csv_without_the_label_column(capsys, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,sentiment\ngood film,pos\nbad film,neg\n", encoding="utf-8")
    code, _, err = run(capsys, *TINY_CLASSIFY, "--csv", str(path), "--out", str(tmp_path / "c.npz"))
    assert code == 2 and "no column 'label'" in err


def test_classify_characters_on_a_small_csv(capsys, tmp_path):
    path = tmp_path / "t.csv"
    rows = [f"{'good' if i % 2 else 'bad'} film {i},{'pos' if i % 2 else 'neg'}" for i in range(40)]
    path.write_text("review,sentiment\n" + "\n".join(rows) + "\n", encoding="utf-8")
    code, out, _ = run(
        capsys,
        *TINY_CLASSIFY,
        "--csv",
        str(path),
        "--text-column",
        "review",
        "--label-column",
        "sentiment",
        "--tokens",
        "char",
        "--out",
        str(tmp_path / "c.npz"),
    )
    assert code == 0 and "['neg', 'pos']" in out


def test_same_seed_gives_the_same_losses():
    quiet = dict(epochs=2, hidden=4, window=12, verbose=False, echo=lambda *_: None)
    first = tasks.forecast.train_forecast(seed=3, **quiet)
    second = tasks.forecast.train_forecast(seed=3, **quiet)
    other = tasks.forecast.train_forecast(seed=4, **quiet)
    assert first["loss"] == second["loss"] and first["val_rmse"] == second["val_rmse"]
    assert first["loss"] != other["loss"]


def test_plot_is_written_or_skipped_with_a_note(capsys, tmp_path):
    png = tmp_path / "f.png"
    code, out, _ = run(capsys, *TINY_FORECAST, "--out", str(tmp_path / "f.npz"), "--plot", str(png))
    assert code == 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out and not png.exists()
    else:
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_demo_beats_the_naive_forecast_and_prints_a_sample(capsys, monkeypatch):
    # the real forecaster (a few seconds); a small character model to keep the test short
    real = tasks.charlm.train_charlm
    small = functools.wraps(real)(lambda **options: real(**{**options, "hidden": 16, "embedding": 8}))
    monkeypatch.setattr(tasks.charlm, "train_charlm", small)  # wraps: the parser reads real's defaults
    code, out, _ = run(capsys, "demo", "--charlm-epochs", "1", "--quiet")
    assert code == 0
    assert "the model beats the naive forecast" in out
    assert "A sample" in out and "\nAlice " in out and "demo done in" in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("lstmcore ")


# ----------------------------------------------------------------------------- no tracebacks


def one_error_line(err):
    """The one line every refused run writes on stderr."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmcore: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model of each task, its data, and a function writing a tampered copy."""
    folder = tmp_path_factory.mktemp("trained")
    series = folder / "series.csv"
    series.write_text("co2\n" + "\n".join(f"{300 + 0.1 * i + np.sin(i):.3f}" for i in range(80)) + "\n")
    text = folder / "text.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log. " * 20, encoding="utf-8")
    sentences = folder / "sentences.csv"
    rows = [f"{'good' if i % 2 else 'bad'} film {i},{'pos' if i % 2 else 'neg'}" for i in range(40)]
    sentences.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    models = {task: folder / f"{task}.npz" for task in ("forecast", "charlm", "classify")}
    assert main([*TINY_FORECAST, "--csv", str(series), "--out", str(models["forecast"])]) == 0
    assert main([*TINY_CHARLM, "--text", str(text), "--out", str(models["charlm"])]) == 0
    assert main([*TINY_CLASSIFY, "--csv", str(sentences), "--out", str(models["classify"])]) == 0

    def tampered(task, name, **changes):
        model = lstmcore.load(models[task])
        for key, value in changes.items():
            if value is DELETE:
                del model.metadata[key]
            elif callable(value):
                model.metadata[key] = value(model.metadata[key])
            else:
                model.metadata[key] = value
        path = folder / f"{name}.npz"
        model.save(path)
        return path

    data = {"forecast": series, "charlm": text, "classify": sentences}
    return models, data, tampered


DELETE = object()
USE = {
    "forecast": lambda model, data: ["predict", model, "--csv", data],
    "charlm": lambda model, data: ["generate", model, "--length", "5", "--prime", "the "],
    "classify": lambda model, data: ["predict", model, "--text", "a good film"],
}
TAMPERED = {
    # the reproducers of tracebacks and silent nonsense, then their neighbours
    "unk-missing": ("classify", {"vocabulary": lambda v: [t for t in v if t != "<unk>"]}, "'<unk>'"),
    "window-missing": ("forecast", {"window": DELETE}, "'window' as a whole number in [1, 10,000], got nothing"),
    "window-0": ("forecast", {"window": 0}, "'window' as a whole number in [1, 10,000], got 0"),
    "steps-0": ("charlm", {"steps": 0}, "'steps' as a whole number in [1, 10,000], got 0"),
    "classes-short": ("classify", {"classes": ["neg"]}, "'classes' as a list of 2"),
    "window-float": ("forecast", {"window": 12.5}, "'window' as a whole number"),
    "window-huge": ("forecast", {"window": 10**12}, "'window' as a whole number"),
    "window-text": ("forecast", {"window": "12"}, "'window' as a whole number"),
    "horizon-other": ("forecast", {"horizon": 3}, "outputs of shape (1, 1)"),
    "scale-0": ("forecast", {"scale": 0}, "'scale' as a finite number > 0"),
    "scale-missing": ("forecast", {"scale": DELETE}, "'scale' as a finite number > 0"),
    "column-number": ("forecast", {"column": 5}, "'column' as a string"),
    "vocabulary-empty": ("charlm", {"vocabulary": ""}, "'vocabulary' as a string of 1 to"),
    "vocabulary-list": ("charlm", {"vocabulary": ["a", "b"]}, "'vocabulary' as a string"),
    "vocabulary-short": ("charlm", {"vocabulary": "the "}, "for the ids of its 4 characters"),
    "vocabulary-long": ("charlm", {"vocabulary": lambda v: v + "XYZ"}, "cannot read the ids of its"),
    "vocabulary-repeats": ("charlm", {"vocabulary": lambda v: v[:-1] + v[0]}, "distinct characters"),
    "steps-missing": ("charlm", {"steps": DELETE}, "'steps' as a whole number"),
    "pad-not-first": ("classify", {"vocabulary": lambda v: v[1:] + v[:1]}, "starting with '<pad>'"),
    "tokens-other": ("classify", {"tokens": "bytes"}, "'tokens' as 'word' or 'char'"),
    "max-steps-0": ("classify", {"max_steps": 0}, "'max_steps' as a whole number"),
    "classes-extra": ("classify", {"classes": ["neg", "pos", "other"]}, "outputs of shape (1, 2)"),
    "classes-repeat": ("classify", {"classes": ["neg", "neg"]}, "distinct strings"),
    "vocabulary-bigger-than-embedding": (
        "classify",
        {"vocabulary": lambda v: v + [f"extra{i}" for i in range(5)]},
        "cannot read the ids of its",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_model_file_with_edited_metadata_is_one_line_naming_the_entry(capsys, trained, case):
    _, data, tampered = trained
    task, changes, message = TAMPERED[case]
    path = tampered(task, case, **changes)
    code, out, err = run(capsys, *map(str, USE[task](path, data[task])))
    line = one_error_line(err)
    assert code == 2 and message in line and str(path) in line and out == ""
    if task != "charlm":  # inspect reads the same checked metadata
        code, _, err = run(capsys, "inspect", str(path), str(data[task]))
        assert code == 2 and message in one_error_line(err)


def test_untampered_models_still_predict_and_generate(capsys, trained):
    models, data, _ = trained
    for task, use in USE.items():
        code, out, err = run(capsys, *map(str, use(models[task], data[task])))
        assert code == 0 and out and err == "", task


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "forecast", "--layers", "100000000"], "argument --layers: expected a number <= 16, got 100,000,000"),
        (["train", "forecast", "--layers", "1e8"], "argument --layers: expected a whole number, got '1e8'"),
        (["train", "forecast", "--hidden", "100000"], "argument --hidden: expected a number <= 4,096"),
        (["train", "forecast", "--epochs", "1000000000"], "argument --epochs: expected a number <= 100,000"),
        (["train", "forecast", "--batch-size", "10000000"], "argument --batch-size: expected a number <= 65,536"),
        (["train", "forecast", "--window", "1000000"], "argument --window: expected a number <= 10,000"),
        (["train", "forecast", "--horizon", "1000000"], "argument --horizon: expected a number <= 10,000"),
        (["train", "forecast", "--season", "-1"], "argument --season: expected a number >= 0"),
        (["train", "forecast", "--seed", "-1"], "argument --seed: expected a number >= 0"),
        (["train", "charlm", "--steps", "1000000"], "argument --steps: expected a number <= 10,000"),
        (["train", "charlm", "--embedding", "1000000"], "argument --embedding: expected a number <= 4,096"),
        (["train", "classify", "--max-steps", "1000000"], "argument --max-steps: expected a number <= 10,000"),
        (["train", "classify", "--vocabulary-size", "10000000000"], "argument --vocabulary-size: expected a number <="),
        (["demo", "--charlm-epochs", "1000000000"], "argument --charlm-epochs: expected a number <= 100,000"),
        (["generate", "m.npz", "--length", "1000000000"], "argument --length: expected a number <= 100,000"),
        (["generate", "m.npz", "--temperature", "1e-9"], "argument --temperature: expected a number in [0.001, 1000]"),
        (["generate", "m.npz", "--temperature", "1e9"], "argument --temperature: expected a number in [0.001, 1000]"),
        (["generate", "m.npz", "--temperature", "nan"], "argument --temperature: expected a finite number > 0"),
        (["inspect", "m.npz", "d.txt", "--max-samples", "10000000000"], "argument --max-samples: expected a number <="),
        (["train", "forecast", "--out", ""], "argument --out: expected a path, got an empty string"),
        (["train", "forecast", "--plot", ""], "argument --plot: expected a path, got an empty string"),
        (["inspect", "m.npz", "d.txt", "--json", ""], "argument --json: expected a path, got an empty string"),
        (["inspect", "m.npz", "d.txt", "--plot-dir", ""], "argument --plot-dir: expected a path, got an empty string"),
    ],
)
def test_nonsense_sizes_and_empty_paths_are_usage_errors(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.startswith("usage: ") and message in err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "forecast", "--hidden", "4096", "--layers", "16"], "parameters, more than the 100,000,000"),
        (["train", "classify", "--hidden", "4096", "--layers", "2", "--embedding", "4096"], "parameters, more than"),
        (["train", "forecast", "--hidden", "2048", "--batch-size", "65536", "--window", "1000"], "one batch would keep"),
        (["train", "charlm", "--hidden", "1024", "--batch-size", "65536", "--steps", "1000"], "one batch would keep"),
    ],
)
def test_sizes_whose_product_is_nonsense_are_refused_before_training(capsys, tmp_path, argv, message):
    started = time.perf_counter()
    code, out, err = run(capsys, *argv, "--epochs", "1", "--quiet", "--out", str(tmp_path / "m.npz"))
    assert code == 2 and message in one_error_line(err) and "parameters" not in out
    assert time.perf_counter() - started < 30  # refused before any model was built
    assert not (tmp_path / "m.npz").exists()


def unwritable_outputs(tmp_path):
    """Output paths that cannot be written, even by root: a missing folder, a folder, a path
    under a file, and /proc."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    return {
        "missing-folder": (tmp_path / "missing" / "m.npz", "no folder"),
        "folder": (tmp_path / "a_folder", "it is a folder"),
        "under-a-file": (tmp_path / "a_file" / "m.npz", "no folder"),
        "proc": ("/proc/lstmcore-test.npz", "cannot write /proc/lstmcore-test.npz"),
        "device": ("/dev/null", "cannot write /dev/null: not a regular file"),
    }


@pytest.mark.parametrize("case", ["missing-folder", "folder", "under-a-file", "proc", "device"])
@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_an_unwritable_output_is_refused_before_training(capsys, tmp_path, case, option):
    path, message = unwritable_outputs(tmp_path)[case]
    other = ["--out", str(tmp_path / "f.npz")] if option == "--plot" else []
    code, out, err = run(capsys, *TINY_FORECAST, *other, option, str(path))
    assert code == 2 and message in one_error_line(err) and out == ""  # nothing read, nothing trained


@pytest.mark.parametrize("case", ["missing-folder", "folder", "under-a-file", "proc"])
def test_inspect_refuses_an_unwritable_json_or_plot_folder_before_running(capsys, tmp_path, trained, case):
    models, data, _ = trained
    path, message = unwritable_outputs(tmp_path)[case]
    if case != "folder":
        code, out, err = run(capsys, "inspect", str(models["charlm"]), str(data["charlm"]), "--json", str(path))
        assert code == 2 and message in one_error_line(err) and out == ""
    if case in ("under-a-file", "proc"):
        code, out, err = run(capsys, "inspect", str(models["charlm"]), str(data["charlm"]), "--plot-dir", str(path))
        assert code == 2 and "cannot write" in one_error_line(err) and out == ""


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_read_only_folder_or_file_is_refused_before_training(capsys, tmp_path):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.geteuid() != 0:
            code, _, err = run(capsys, *TINY_FORECAST, "--out", str(folder / "m.npz"))
        else:
            # root writes into read-only folders: the command runs without that capability.
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without util-linux's setpriv to drop CAP_DAC_OVERRIDE")
            done = subprocess.run(
                [setpriv, "--bounding-set=-dac_override", sys.executable, "-m", "lstmcore", *TINY_FORECAST,
                 "--out", str(folder / "m.npz")],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            code, err = done.returncode, done.stderr
        assert code == 2 and "Permission denied" in one_error_line(err)
    finally:
        folder.chmod(0o700)


def test_checking_the_output_leaves_an_existing_model_and_its_folder_as_they_were(capsys, tmp_path, trained):
    models, _, _ = trained
    existing = tmp_path / "existing.npz"
    existing.write_bytes(models["forecast"].read_bytes())
    before = existing.read_bytes()
    # the output check passes, then the data fails: the model file is untouched
    code, _, err = run(capsys, *TINY_FORECAST, "--csv", str(tmp_path / "none.csv"), "--out", str(existing))
    assert code == 2 and "cannot read" in one_error_line(err)
    assert existing.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["existing.npz"]


def test_model_file_errors_and_memory_errors_are_one_line(capsys, tmp_path, trained, monkeypatch):
    models, data, _ = trained
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(models["forecast"].read_bytes()[:200])
    code, _, err = run(capsys, "predict", str(truncated), "--csv", str(data["forecast"]))
    assert code == 2 and str(truncated) in one_error_line(err)

    def multi_line_model_file_error(path):
        raise lstmcore.ModelFileError(f"{path}: damaged\nin two lines")

    monkeypatch.setattr(lstmcore, "load", multi_line_model_file_error)
    code, _, err = run(capsys, "generate", str(models["charlm"]))
    assert code == 2 and one_error_line(err).endswith("damaged in two lines")

    def out_of_memory(**options):
        raise MemoryError

    monkeypatch.setattr(lstmcore, "load", lambda path: out_of_memory())
    code, _, err = run(capsys, "generate", str(models["charlm"]))
    assert code == 2 and one_error_line(err).endswith("its layers are too large to build here (out of memory)")
    monkeypatch.setattr(tasks.charlm, "train_charlm", functools.wraps(tasks.charlm.train_charlm)(out_of_memory))
    code, _, err = run(capsys, *TINY_CHARLM, "--out", str(tmp_path / "c.npz"))
    assert code == 2 and "out of memory; when training, lower --hidden" in one_error_line(err)


SUBPROCESS_CASES = {
    "runaway-layers": (["train", "forecast", "--layers", "100000000"], "expected a number <= 16"),
    "runaway-product": (["train", "forecast", "--hidden", "4096", "--layers", "16"], "parameters"),
    "empty-out": (["train", "forecast", "--out", ""], "expected a path"),
    "unwritable-out": (["train", "forecast", "--epochs", "100000", "--out", "/proc/lstmcore-test.npz"], "cannot write"),
}


@pytest.mark.parametrize("case", sorted(SUBPROCESS_CASES) + ["window-0", "unk-missing", "steps-0", "classes-short"])
def test_the_reproducers_as_a_user_runs_them(tmp_path, trained, case):
    if case in SUBPROCESS_CASES:
        argv, message = SUBPROCESS_CASES[case]
    else:
        _models, data, tampered = trained
        task, changes, message = TAMPERED[case]
        path = tampered(task, f"sub-{case}", **changes)
        argv = USE[task](path, data[task]) if task != "charlm" else ["inspect", path, data[task]]
    done = subprocess.run(
        [sys.executable, "-m", "lstmcore", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert message in last and ": error: " in last


def test_a_model_with_nan_weights_is_one_line(capsys, tmp_path, trained):
    models, data, _ = trained
    model = lstmcore.load(models["charlm"])
    model.params["1.weight_hh_l0"][0, 0] = np.nan
    model.save(tmp_path / "diverged.npz")
    for argv in (["generate", tmp_path / "diverged.npz"], ["inspect", tmp_path / "diverged.npz", data["charlm"]]):
        code, out, err = run(capsys, *map(str, argv))
        assert code == 2 and "weight '1.weight_hh_l0' holds NaN or infinity" in one_error_line(err) and out == ""


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a NumPy array file"),
        ("nan", "expected finite model inputs, got NaN or infinity"),
        ("wrong-features", "expected x of shape (B, T, 2), got (3, 4, 5)"),
    ],
)
def test_inspect_bad_npy_inputs_are_one_line(capsys, tmp_path, content, message):
    model = lstmcore.Sequential([lstmcore.GRU(2, 3, seed=0), lstmcore.Dense(3, 1, seed=0)])
    model.save(tmp_path / "gru.npz")
    inputs = tmp_path / "x.npy"
    if content == "nan":
        np.save(inputs, np.full((3, 4, 2), np.nan, np.float32))
    elif content == "wrong-features":
        np.save(inputs, np.ones((3, 4, 5), np.float32))
    else:
        inputs.write_bytes(content)
    code, _, err = run(capsys, "inspect", str(tmp_path / "gru.npz"), str(inputs))
    assert code == 2 and message in one_error_line(err)


def test_a_diverged_training_is_one_line_and_saves_nothing(capsys, tmp_path):
    out_path = tmp_path / "f.npz"
    code, _, err = run(capsys, *TINY_FORECAST, "--lr", "1e300", "--epochs", "2", "--out", str(out_path))
    assert code == 2 and "training diverged" in one_error_line(err) and "lower --lr" in err
    assert not out_path.exists()


@pytest.mark.parametrize(
    "rows, argv, message",
    [
        ("text,label\n", ["predict", "{classify}", "--csv", "{data}"], "no rows to classify"),
        (
            "v\n" + "\n".join(str((-1) ** i * 1e308) for i in range(80)) + "\n",
            [*TINY_FORECAST, "--csv", "{data}", "--column", "v", "--out", "{out}"],
            "differences overflow",
        ),
    ],
    ids=["predict-no-rows", "forecast-overflow"],
)
def test_data_that_cannot_be_used_is_one_line(capsys, tmp_path, trained, rows, argv, message):
    models, _, _ = trained
    data = tmp_path / "data.csv"
    data.write_text(rows)
    names = {"classify": models["classify"], "data": data, "out": tmp_path / "m.npz"}
    code, _, err = run(capsys, *(arg.format(**names) for arg in argv))
    assert code == 2 and message in one_error_line(err)


def test_inspect_makes_no_plot_folder_when_it_fails(capsys, tmp_path):
    plots = tmp_path / "a" / "b" / "c"
    code, _out, err = run(capsys, "inspect", str(tmp_path / "missing.npz"), str(tmp_path / "d.txt"), "--plot-dir", str(plots))
    assert code == 2 and "no such model file" in one_error_line(err)
    assert not (tmp_path / "a").exists()


def test_a_plot_folder_under_a_file_is_refused_without_making_anything(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(_errors.TaskError, match="a_file is not a folder"):
        _files.check_output_folder(tmp_path / "a_file" / "x" / "y")
    _files.check_output_folder(tmp_path / "new" / "plots")
    assert not (tmp_path / "new").exists()
