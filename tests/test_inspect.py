"""The gate microscope: ``lstmcore.inspect`` statistics, plots, ablation reports and the
``lstmcore inspect`` command."""

import json
import re
import sys

import numpy as np
import pytest

import lstmcore
from lstmcore import microscope
from lstmcore.cli.main import main


def test_statistics_of_known_values():
    steps, batch, hidden = 4, 2, 3
    forget = np.full((steps, batch, hidden), 0.5)
    forget[:, :, 0] = 0.01  # unit 0 always below 0.05: dead
    forget[:, :, 2] = 0.99  # unit 2 always above 0.95: always open
    forget[3] = 0.7  # the last step of both sequences: units 0 and 2 no longer saturated there
    candidate = np.zeros((steps, batch, hidden))
    candidate[0, 0, :] = -0.99  # 3 of the 24 values beyond |0.95|
    summary = microscope.summarize([{"forget": forget, "candidate": candidate}], dead_fraction=0.75)
    stats = summary["layers"][0]["gates"]["forget"]
    assert stats["kind"] == "sigmoid" and stats["count"] == steps * batch * hidden
    assert stats["dead_units"] == [0] and stats["open_units"] == [2]
    assert stats["saturated"] == pytest.approx(12 / 24) and stats["low"] == pytest.approx(6 / 24)
    assert stats["mean"] == pytest.approx(forget.mean()) and stats["std"] == pytest.approx(forget.std())
    assert stats["mean_over_time"] == pytest.approx([0.5, 0.5, 0.5, 0.7])
    assert stats["unit_mean"] == pytest.approx(forget.mean(axis=(0, 1)))
    assert sum(stats["histogram"]["counts"]) == 24 and stats["histogram"]["edges"][0] == 0.0
    assert summary["layers"][0]["gates"]["candidate"]["saturated"] == pytest.approx(3 / 24)
    # With the default dead_fraction 0.99 the last step breaks both units' streaks.
    strict = microscope.summarize([{"forget": forget}])["layers"][0]["gates"]["forget"]
    assert strict["dead_units"] == [] and strict["open_units"] == []


def test_padding_steps_are_left_out_of_every_statistic():
    steps, batch, hidden = 5, 3, 2
    rng = np.random.default_rng(0)
    lengths = np.array([5, 2, 3])
    valid = np.arange(steps)[:, None] < lengths[None, :]
    gates = {name: rng.uniform(0.1, 0.9, (steps, batch, hidden)) for name in ("input", "forget")}
    gates["cell"] = rng.normal(size=(steps, batch, hidden))
    clean = microscope.summarize([gates], lengths)
    for value in gates.values():
        value[~valid] = 1e6  # garbage where sequences have ended
    dirty = microscope.summarize([gates], lengths)
    assert json.dumps(clean) == json.dumps(dirty)
    forget = clean["layers"][0]["gates"]["forget"]
    assert forget["count"] == valid.sum() * hidden
    assert forget["mean"] == pytest.approx(gates["forget"][valid].mean())
    # Steps 3 and 4 have only the first sequence running.
    assert forget["mean_over_time"][4] == pytest.approx(gates["forget"][4, 0].mean())


def test_summary_of_a_real_lstm_is_json_and_matches_its_traces():
    lstm = lstmcore.LSTM(3, 5, num_layers=2, bidirectional=True, seed=1)
    x = np.random.default_rng(2).normal(size=(4, 7, 3)).astype(np.float32)
    lengths = np.array([7, 3, 5, 1])
    _, _, traces = lstm(x, lengths=lengths, return_gates=True)
    names = microscope.direction_names(2, bidirectional=True)
    summary = microscope.summarize(traces, lengths, names=names)
    json.dumps(summary, allow_nan=False)
    assert [layer["name"] for layer in summary["layers"]] == ["l0", "l0_reverse", "l1", "l1_reverse"]
    valid = np.arange(7)[:, None] < lengths[None, :]
    for layer, trace in zip(summary["layers"], traces):
        assert list(layer["gates"]) == ["input", "forget", "candidate", "output", "cell"]
        values = np.asarray(trace["output"], dtype=np.float64)[valid]
        expected = np.mean((values < 0.05) | (values > 0.95))
        assert layer["gates"]["output"]["saturated"] == pytest.approx(expected)
    text = microscope.format_summary(summary)
    assert "l1_reverse" in text and "forget gate mean over time" in text


