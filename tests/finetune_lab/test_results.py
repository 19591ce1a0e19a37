import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from finetune_lab.results import (
    REDACTED,
    environment,
    git_state,
    move_hub_token_to_environment,
    redact,
    redact_argv,
    run_results,
    write_json,
)
from finetune_lab.rundir import save_model_atomically


def test_secret_keys_and_environment_secret_values_are_redacted(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-0123456789abcdef")
    config = {
        "hub_token": "hf_abc123",
        "token_accuracy": 0.9,
        "notes": "key fake-key-0123456789abcdef",
        "nested": [{"api_key": "x"}],
        "hub_model_id": None,
    }
    clean = redact(config)
    assert clean["hub_token"] == REDACTED and clean["nested"][0]["api_key"] == REDACTED
    assert clean["token_accuracy"] == 0.9 and clean["hub_model_id"] is None
    assert "fake-key" not in json.dumps(clean)


def test_write_json_replaces_atomically(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


WRITER = """
import sys
sys.path.insert(0, {root!r})
from finetune_lab.results import write_json
versions = [{{"v": "a" * 400_000}}, {{"v": "b" * 400_000}}]
i = 0
while True:
    write_json({path!r}, versions[i % 2])
    i += 1
"""


def test_a_reader_or_a_kill_never_sees_a_torn_results_file(tmp_path):
    """A writer rewrites a large results.json in a loop; every read, and the file after SIGKILL, is whole."""
    path = tmp_path / "results.json"
    write_json(path, {"v": "a" * 400_000})
    root = str(Path(__file__).resolve().parents[2])
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(root=root, path=str(path))])
    try:
        reads, deadline = 0, time.monotonic() + 3
        while time.monotonic() < deadline:
            value = json.loads(path.read_text())["v"]  # a torn file fails to parse
            assert value in ("a" * 400_000, "b" * 400_000)
            reads += 1
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert reads > 10
    assert json.loads(path.read_text())["v"][0] in "ab"


def test_the_final_model_is_staged_so_a_failed_save_leaves_the_old_one(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.safetensors").write_text("old")

    class FailingTrainer:
        args = SimpleNamespace(process_index=0)

        def save_model(self, folder):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "model.safetensors").write_text("half")
            raise KeyboardInterrupt  # killed mid-save

    with pytest.raises(KeyboardInterrupt):
        save_model_atomically(FailingTrainer(), run_dir)
    assert (run_dir / "model.safetensors").read_text() == "old"


def test_environment_names_library_versions():
    env = environment()
    assert env["packages"]["torch"] and env["packages"]["transformers"]
    assert set(env["git"]) == {"commit", "dirty"}


def test_secret_options_and_values_are_redacted_from_a_command_line(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-0123456789abcdef")
    argv = ["--task", "ner", "--hub_token", "hf_abc", "--hub-token=hf_def", "--notes", "fake-key-0123456789abcdef!"]
    argv += ["--token_accuracy_goal", "0.9", "--api_key"]
    assert redact_argv(argv) == [
        "--task",
        "ner",
        "--hub_token",
        REDACTED,
        f"--hub-token={REDACTED}",
        "--notes",
        f"{REDACTED}!",
        "--token_accuracy_goal",
        "0.9",
        "--api_key",
    ]


def test_the_hub_token_leaves_the_training_arguments_for_the_environment(monkeypatch):
    from huggingface_hub import get_token
    from transformers import TrainingArguments

    monkeypatch.setenv("HF_TOKEN", "hf_fromTheEnvironment0123456789")
    training = TrainingArguments(output_dir="unused", hub_token="hf_fromTheCommandLine0123456789", report_to=[])
    move_hub_token_to_environment(training)
    assert training.hub_token is None  # Trainer pickles these arguments into every training_args.bin
    assert get_token() == "hf_fromTheCommandLine0123456789"  # what --push_to_hub uses when hub_token is None
    clean = json.dumps(redact({"notes": "hf_fromTheEnvironment0123456789 hf_fromTheCommandLine0123456789"}))
    assert "hf_from" not in clean  # both stay known as secrets


def test_git_state_is_what_git_says(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    (repo / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD").strip()
    assert len(head) == 40
    assert git_state(repo) == {"commit": head, "dirty": False}
    (repo / "untracked.txt").write_text("not part of the code\n")
    assert git_state(repo) == {"commit": head, "dirty": False}
    (repo / "a.txt").write_text("two\n")
    assert git_state(repo) == {"commit": head, "dirty": True}
    (tmp_path / "plain").mkdir()
    assert git_state(tmp_path / "plain") == {"commit": None, "dirty": None}


def refuse_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def test_results_json_is_strict_json_undefined_scores_are_null_with_the_reason(tmp_path):
    nan = float("nan")
    trainer = SimpleNamespace(state=SimpleNamespace(best_model_checkpoint=None))
    results = run_results(
        {"task": "spam"},
        trainer,
        dev={"eval_accuracy": 1.0, "eval_roc_auc": nan},
        test={"test_roc_auc": nan, "test_pearson": float("inf")},
        train={"loss": nan},
        history=[{"eval_loss": 0.5, "eval_roc_auc": nan, "epoch": 1.0}],
        code_state={},
    )
    path = tmp_path / "results.json"
    write_json(path, results)
    saved = json.loads(path.read_text(), parse_constant=refuse_constant)  # no NaN, Infinity
    assert saved["dev"] == {"accuracy": 1.0, "roc_auc": None}
    assert saved["test"] == {"roc_auc": None, "pearson": None} and saved["train"]["loss"] is None
    assert saved["dev_history"][0]["eval_roc_auc"] is None
    why = saved["undefined"]
    assert "one class" in why["test.roc_auc"] and "one class" in why["dev.roc_auc"]
    assert "constant" in why["test.pearson"] and why["train.loss"] and why["dev_history.0.eval_roc_auc"]


def test_write_json_never_writes_nan(tmp_path):
    write_json(tmp_path / "a.json", {"x": [1.0, float("nan")]})
    assert json.loads((tmp_path / "a.json").read_text(), parse_constant=refuse_constant) == {"x": [1.0, None]}
