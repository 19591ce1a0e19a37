"""The runner's promises: resume after SIGKILL, no torn files, reproducible, NaN stops, no secrets."""

from __future__ import annotations

import ctypes
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import finetune_lab.callbacks as callbacks
from finetune_lab.errors import TrainingError, UsageError
from finetune_lab.rundir import COMPLETE_MARKER, LOCK_NAME
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
    # fp32 on every CPU: in bf16 the tiny model's dev score stays flat and early stopping ends the run at step 18
    "--bf16",
    "false",
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


# Runs run.py, but at optimizer step PAUSE_AT_STEP touches the file PAUSED and waits for the file GO_ON.
PAUSER = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
import finetune_lab.callbacks as callbacks
def on_step_end(self, args, state, control, **kwargs):
    if state.global_step == int(os.environ["PAUSE_AT_STEP"]):
        Path(os.environ["PAUSED"]).touch()
        while not Path(os.environ["GO_ON"]).exists():
            time.sleep(0.1)
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
    command = [sys.executable, "-c", KILLER.format(root=str(ROOT)), *common, "--output_dir", "runs/k"]
    killed = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == -9, err[-2000:]
    run_dir = Path("runs/k")
    assert not (run_dir / "results.json").exists()
    assert (run_dir / "checkpoint-12" / COMPLETE_MARKER).exists()
    assert (run_dir / LOCK_NAME).read_text().startswith(f"process {killed.pid} on ")  # left behind by kill -9
    # A save cut short by the kill: newer than any complete checkpoint, so it must be skipped.
    torn = run_dir / "checkpoint-18"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\x00" * 10)
    # A complete checkpoint damaged afterwards (a full disk, a bad copy): cut short, so resume falls back to 6.
    damaged = run_dir / "checkpoint-12" / "model.safetensors"
    size = damaged.stat().st_size
    with open(damaged, "r+b") as handle:
        handle.truncate(size // 2)

    with pytest.raises(UsageError, match="holds checkpoints of an unfinished run; pass --resume"):
        main([*common, "--output_dir", "runs/k"])
    took_over = capfd.readouterr().out
    assert not (run_dir / LOCK_NAME).exists()  # released by the run that stopped
    steps_run = []  # optimizer steps taken by the resumed process itself

    def count_step(self, args, state, control, **kwargs):
        steps_run.append(state.global_step)

    monkeypatch.setattr(callbacks.EpochTimer, "on_step_end", count_step)
    resumed = main([*common, "--output_dir", "runs/k", "--resume"])
    printed = capfd.readouterr().out
    # it resumed (a fresh start would reach the same weights too): from 6, past the torn 18 and the damaged 12
    assert "resume: removing checkpoint-18, left incomplete by an interrupted save" in printed
    half = f"{size // 2:,} bytes, {size:,} when it was saved"
    assert f"resume: skipping checkpoint-12 (model.safetensors has {half}); removing it" in printed
    assert "resume: continuing from runs/k/checkpoint-6" in printed
    assert steps_run == list(range(7, 25))
    # the lock the killed run left behind was taken over, and said so
    assert f"runs/k: taking over the lock left by process {killed.pid} on " in took_over
    assert "which is no longer running" in took_over

    assert comparable(resumed["dev"]) == pytest.approx(comparable(reference["dev"]), abs=1e-6)
    assert comparable(resumed["test"]) == pytest.approx(comparable(reference["test"]), abs=1e-6)
    assert resumed["train"]["steps"] == reference["train"]["steps"] == 24
    a, b = load_file("runs/straight/model.safetensors"), load_file("runs/k/model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-5, msg=name)


def git_says(folder: Path) -> dict:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True)
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder, capture_output=True)
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def test_a_second_run_into_a_busy_run_folder_stops_at_once(tiny_model_dir, capfd, tmp_path):
    common = [*TINY_RUN, "--model_name_or_path", str(tiny_model_dir), "--num_train_epochs", "1"]
    common += ["--output_dir", "runs/busy"]
    paused, go_on = tmp_path / "paused", tmp_path / "go-on"
    env = {**os.environ, "PAUSE_AT_STEP": "3", "PAUSED": str(paused), "GO_ON": str(go_on)}
    command = [sys.executable, "-c", PAUSER.format(root=str(ROOT)), *common]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not paused.exists():  # the first run is training (step 3, before its first checkpoint)
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-3000:]
            time.sleep(0.2)
        for extra in ([], ["--overwrite_output_dir", "true"]):  # overwriting is no way into a running run
            with pytest.raises(UsageError, match=rf"runs/busy is in use by another run \(process {first.pid} on "):
                main([*common, *extra])
        assert "data:" not in capfd.readouterr().out  # stopped at once: no data loaded, nothing trained
        go_on.touch()
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err[-3000:]
    saved = json.loads(Path("runs/busy/results.json").read_text())  # the first run's, whole
    assert saved["train"]["steps"] == 12 and saved["train"]["loss"] > 0
    assert not (Path("runs/busy") / LOCK_NAME).exists()  # the lock went with the run


