"""The benchmark's smoke run writes its JSON. No timings are checked: they belong to the benchmark."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_quick_bench_writes_its_json(tmp_path):
    command = [
        sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--tasks", "ner",
        "--variants", "baseline,default", "--no-prep", "--no-scaling", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "latest-quick.json").read_text())
    assert set(report["variants"]) == {"ner/baseline", "ner/default"} and not report["errors"]
    default = report["variants"]["ner/default"]
    assert default["train_samples_per_s"]["median"] > 0 and 0 < default["mfu"]["median"]
    assert report["matmul_peak"]["fp32"]["gflops"] > 0
    assert "ner/default" in done.stdout  # the table

    # the README's table is rendered from the JSON, not copied by hand
    rendered = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--markdown", str(tmp_path / "latest-quick.json")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    row = next(line for line in rendered.stdout.splitlines() if line.startswith("| ner/default |"))
    assert f"{default['train_samples_per_s']['median']:.1f} [" in row
    assert "Commit " in rendered.stdout and report["machine"]["git"]["commit"][:7] in rendered.stdout
