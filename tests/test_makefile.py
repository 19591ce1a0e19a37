"""Makefile targets of this issue: seed loops and `make compare` pass-through (launcher replaced by echo)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str) -> list[str]:
    # -o: treat the venv stamp as up to date, so no install runs; ACCELERATE=echo prints the command.
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "-o", ".venv/.installed", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split("\n")[:-1]


def test_seeds_run_the_experiment_once_per_seed():
    lines = make("ner", "SEEDS=1 2 3", "ACCELERATE=echo", "EXP=experiments/ner-quick.yaml")
    assert [line.split() for line in lines] == [
        ["run.py", "--task", "ner", "--experiment", "experiments/ner-quick.yaml", "--seed", seed] for seed in "123"
    ]


def test_without_seeds_one_run():
    assert [line.split() for line in make("sentiment", "ACCELERATE=echo")] == [["run.py", "--task", "sentiment"]]


def test_compare_passes_runs_dir():
    lines = make("-n", "compare", "RUNS_DIR=/some/where", "ARGS=--task ner --format markdown")
    assert lines == [".venv/bin/python -m finetune_lab.compare /some/where --task ner --format markdown"]
    assert make("-n", "compare") == [".venv/bin/python -m finetune_lab.compare outputs "]


def test_every_registered_task_has_a_make_target():
    from tasks import REGISTRY

    for task in REGISTRY:
        assert [line.split() for line in make(task, "ACCELERATE=echo")] == [["run.py", "--task", task]]


def test_deploy_targets_pass_the_run_and_refuse_without_one():
    assert make("-n", "export", "RUN=outputs/ner/r1")[-1] == ".venv/bin/python export.py outputs/ner/r1 "
    assert make("-n", "serve", "RUN=outputs/ner/r1", "ARGS=--backend onnx")[-1] == (
        ".venv/bin/python serve.py outputs/ner/r1 --backend onnx"
    )
    assert make("-n", "bench-predict", "RUN=r1", "STUDENT=r2")[-1].split() == (
        ".venv/bin/python benchmarks/bench_predict.py r1 --student r2".split()
    )
    for target in ("export", "serve", "bench-predict"):
        command = ["make", "-s", "-o", ".venv/.installed", target]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and f"make {target}: give the run folder" in done.stderr
