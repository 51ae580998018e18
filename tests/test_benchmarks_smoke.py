"""The benchmark harness runs end to end and writes the JSON other scripts read."""

import json

import numpy as np
import pytest
from benchmarks import cases, run, sides

ROW_FIELDS = {
    "case", "threads", "flops", "lstmcore_ms", "reference_ms", "torch_ms", "torch_over_lstmcore",
    "reference_over_lstmcore", "lstmcore_gflops", "percent_of_peak", "timing", "checks", "notes",
}  # fmt: skip


def test_quick_run_writes_expected_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    status = run.main(["--quick", "--no-torch", "--cases", "gru_train_h128_t100_b32", "--threads", "1", "--json", str(out)])
    assert status == 0
    results = json.loads(out.read_text())
    assert {"schema_version", "machine", "settings", "flop_model", "fma_peak_gflops", "results", "notes"} <= set(results)
    assert results["settings"]["quick"] and not results["settings"]["torch"]
    assert results["fma_peak_gflops"]["1"] > 0
    (row,) = results["results"]
    assert set(row) >= ROW_FIELDS
    assert row["case"] == "gru_train_h128_t100_b32" and row["threads"] == 1
    assert row["lstmcore_ms"] > 0 and row["lstmcore_gflops"] > 0 and row["percent_of_peak"] > 0
    assert row["torch_ms"] is None and "torch" not in row["checks"]
    if results["settings"]["reference"]:  # the reference ran and matched lstmcore
        assert row["checks"]["reference"] == "ok" and row["reference_over_lstmcore"] > 0
    assert "gru_train_h128_t100_b32" in capsys.readouterr().out


def test_flop_count_of_one_lstm_layer():
    case = cases.CASES_BY_NAME["lstm_train_h128_t100_b32"]
    forward = 2 * 100 * 32 * 4 * 128 * (128 + 128)
    assert cases.count_flops(case) == 3 * forward
    infer = cases.CASES_BY_NAME["lstm_infer_h256_t100_b64"]
    assert cases.count_flops(infer) == 2 * 100 * 64 * 4 * 256 * 512


def test_flop_count_of_a_projected_lstm():
    case = cases.CASES_BY_NAME["extra_lstm_proj_train_h256_p64_t100_b64"]
    forward = 2 * 100 * 64 * (4 * 256 * (256 + 64) + 256 * 64)
    assert cases.count_flops(case) == 3 * forward


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_quick_projected_case_matches_torch_or_runs_without_it(tmp_path):
    out = tmp_path / "bench.json"
    status = run.main(["--quick", "--no-reference", "--cases", "extra_lstm_proj_*", "--repeats", "1", "--json", str(out)])
    assert status == 0  # with torch installed, its nn.LSTM(proj_size=...) matched lstmcore before timing
    rows = json.loads(out.read_text())["results"]
    assert [row["proj_size"] for row in rows] == [8, 8]


def test_quick_rnn_cases_match_torch_and_the_reference(tmp_path):
    out = tmp_path / "bench.json"
    status = run.main(["--quick", "--cases", "rnn_*", "--threads", "1", "--repeats", "1", "--json", str(out)])
    assert status == 0  # every side that ran (nn.RNN with torch, the reference) matched lstmcore first
    rows = json.loads(out.read_text())["results"]
    assert {row["kind"] for row in rows} == {"rnn"} and len(rows) == 4
    case = cases.CASES_BY_NAME["rnn_train_h128_t100_b32"]
    assert cases.count_flops(case) == 3 * 2 * 100 * 32 * 1 * 128 * (128 + 128)


def test_compare_names_the_tensor_and_worst_index():
    y = np.zeros((2, 3, 4), np.float32)
    wrong = y.copy()
    wrong[1, 2, 3] = 1e-3
    assert sides.compare("torch", (y, None), (y, None)) is None
    assert sides.compare("torch", (y + 5e-5, None), (y, None)) is None
    message = sides.compare("torch", (wrong, None), (y, None))
    assert "torch y" in message and "(1, 2, 3)" in message


def test_peephole_cell_without_peepholes_is_torch_lstm_cell():
    torch = pytest.importorskip("torch")
    from benchmarks import torch_cells

    torch.manual_seed(0)
    peephole, plain = torch_cells.PeepholeLSTMCell(5, 7), torch.nn.LSTMCell(5, 7)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(peephole, name).copy_(getattr(plain, name))
        peephole.weight_peephole.zero_()
        x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
        for got, expected in zip(peephole(x, (h, c)), plain(x, (h, c))):
            assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("variant", ["peephole", pytest.param("layernorm", id="layer_norm")])
