"""Time-to-quality benchmark: the summary's medians and ratios, and a smoke run end to end on the tiny model."""

import json
import subprocess
import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from time_to_quality import summarize, table  # noqa: E402


def record(variant: str, seed: int, seconds: float | None, test: float, step: int = 100) -> dict:
    reached = {"seconds": seconds, "step": step, "epoch": 1.0, "dev": 0.9} if seconds is not None else None
    return {"variant": variant, "seed": seed, "stop_at_dev_score": {"target": 0.9, "reached": reached},
            "test": {"f1": test}}  # fmt: skip


def test_summary_takes_ratios_within_a_seed_and_counts_runs_that_never_reached_the_target():
    runs = [
        record("baseline", 1, 100.0, 0.80), record("default", 1, 20.0, 0.82, step=300),
        record("baseline", 2, 120.0, 0.81), record("default", 2, 60.0, 0.84, step=500),
        record("baseline", 3, 90.0, 0.79), record("default", 3, None, 0.70),
    ]  # fmt: skip
    rows = summarize(runs, ["baseline", "default"])
    default = rows["default"]
    assert (default["runs"], default["reached"]) == (3, 2)
    assert default["seconds"] == {"median": 40.0, "min": 20.0, "max": 60.0}
    assert default["x_baseline"] == 3.5  # median of 100/20 and 120/60; seed 3 has no ratio (not reached)
    assert default["steps"] == 400
    assert abs(default["test"]["mean"] - (0.82 + 0.84 + 0.70) / 3) < 1e-12  # test at the stop, reached or not
    assert rows["baseline"]["x_baseline"] == 1.0


def test_smoke_run_launches_each_variant_to_its_target_and_writes_the_table(tiny_model_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "time_to_quality.py"), "--quick", "--out", str(tmp_path),
         "--run_args", f"--model_name_or_path {tiny_model_dir}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "ttq-latest-quick.json").read_text())
    runs = report["tasks"]["ner"]["runs"]
    assert [r["variant"] for r in runs] == ["default", "baseline"]
    for run in runs:  # target 0.0: reached at the first dev evaluation, 2 optimizer steps in
        assert run["stop_at_dev_score"]["reached"]["step"] == 2 and run["steps"] == 2
        assert 0 < run["stop_at_dev_score"]["reached"]["seconds"] < run["wall_seconds"]
    assert "| ner | default | f1 0.0 | 1/1 |" in table(report)