def test_resume_of_a_finished_run_rewrites_nothing(tiny_model_dir, capfd):
    run_dir = Path("runs/finished")
    run_dir.mkdir(parents=True)
    saved = {"task": "sentiment", "train": {"loss": 0.6123, "samples_per_second": 812.5}, "dev": {"accuracy": 0.71}}
    (run_dir / "results.json").write_text(json.dumps(saved))
    stamp = (run_dir / "results.json").stat().st_mtime_ns
    for extra in ([], ["--overwrite_output_dir", "true"]):
        returned = main(
            [*TINY_RUN, "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(run_dir)]
            + [
                "--resume",
                *extra,
            ]
        )
        printed = capfd.readouterr().out
        assert returned == saved
        message = "runs/finished holds a finished run, nothing to resume; its results are in runs/finished/results.json"
        assert message in printed
        assert "data:" not in printed
    assert json.loads((run_dir / "results.json").read_text()) == saved
    assert (run_dir / "results.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in run_dir.iterdir()) == ["results.json"]


def without_root_override() -> None:
    """In the child before exec: drop the capabilities that let root write and read past file modes
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a read-only folder is read-only to it as to any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_unwritable_output_folder_stops_the_run_before_it_starts(tiny_model_dir, tmp_path):
    """Folders the user cannot write to: an existing run folder (the old code trained until its first
    checkpoint), a new run folder inside one, and a run folder that still holds the lock file of a
    killed run (a file the user can write)."""
    read_only, old_run = tmp_path / "read-only", tmp_path / "old-run"
    read_only.mkdir()
    old_run.mkdir()
    (old_run / LOCK_NAME).write_text(f"process 999999999 on {os.uname().nodename}\n")
    as_root = os.geteuid() == 0
    if as_root and subprocess.run(["true"], preexec_fn=without_root_override).returncode != 0:
        pytest.skip("running as root, and root's permission override cannot be dropped here")
    command = [sys.executable, str(ROOT / "run.py"), *TINY_RUN, "--num_train_epochs", "1"]
    command += ["--model_name_or_path", str(tiny_model_dir)]
    runs = {}
    try:
        for folder in (read_only, old_run):
            folder.chmod(0o555)
        for run_dir in (read_only, read_only / "run", old_run):
            runs[run_dir] = subprocess.run(
                [*command, "--output_dir", str(run_dir)],
                capture_output=True,
                text=True,
                timeout=600,
                preexec_fn=without_root_override if as_root else None,
            )
    finally:
        for folder in (read_only, old_run):
            folder.chmod(0o755)
    for run_dir, done in runs.items():
        assert done.returncode == 2, done.stderr[-3000:]
        assert done.stderr.strip() == (
            f"run.py: error: --output_dir {run_dir} is not writable (Permission denied); choose another "
            "--output_dir or fix its permissions"
        )
        assert "data:" not in done.stdout  # before loading any data, let alone training an epoch
    assert sorted(p.name for p in old_run.iterdir()) == [LOCK_NAME]


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
    # the commit and dirtiness git itself reports for the checkout that ran (None outside a git checkout)
    assert saved["environment"]["git"] == git_says(ROOT)
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
    assert not (Path("runs/nan") / LOCK_NAME).exists()  # the lock goes with the run, however it ends


def written_contents(path: Path):
    """A file's bytes, and for an archive (torch.save's zip, gzip) also each member's bytes unpacked."""
    raw = path.read_bytes()
    yield raw
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                yield archive.read(name)
    if raw[:2] == b"\x1f\x8b":
        yield gzip.decompress(raw)


def secret_pieces(secret: str) -> list[bytes]:
    """The secret, and its first and last 16 characters: a file format may split a string in two (W&B's
    run log cuts records into 32 KiB blocks), and one of the two parts then holds one of these pieces."""
    assert len(secret) >= 32
    return [secret.encode(), secret[:16].encode(), secret[-16:].encode()]


def test_planted_secrets_appear_nowhere(tiny_model_dir, run_cli, monkeypatch, tmp_path):
    """Secrets on the command line and in the environment, run as users run it (a process of its own):
    no byte of any file the run writes holds one (run folder, checkpoints, W&B, caches, home, temp)."""
    key = "fake-wandb-key-0123456789abcdef0123"
    env_token = "hf_fakeEnvTokenABCDEFGHIJKLMNOP1234"
    argv_token = "hf_fakeArgvTokenQRSTUVWXYZabcdef5678"
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("HF_TOKEN", env_token)
    monkeypatch.setenv("WANDB_MODE", "offline")  # a key is set, but there is no network here
    for name in ("HOME", "HF_HOME", "XDG_CACHE_HOME", "TMPDIR"):  # every write lands under tmp_path
        (tmp_path / name.lower()).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    done = run_cli(
        *TINY_RUN,
        "--model_name_or_path",
        str(tiny_model_dir),
        "--num_train_epochs",
        "1",
        "--report_to",
        "wandb",
        "--wandb_log_model",
        "true",
        "--hub_token",
        argv_token,
        "--notes",
        f"my key is {key}, my tokens {env_token} and {argv_token}",
        "--output_dir",
        "runs/secret",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink())
    names = {str(p.relative_to(tmp_path)) for p in written}
    # it did write what holds the command line and the options: pickled arguments, W&B run file and logs
    assert {"runs/secret/training_args.bin", "runs/secret/checkpoint-12/training_args.bin"} <= names
    assert {"runs/secret/results.json", "runs/secret/checkpoint-12/trainer_state.json"} <= names
    wandb_files = {n.split("/", 2)[-1] for n in names if n.startswith("wandb/offline-run-")}
    assert {"files/output.log", "logs/debug.log", "logs/debug-internal.log"} <= wandb_files
    run_dirs = list(tmp_path.glob("wandb/offline-run-*"))
    assert len(run_dirs) == 1
    # The W&B run file (what `wandb sync` uploads) records the command line: still, but without the secrets.
    [run_file] = run_dirs[0].glob("*.wandb")
    recorded = run_file.read_bytes()
    assert re.search(rb"--hub_token..<redacted>", recorded, re.DOTALL)  # protobuf strings: tag, length, bytes
    assert b"my key is <redacted>, my tokens <redacted> and <redacted>" in recorded
    inspected = wandb_inspect(run_dirs[0], "--summary", "--json")
    assert json.loads(inspected)["config"]["task"] == "sentiment"  # the reader did read the config
    sources = {"stdout": [done.stdout.encode()], "stderr": [done.stderr.encode()], "W&B config": [inspected.encode()]}
    sources.update({str(p.relative_to(tmp_path)): list(written_contents(p)) for p in written})
    for secret in (key, env_token, argv_token):
        for piece in secret_pieces(secret):
            leaks = [where for where, contents in sources.items() if any(piece in c for c in contents)]
            assert not leaks, (secret, piece, leaks)


def test_trust_remote_code_is_off_and_pickled_weights_are_refused(tiny_model_dir, tmp_path):
    from transformers import BertModel

    from finetune_lab.arguments import ModelArguments, parse_arguments
    from finetune_lab.modeling import build_model

    assert parse_arguments(["--task", "ner"]).model.trust_remote_code is False
    pickled = tmp_path / "pickled-model"  # the same model as a pickled .bin: loading it may run code
    pickled.mkdir()
    torch.save(BertModel.from_pretrained(tiny_model_dir).state_dict(), pickled / "pytorch_model.bin")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (pickled / name).write_bytes((tiny_model_dir / name).read_bytes())
    assert not list(pickled.glob("*.safetensors"))
    # refused for being a pickle, not for anything else wrong with the folder
    with pytest.raises(UsageError, match=r"cannot load --model_name_or_path .*no file named model\.safetensors"):
        main([*TINY_RUN, "--model_name_or_path", str(pickled), "--output_dir", "runs/pickled"])
    assert not Path("runs/pickled/results.json").exists()
    # the same folder with the same weights as safetensors loads: the format was the only thing refused
    weights = {k: v.contiguous() for k, v in torch.load(pickled / "pytorch_model.bin", weights_only=True).items()}
    save_file(weights, pickled / "model.safetensors")
    built = build_model(parse_arguments(["--task", "sentiment"]).task, ModelArguments(str(pickled)), None)
    loaded = built.model.base_model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items() if k in loaded)
    assert set(weights) <= set(loaded)


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


