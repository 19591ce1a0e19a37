"""bench_predict.py on an exported tiny run, with tiny settings: the report's rows, skips and service figures.

No speed is checked (that belongs to the benchmark); what is checked: each backend measured in its own
process, the test metric per backend equal to the export's own check, ratios against PyTorch fp32,
bf16 skipped (with the reason) exactly where the CPU lacks native bf16, the service load test with
no errors, and the missing student said.
"""

import json
import subprocess
import sys

import pytest

from finetune_lab.hardware import cpu_has_fast_bf16
from tests.conftest import ROOT


def test_bench_predict_reports_every_backend(deploy_runs, tmp_path):
    folder = deploy_runs["sentiment"]
    command = [
        sys.executable, str(ROOT / "benchmarks" / "bench_predict.py"), str(folder),
        "--rounds", "1", "--texts", "16", "--latency_texts", "4", "--serve_seconds", "2", "--clients", "3",
        "--serve_backends", "onnx", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (path,) = tmp_path.glob("bench-predict-*.json")
    report = json.loads(path.read_text())
    rows = {row["name"]: row for row in report["backends"]}
    expected = {"torch-fp32", "onnx-fp32", "onnx-int8"}
    assert set(rows) == expected | ({"torch-bf16"} if cpu_has_fast_bf16() else set())
    if not cpu_has_fast_bf16():
        assert "no native bf16" in report["skipped"]["torch-bf16"]
        assert "torch-bf16 | skipped: this CPU has no native bf16" in done.stdout
    export = json.loads((folder / "onnx" / "export.json").read_text())
    files = {"torch-fp32": ("torch", "model.safetensors"), "onnx-fp32": ("onnx-fp32", "model.onnx")}
    files["onnx-int8"] = ("onnx-int8", "model.int8.onnx")
    for name, (backend, file) in files.items():
        row = rows[name]
        assert row["test"] == pytest.approx(export["main"][backend], abs=1e-9), name
        assert row["bytes"] == export["files_bytes"][file]
        assert row["texts_per_s"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"] and not row["errors"]
        assert row["peak_rss_mib"] > report["baseline_peak_rss_mib"] > 0
    assert rows["torch-fp32"]["speedup"] == 1.0
    int8, fp32 = rows["onnx-int8"], rows["torch-fp32"]
    assert int8["speedup"] == pytest.approx(int8["texts_per_s"] / fp32["texts_per_s"])
    assert "student: no student given (--student RUN" in done.stdout and "student" in report["skipped"]
    (service,) = report["service"]
    assert service["backend"] == "onnx" and service["errors"] == 0 and service["requests"] > 0
    assert report["machine"]["cores"] and report["machine"]["cpu"] in done.stdout
    assert [t["what"] for t in report["targets"]][:2] == [
        "ONNX int8 texts/s vs PyTorch fp32", "ONNX int8 points of test accuracy lost",
    ]  # fmt: skip
