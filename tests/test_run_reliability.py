"""The runner's promises: resume after SIGKILL, no torn files, reproducible, NaN stops, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import finetune_lab.callbacks as callbacks
from finetune_lab.errors import TrainingError, UsageError
from finetune_lab.rundir import COMPLETE_MARKER
from run import main
from tests.conftest import wandb_inspect

ROOT = Path(__file__).resolve().parent.parent
# 192 examples / batch 16 = 12 steps an epoch; a checkpoint (and dev evaluation) every 6 steps.
TINY_RUN = [
    "--task",
    "sentiment",
    "--max_train_samples",
    "192",
    "--max_eval_samples",
    "48",
    "--max_test_samples",
    "48",
    "--num_train_epochs",
    "2",
    "--per_device_train_batch_size",
    "16",
    "--learning_rate",
    "5e-3",
    "--save_strategy",
    "steps",
    "--save_steps",
    "6",
    "--eval_strategy",
    "steps",
    "--eval_steps",
    "6",
    "--save_total_limit",
    "3",
    "--report_to",
    "none",
    "--disable_tqdm",
    "true",
]

# Runs run.py, but SIGKILLs itself right after optimizer step KILL_AT_STEP: a pre-emption mid-epoch.
KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
import finetune_lab.callbacks as callbacks
kill_at = int(os.environ["KILL_AT_STEP"])
def on_step_end(self, args, state, control, **kwargs):
    if state.global_step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
callbacks.EpochTimer.on_step_end = on_step_end
sys.argv = ["run.py", *sys.argv[1:]]
import run
run.cli()
"""


def comparable(metrics: dict) -> dict:
    """Metrics without the timing entries, which differ from run to run."""
    return {k: v for k, v in metrics.items() if not any(t in k for t in ("runtime", "per_second", "_time"))}


