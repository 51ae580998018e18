"""The PyTorch-bridge benchmark runs end to end, and its check refuses a model that differs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import lstmcore  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# One case of each kind of PyTorch side: torch.nn's layer, a loop over a cell, a packed batch.
QUICK_CASES = "gru_h128_t100_b32,lstm_peephole_h128_t100_b32,lstm_packed_h256_t100_b64"


def test_quick_run_checks_times_and_writes_json(tmp_path):
    out, table = tmp_path / "bridge.json", tmp_path / "bridge.md"
    # The installed lstmcore this test imports, for the child too.
    path = os.pathsep.join([str(Path(lstmcore.__file__).parent.parent), os.environ.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "benchmarks.torch_bridge", "--quick", "--repeats", "2", "--cases", QUICK_CASES]
    command += ["--json", str(out), "--markdown", str(table)]
    done = subprocess.run(
        command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=path), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert results["fma_peak_gflops"] > 0 and results["settings"]["threads"]["torch"] >= 1
    rows = {row["case"]: row for row in results["results"]}
    assert list(rows) == QUICK_CASES.split(",")
    for row in rows.values():
        assert row["check"]["mismatch"] is None and row["check"]["largest_error"] <= row["check"]["rtol"]
        assert row["torch_ms"] > 0 and row["lstmcore_ms"] > 0 and len(row["timing"]["torch"]["samples_ms"]) == 2
        low, high = row["ratio_range"]
        assert low <= row["ratio"] <= high
    assert rows["lstm_packed_h256_t100_b64"]["spec"]["min_length"] == 2
    assert "| lstm_peephole_h128_t100_b32 |" in table.read_text()


def test_check_names_the_gradient_of_a_weight_that_differs():
    from benchmarks import bridge_cases, bridge_models

    case = bridge_cases.CASES_BY_NAME["lstm_peephole_h128_t100_b32"].quick()
    torch_model, lstmcore_model = bridge_models.build_models(case)
    batch = bridge_models.make_batch(case)
    expected = bridge_models.gradients(torch_model, batch)
    assert bridge_models.compare(expected, bridge_models.gradients(lstmcore_model, batch), case.check_rtol)[1] is None
    with torch.no_grad():
        lstmcore_model.recurrent.weight_peephole_l0[2] += 0.1  # p_o
    _, mismatch = bridge_models.compare(expected, bridge_models.gradients(lstmcore_model, batch), case.check_rtol)
    assert mismatch is not None and mismatch.split(":")[0] in expected
