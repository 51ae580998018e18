"""The inference benchmark runs end to end with every side, and its check refuses a side that differs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lstmcore  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUICK_CASES = "lstm_h256_t100_b64,gru_h256_t100_b1"


def test_quick_run_checks_times_and_writes_json(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out, table = tmp_path / "inference.json", tmp_path / "inference.md"
    # The installed lstmcore this test imports, for the child too.
    path = os.pathsep.join([str(Path(lstmcore.__file__).parent.parent), os.environ.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "benchmarks.inference", "--quick", "--repeats", "2", "--cases", QUICK_CASES]
    command += ["--threads", "1,2", "--json", str(out), "--markdown", str(table)]
    done = subprocess.run(
        command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=path), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert set(results["fma_peak_gflops"]) == {"1", "2"} and min(results["fma_peak_gflops"].values()) > 0
    assert len(results["reduced_gmacs"]) == 4 and min(results["reduced_gmacs"].values()) > 0
    assert len(results["read_gbps"]) == 4 and min(results["read_gbps"].values()) > 0
    sides = ["lstmcore", "prepared", "int8", "bfloat16", "ort", "torch", "torch_int8"]
    assert results["settings"]["sides"] == sides
    assert 'allow_spinning = "0"' in results["settings"]["ort"]
    rows = results["results"]
    assert [(row["case"], row["threads"]) for row in rows] == [
        (case, threads) for case in QUICK_CASES.split(",") for threads in (1, 2)
    ]
    for row in rows:
        assert row["mismatch"] is None
        assert all(row["check"][side]["largest_error"] <= row["check_rtol"] for side in ("prepared", "ort", "torch"))
        assert row["check"]["prepared"]["largest_error"] == 0  # bit for bit the plain call
        assert all(row["ms"][side] > 0 and len(row["timing"][side]["samples_ms"]) == 2 for side in sides)
        for ratio in row["ratios"].values():
            low, high = ratio["range"]
            assert 0 < low <= ratio["median"] <= high
        assert set(row["ratios"]) == {
            "lstmcore/prepared",
            "ort/prepared",
            "torch/prepared",
            "torch_int8/int8",
            "torch/int8",
            "torch/bfloat16",
            "ort/int8",
        }
        # Every reduced side is quantized (not float32 left as it was), and close.
        for side in ("int8", "bfloat16", "torch_int8"):
            assert 0 < row["errors"][side]["mean_abs"] <= row["errors"][side]["max_abs"] < 0.1
    assert rows[0]["spec"]["batch"] == 4 and rows[2]["spec"]["kind"] == "gru"
    assert "| gru_h256_t100_b1 | 2 |" in table.read_text()


def test_check_names_the_output_that_differs():
    from benchmarks import inference_cases, inference_sides

    case = inference_cases.CASES_BY_NAME["lstm_h256_t100_b1"].quick()
    models = inference_sides.CaseModels(case, inference_sides.Libraries(torch=torch))
    sides = models.sides(threads=1)
    expected = sides["lstmcore"].outputs(sides["lstmcore"].call())
    got = sides["torch"].outputs(sides["torch"].call())
    assert inference_sides.compare(expected, got)[1] is None
    got[2] = got[2] + np.float32(1e-2) * np.abs(got[2]).max()  # c_n off by 1% of its largest magnitude
    error, mismatch = inference_sides.compare(expected, got)
    assert mismatch is not None and mismatch.startswith("c_n:") and error > inference_sides.CHECK_RTOL


def test_shapes_beyond_the_issue_run_and_a_bad_shape_is_refused(tmp_path):
    from benchmarks import inference_cases

    out = tmp_path / "inference.json"
    path = os.pathsep.join([str(Path(lstmcore.__file__).parent.parent), os.environ.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "benchmarks.inference", "--quick", "--repeats", "1", "--threads", "1"]
    command += ["--no-torch", "--no-ort", "--cases", "lstm_h256_t100_b8", "--shape", "gru:5:9:3:2", "--json", str(out)]
    done = subprocess.run(
        command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=path), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["results"]
    assert [row["case"] for row in rows] == ["lstm_h256_t100_b8", "gru_i5_h9_t3_b2"]
    assert all(row["mismatch"] is None for row in rows)
    assert {case.name for case in inference_cases.BEYOND_CASES} <= set(inference_cases.CASES_BY_NAME)
    assert inference_cases.parse_shape("lstm:40:300:200:2").describe() == "LSTM I=40 H=300 T=200 B=2"
    for bad in ("lstm:40:300:200", "rnn:1:2:3:4", "gru:1:0:3:4", "gru:1:x:3:4"):
        with pytest.raises(ValueError, match="expected"):
            inference_cases.parse_shape(bad)