def test_killed_run_resumes_to_the_same_weights_and_metrics(tiny_model_dir, capfd, monkeypatch):
    common = [*TINY_RUN, "--model_name_or_path", str(tiny_model_dir)]
    reference = main([*common, "--output_dir", "runs/straight"])

    env = {**os.environ, "KILL_AT_STEP": "15"}  # mid-epoch 2, after checkpoint-12
    killed = subprocess.run(
        [sys.executable, "-c", KILLER.format(root=str(ROOT)), *common, "--output_dir", "runs/k"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    run_dir = Path("runs/k")
    assert not (run_dir / "results.json").exists()
    assert (run_dir / "checkpoint-12" / COMPLETE_MARKER).exists()
    # A save cut short by the kill: newer than any complete checkpoint, so it must be skipped.
    torn = run_dir / "checkpoint-18"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\x00" * 10)

    with pytest.raises(UsageError, match="holds checkpoints of an unfinished run; pass --resume"):
        main([*common, "--output_dir", "runs/k"])
    capfd.readouterr()
    steps_run = []  # optimizer steps taken by the resumed process itself

    def count_step(self, args, state, control, **kwargs):
        steps_run.append(state.global_step)

    monkeypatch.setattr(callbacks.EpochTimer, "on_step_end", count_step)
    resumed = main([*common, "--output_dir", "runs/k", "--resume"])
    printed = capfd.readouterr().out
    # it resumed (a fresh start would reach the same weights too): from 12, past the torn 18
    assert "resume: removing checkpoint-18, left incomplete by an interrupted save" in printed
    assert "resume: continuing from runs/k/checkpoint-12" in printed
    assert steps_run == list(range(13, 25))

    assert comparable(resumed["dev"]) == pytest.approx(comparable(reference["dev"]), abs=1e-6)
    assert comparable(resumed["test"]) == pytest.approx(comparable(reference["test"]), abs=1e-6)
    assert resumed["train"]["steps"] == reference["train"]["steps"] == 24
    a, b = load_file("runs/straight/model.safetensors"), load_file("runs/k/model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-5, msg=name)


def test_same_seed_same_config_gives_identical_metrics(tiny_model_dir):
    common = [*TINY_RUN, "--model_name_or_path", str(tiny_model_dir), "--num_train_epochs", "1"]
    first = main([*common, "--output_dir", "runs/a"])
    second = main([*common, "--output_dir", "runs/b"])
    assert comparable(first["dev"]) == comparable(second["dev"])  # exactly equal on CPU
    assert comparable(first["test"]) == comparable(second["test"])
    saved = json.loads(Path("runs/a/results.json").read_text())
    # everything needed to re-run: config, data checksums, versions, commit and dirtiness
    assert set(saved["data"]["checksums"]) == {"train", "validation", "test"}
    assert saved["data"]["checksums"] == second["data"]["checksums"]
    assert saved["options"]["training"]["seed"] == 42 and saved["options"]["data"]["max_train_samples"] == 192
    assert set(saved["environment"]["git"]) == {"commit", "dirty"}
    assert saved["environment"]["packages"]["torch"]


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_good_checkpoint(tiny_model_dir, monkeypatch):
    from transformers import Trainer

    compute_loss = Trainer.compute_loss

    def poisoned(self, model, inputs, *args, **kwargs):
        loss = compute_loss(self, model, inputs, *args, **kwargs)
        return loss * float("nan") if self.state.global_step >= 8 else loss

    monkeypatch.setattr(Trainer, "compute_loss", poisoned)
    with pytest.raises(TrainingError, match=r"stopped at step 9: the loss or its gradients became NaN"):
        main([*TINY_RUN, "--model_name_or_path", str(tiny_model_dir), "--output_dir", "runs/nan"])
    checkpoints = sorted(p.name for p in Path("runs/nan").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-6"]  # the last good one, complete, and nothing after the NaN
    assert (Path("runs/nan/checkpoint-6") / COMPLETE_MARKER).exists()
    weights = load_file("runs/nan/checkpoint-6/model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert not Path("runs/nan/results.json").exists()


def test_planted_secrets_appear_nowhere(tiny_model_dir, capfd, monkeypatch, tmp_path):
    key = "fake-wandb-key-0123456789abcdef0123"
    token = "hf_fakeTokenABCDEFGHIJKLMNOP123456"
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("WANDB_MODE", "offline")  # a key is set, but there is no network here
    main(
        [
            *TINY_RUN,
            "--model_name_or_path",
            str(tiny_model_dir),
            "--num_train_epochs",
            "1",
            "--report_to",
            "wandb",
            "--hub_token",
            token,
            "--notes",
            f"my key is {key}",
            "--output_dir",
            "runs/secret",
        ]
    )
    printed = capfd.readouterr()
    results = Path("runs/secret/results.json").read_text()
    run_dirs = list(tmp_path.glob("wandb/offline-run-*"))
    assert len(run_dirs) == 1
    inspected = wandb_inspect(run_dirs[0], "--summary", "--json")
    assert json.loads(inspected)["config"]["task"] == "sentiment"  # the reader did read the config
    for where, text in {
        "stdout": printed.out,
        "stderr": printed.err,
        "results.json": results,
        "W&B config": inspected,
    }.items():
        assert key not in text, where
        assert token not in text, where


def test_trust_remote_code_is_off_and_pickled_weights_are_refused(tiny_model_dir, tmp_path):
    from transformers import BertModel

    from finetune_lab.arguments import parse_arguments

    assert parse_arguments(["--task", "ner"]).model.trust_remote_code is False
    pickled = tmp_path / "pickled-model"  # the same model as a pickled .bin: loading it may run code
    pickled.mkdir()
    torch.save(BertModel.from_pretrained(tiny_model_dir).state_dict(), pickled / "pytorch_model.bin")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (pickled / name).write_bytes((tiny_model_dir / name).read_bytes())
    assert not list(pickled.glob("*.safetensors"))
    with pytest.raises(UsageError, match="cannot load --model_name_or_path"):
        main([*TINY_RUN, "--model_name_or_path", str(pickled), "--output_dir", "runs/pickled"])


def test_two_processes_report_the_same_metrics_as_one_from_the_same_weights(tiny_model_dir, run_cli):
    main([*TINY_RUN, "--model_name_or_path", str(tiny_model_dir), "--num_train_epochs", "1", "--output_dir", "runs/w"])
    # Odd sizes: 2 processes get unequal shards, and the padding duplicates must not be scored.
    evaluate = [
        "--task",
        "sentiment",
        "--do_train",
        "false",
        "--model_name_or_path",
        "runs/w",
        "--max_eval_samples",
        "51",
        "--max_test_samples",
        "37",
        "--report_to",
        "none",
    ]
    one = main([*evaluate, "--output_dir", "runs/one"])
    launcher = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2"]
    done = run_cli(*evaluate, "--output_dir", "runs/two", launcher=launcher)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads(Path("runs/two/results.json").read_text())
    assert two["processes"] == 2 and one["processes"] == 1
    assert two["dev"]["examples"] == 51 and two["test"]["examples"] == 37
    for split in ("dev", "test"):
        scores_two, scores_one = comparable(two[split]), comparable(one[split])
        # Trainer's loss averages per-batch means, and the padded duplicate in a process's last
        # batch is inside one such mean: close, not exact. Every prediction-based metric is exact.
        assert scores_two.pop("loss") == pytest.approx(scores_one.pop("loss"), rel=1e-2), split
        assert scores_two == pytest.approx(scores_one, abs=1e-9), split