def test_two_processes_with_batch_16_train_like_one_with_batch_32(tiny_model_dir, run_cli, tmp_path):
    """DDP averages the two processes' gradients: each step sees the same 32 examples as one process
    with batch 32, so the loss trajectory is the same up to float rounding.

    Two settings make that exact: dropout off (each process draws its own dropout masks) and
    `--train_sampling_strategy random` (shuffled, the same permutation cut into per-process batches).
    The default, group_by_length, cannot match: it builds batches of the per-device size from
    length-sorted chunks, so two processes' batches of 16 are not the one process's batch of 32.
    """
    from transformers import BertConfig

    model = tmp_path / "no-dropout"
    shutil.copytree(tiny_model_dir, model)
    config = BertConfig.from_pretrained(model)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(model)
    common = ["--task", "sentiment", "--model_name_or_path", str(model), "--train_sampling_strategy", "random"]
    common += ["--max_train_samples", "192", "--max_eval_samples", "48", "--max_test_samples", "16"]
    common += ["--num_train_epochs", "2", "--learning_rate", "5e-3", "--logging_steps", "1", "--report_to", "none"]
    common += ["--disable_tqdm", "true", "--bf16", "false"]  # bf16 rounds batch 16 and 32 apart (2e-5 in the loss)
    one = main([*common, "--per_device_train_batch_size", "32", "--output_dir", "runs/one"])
    launcher = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2"]
    done = run_cli(*common, "--per_device_train_batch_size", "16", "--output_dir", "runs/two", launcher=launcher)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads(Path("runs/two/results.json").read_text())
    assert one["processes"] == 1 and two["processes"] == 2
    assert [e["step"] for e in two["train_history"]] == [e["step"] for e in one["train_history"]] == list(range(1, 13))
    losses_one = [e["loss"] for e in one["train_history"]]
    losses_two = [e["loss"] for e in two["train_history"]]
    assert losses_two == pytest.approx(losses_one, abs=1e-5)
    assert max(losses_one) - min(losses_one) > 1e-3  # a trajectory, not a flat line that anything would match
    assert two["train"]["steps"] == one["train"]["steps"] == 12
    for split in ("dev", "test"):
        scores_two, scores_one = comparable(two[split]), comparable(one[split])
        # the loss averages per-batch means (48 = 32 + 16 in one process, 24 + 24 in two): close, not exact
        assert scores_two.pop("loss") == pytest.approx(scores_one.pop("loss"), rel=1e-2), split
        assert scores_two == pytest.approx(scores_one, abs=1e-9), split
    assert not (Path("runs/two") / LOCK_NAME).exists()  # the main process owned the folder, and let it go