def test_gru_traces_summarise_the_update_gate_over_time():
    gru = lstmcore.GRU(2, 4, seed=0)
    _, _, traces = gru(np.ones((3, 6, 2), np.float32), return_gates=True)
    summary = microscope.summarize(traces)
    gates = summary["layers"][0]["gates"]
    assert list(gates) == ["reset", "update", "candidate"]
    assert len(gates["update"]["mean_over_time"]) == 6 and "mean_over_time" not in gates["reset"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: microscope.summarize([]), "non-empty list"),
        (lambda t: microscope.summarize(t, saturation=(0.9, 0.1)), "0 <= low < high <= 1"),
        (lambda t: microscope.summarize(t, dead_fraction=0), "dead_fraction"),
        (lambda t: microscope.summarize(t, bins=0), "bins"),
        (lambda t: microscope.summarize(t, lengths=[1, 2, 3]), "(B,) = (2,)"),
        (lambda t: microscope.summarize(t, lengths=[0, 2]), "[1, T] = [1, 3]"),
        (lambda t: microscope.summarize(t, names=["a", "b"]), "expected 1 names"),
        (lambda t: microscope.summarize([{"input": np.zeros((3, 2))}]), "(T, B, H)"),
        (
            lambda t: microscope.summarize([{"input": np.zeros((3, 2, 1)), "forget": np.zeros((3, 1, 1))}]),
            "(T, B, H) = (3, 2, H)",
        ),
    ],
)
def test_bad_summary_arguments_are_clear_errors(call, message):
    traces = [{"input": np.full((3, 2, 4), 0.5)}]
    with pytest.raises(ValueError, match=re.escape(message)):
        call(traces)


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    summary = microscope.summarize([{"input": np.full((2, 1, 1), 0.5)}])
    with pytest.raises(ImportError, match=r"pip install 'lstmcore\[plot\]'"):
        microscope.plot(summary, tmp_path)


def test_plot_writes_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    lstm = lstmcore.LSTM(2, 3, bidirectional=True, seed=0)
    _, _, traces = lstm(np.ones((2, 5, 2), np.float32), return_gates=True)
    summary = microscope.summarize(traces, names=microscope.direction_names(1, True))
    paths = microscope.plot(summary, tmp_path / "plots")
    assert sorted(p.rsplit("/", 1)[-1] for p in paths) == [
        "gates_l0.png", "gates_l0_reverse.png", "memory_gate_over_time.png",
    ]  # fmt: skip
    for path in paths:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_ablation_report_clamps_one_gate_at_a_time():
    lstm = lstmcore.LSTM(2, 3, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(4, 6, 2))
    target = np.random.default_rng(1).normal(size=(4, 6, 3))

    def loss(ablate):
        y, _ = lstm(x, ablate=ablate)
        return float(np.mean((y - target) ** 2))

    means = {"output": np.array([0.2, 0.3, 0.4])}
    rows = microscope.ablation_report(loss, gates=("forget", "output"), values=means)
    assert [row["gate"] for row in rows] == ["forget", "output"]
    assert rows[0]["source"] == "default" and rows[0]["value"] == 1.0
    assert rows[1]["source"] == "given" and rows[1]["value"] == pytest.approx([0.2, 0.3, 0.4])
    assert rows[0]["baseline"] == pytest.approx(loss(None))
    assert rows[0]["loss"] == pytest.approx(loss({"forget": 1.0}))
    assert rows[1]["change"] == pytest.approx(loss({"output": means["output"]}) - loss(None))
    assert rows[1]["loss"] != pytest.approx(rows[1]["baseline"])  # the clamp did change the output
    json.dumps(rows, allow_nan=False)
    assert "per-unit mean" in microscope.format_ablation(rows)
    with pytest.raises(ValueError, match="no default clamp for gate 'reset'"):
        microscope.ablation_report(loss, gates=("reset",))


