"""Makefile targets (seed loops, `make compare` pass-through; launcher replaced by echo) and the venv's `accelerate`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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


# --- `accelerate launch` typed in the activated venv (finetune_lab/venv_accelerate.sh) ---------


def activated_accelerate(root, venv: str, command: str, env: dict[str, str], path_first: str) -> str:
    """`command` in bash after sourcing the snippet `make setup` appends to .venv/bin/activate."""
    snippet = (ROOT / "finetune_lab" / "venv_accelerate.sh").read_text().replace("@ROOT@", str(root))
    script = f'export VIRTUAL_ENV="{venv}"\n{snippet}\n{command}\n'
    env = {"PATH": f"{path_first}:/usr/bin:/bin", "HOME": env.pop("HOME"), **env}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    return done.stdout + done.stderr


@pytest.fixture
def echo_accelerate(tmp_path):
    """A fake `accelerate` on PATH that prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "accelerate").write_text('#!/bin/sh\necho "accelerate $*"\n')
    (bin_dir / "accelerate").chmod(0o755)
    return bin_dir


def test_plain_accelerate_launch_in_the_venv_gets_the_projects_config(tmp_path, echo_accelerate):
    root, venv = tmp_path / "repo", str(tmp_path / "repo" / ".venv")
    home = {"HOME": str(tmp_path / "home")}

    def launched(command: str, venv: str = venv, **env: str) -> str:
        return activated_accelerate(root, venv, command, {**home, **env}, str(echo_accelerate)).strip()

    config = f"--config_file {root}/accelerate_config.yaml"
    assert launched("accelerate launch run.py --task ner") == f"accelerate launch {config} run.py --task ner"
    # the user's own choices win: their config file, --cpu, a default config from `accelerate config`, opt-out
    mine = "accelerate launch --config_file mine.yaml run.py"
    assert launched(mine) == mine
    assert launched("accelerate launch --cpu run.py") == "accelerate launch --cpu run.py"
    hf_home = tmp_path / "hf"
    (hf_home / "accelerate").mkdir(parents=True)
    (hf_home / "accelerate" / "default_config.yaml").write_text("num_processes: 1\n")
    assert launched("accelerate launch run.py", HF_HOME=str(hf_home)) == "accelerate launch run.py"
    assert launched("accelerate launch run.py", FINETUNE_LAB_PLAIN_ACCELERATE="1") == "accelerate launch run.py"
    # other subcommands and other (or no) venvs are untouched
    assert launched("accelerate env") == "accelerate env"
    assert launched("accelerate launch run.py", venv="/elsewhere/.venv") == "accelerate launch run.py"


def test_plain_accelerate_launch_prints_no_wall_of_warnings(tmp_path):
    bin_dir = str(Path(sys.executable).parent)
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}  # no default config from `accelerate config`
    command = f"cd {ROOT} && accelerate launch run.py --task sentiment --help"
    output = activated_accelerate(ROOT, f"{ROOT}/.venv", command, env, bin_dir)
    assert "usage: run.py" in output, output[-2000:]
    assert "had defaults used instead" not in output, output[:2000]


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
