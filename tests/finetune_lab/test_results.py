import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from finetune_lab.results import REDACTED, environment, redact, run_results, write_json
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