def test_mean_values_are_ready_for_ablate():
    lstm = lstmcore.LSTM(2, 3, num_layers=2, seed=0)
    x = np.random.default_rng(0).normal(size=(4, 6, 2)).astype(np.float32)
    _, _, traces = lstm(x, return_gates=True)
    values = microscope.mean_values(microscope.summarize(traces))
    assert sorted(values) == ["candidate", "forget", "input", "output"]
    assert values["forget"].shape == (2, 3)
    np.testing.assert_allclose(values["forget"][1], traces[1]["forget"].mean(axis=(0, 1)), rtol=1e-6)
    lstm(x, ablate=values)  # accepted as per layer-direction clamps


# ----------------------------------------------------------------------------- the command

TINY_CHARLM = ["train", "charlm", "--epochs", "1", "--hidden", "8", "--embedding", "4", "--steps", "16", "--quiet"]


@pytest.fixture(scope="module")
def charlm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect")
    text = folder / "text.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log. " * 20, encoding="utf-8")
    model = folder / "lm.npz"
    assert main([*TINY_CHARLM, "--text", str(text), "--out", str(model)]) == 0
    return model, text


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_inspect_command_prints_the_summary_and_the_ablation(capsys, tmp_path, charlm):
    model, text = charlm
    report = tmp_path / "summary.json"
    code, out, _ = run(capsys, "inspect", model, text, "--ablate", "--json", report)
    assert code == 0
    assert "forget gate mean over time" in out and "ablation" in out
    document = json.loads(report.read_text())
    assert document["layer"] == 1 and len(document["layers"]) == 1
    assert [row["gate"] for row in document["ablation"]] == ["input", "forget", "candidate", "output"]
    # The reported baseline is the model's own loss on the data.
    loaded = lstmcore.load(model)
    from lstmcore.cli import _inspect

    x, y, _lengths, loss, _ = _inspect.prepare(loaded, text)
    chosen = _inspect.spread(len(x), 512)
    pred = loaded.predict(x[chosen])
    expected = lstmcore.losses.get(loss)(pred, y[chosen])
    expected = expected[0] if isinstance(expected, tuple) else expected
    assert document["ablation"][0]["baseline"] == pytest.approx(float(expected), rel=1e-5)


def test_inspect_writes_plots_or_notes_the_missing_extra(capsys, tmp_path, charlm):
    model, text = charlm
    code, out, _ = run(capsys, "inspect", model, text, "--plot-dir", tmp_path / "plots")
    assert code == 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install 'lstmcore[plot]'" in out
    else:
        assert (tmp_path / "plots" / "gates_l0.png").exists()


def test_inspect_a_model_without_a_task_on_a_npy_array(capsys, tmp_path):
    model = lstmcore.Sequential([lstmcore.GRU(2, 3, seed=0), lstmcore.Dense(3, 1, seed=0)])
    model.save(tmp_path / "gru.npz")
    np.save(tmp_path / "x.npy", np.ones((5, 4, 2), np.float32))
    code, out, _ = run(capsys, "inspect", tmp_path / "gru.npz", tmp_path / "x.npy")
    assert code == 0 and "update gate mean over time" in out
    code, _, err = run(capsys, "inspect", tmp_path / "gru.npz", tmp_path / "x.npy", "--ablate")
    assert code == 2 and "GRU" in err


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda m, t, tmp: [tmp / "missing.npz", t], "no such model file"),
        (lambda m, t, tmp: [t, t], "not an lstmcore model file"),
        (lambda m, t, tmp: [m, tmp / "missing.txt"], "missing.txt"),
    ],
)
def test_inspect_bad_files_are_one_line_errors(capsys, tmp_path, charlm, make_args, message):
    model, text = charlm
    code, _, err = run(capsys, "inspect", *make_args(model, text, tmp_path))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_inspect_has_help(capsys):
    code, out, _ = run(capsys, "inspect", "--help")
    assert code == 0 and out.startswith("usage: lstmcore inspect")