def test_torch_cell_of_a_variant_matches_lstmcore_in_float64(variant):
    """The benchmark times lstmcore against these cells: they must compute the same layer."""
    torch = pytest.importorskip("torch")
    from benchmarks import torch_cells

    import lstmcore

    spec = cases.VARIANTS[variant]
    layer = lstmcore.LSTM(6, 9, dtype=np.float64, seed=0, **spec.lstmcore_kwargs)
    cell = getattr(torch_cells, spec.torch_cell)(6, 9).double()
    sides.load_cell(cell, layer.params, torch)
    x = np.random.default_rng(0).standard_normal((3, 5, 6))
    dy = np.random.default_rng(1).standard_normal((3, 5, 9))
    y, _, tape = layer.forward(x)
    dx, _ = layer.backward(tape, dy)
    x_torch = torch.from_numpy(x).requires_grad_(True)
    expected, _ = torch_cells.LoopRNN(cell)(x_torch)
    (expected * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=0, atol=1e-12)
    for name, value in layer.grads.items():
        torch_grad = getattr(cell, name.removesuffix("_l0")).grad.numpy()
        np.testing.assert_allclose(value, torch_grad, rtol=0, atol=1e-12, err_msg=name)


def test_contention_quick_run_writes_both_scenarios(tmp_path, capsys):
    from benchmarks import contention

    out = tmp_path / "contention.json"
    cases_run = "small_train_i12_h64_t29_b16,small_train_i12_h64_t29_b16_lengths"
    argv = ["--quick", "--competitors", "1", "--cases", cases_run, "--seconds", "0.2", "--json", str(out)]
    assert contention.main(argv) == 0
    results = json.loads(out.read_text())
    assert results["competitors"] == 1 and results["machine"]["fma_peak_gflops"] > 0
    plain, with_lengths = results["rows"]
    assert plain["times"]["lstmcore@1"] > 0 and plain["times"]["lstmcore@default"] > 0
    assert with_lengths["lengths"] and "torch@1" not in with_lengths["times"]
    for row in results["rows"]:
        assert len(row["two_processes"]["one"]) == 2 and len(row["two_processes"]["default"]) == 2
    assert "default/1t" in capsys.readouterr().out


def test_gru_forms_quick_run_writes_both_forms(tmp_path, capsys):
    from benchmarks import gru_forms

    out = tmp_path / "forms.json"
    assert gru_forms.main(["--quick", "--repeats", "2", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["after"]["median_ms"] > 0 and row["before"]["median_ms"] > 0 and row["before_over_after"] > 0
    assert row["case"] in capsys.readouterr().out


def test_prepared_threads_runs_and_restores_the_thread_count(capsys):
    from benchmarks import prepared_threads

    import lstmcore

    before = lstmcore.get_num_threads()
    prepared_threads.main(["--seconds", "0.02"])
    out = capsys.readouterr().out
    assert "FMA peak" in out and "1 Python thread:" in out and "4 Python threads:" in out
    assert lstmcore.get_num_threads() == before


def test_fixed_cost_prints_every_row_and_restores_the_thread_count(capsys):
    from benchmarks import fixed_cost

    import lstmcore

    before = lstmcore.get_num_threads()
    fixed_cost.main(["--samples", "1"])
    out = capsys.readouterr().out
    assert all(name in out for name, *_ in fixed_cost.ROWS) and out.count(" us |") == 3 * len(fixed_cost.ROWS)
    assert lstmcore.get_num_threads() == before


def test_step_probes_quick_run_prints_every_column(capsys):
    from benchmarks import step_probes

    assert step_probes.main(["--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "measured fp32 FMA peak" in lines[0]
    (row,) = [line for line in lines if line.startswith("| 64 |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:2] == ["64", "64 kB"] and cells[2].endswith("GB/s")
    # the core's step at I=1 and at I=H, and all four probes (H=64 is a multiple of 64), each timed
    assert len(cells) == 9 and all(float(cell.split()[0]) > 0 and cell.endswith("GB/s)") for cell in cells[3:]), row


def test_step_probes_refuse_what_they_cannot_run(tmp_path):
    import subprocess

    from benchmarks import step_probes

    executable = step_probes.build(tmp_path)
    for arguments, expected in ((["sideways", "64"], "mode must be"), (["interleaved", "72"], "multiple of 8")):
        done = subprocess.run([str(executable), *arguments], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2 and expected in done.stderr
    assert step_probes.probe_us(executable, "product", 72, 5) > 0  # any multiple of 8 alone
    assert step_probes.probe_us(executable, "alternating", 72, 5) > 0
    with pytest.raises(SystemExit):
        step_probes.parse_args(["--hidden", "100"])
