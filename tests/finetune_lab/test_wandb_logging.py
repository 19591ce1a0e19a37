"""W&B conventions, read back from the offline runs with wandb's own reader (`wandb leet inspect`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_lab import wandb_logging
from finetune_lab.wandb_logging import data_summary, experiment_notes, wandb_tags
from tests.conftest import ROOT, wandb_inspect


def offline_run(tiny_runs: dict, task: str) -> tuple[Path, dict, list[dict]]:
    """(run folder, summary JSON, records) of the task's offline W&B run."""
    for run_dir in sorted((tiny_runs["wandb_dir"] / "wandb").glob("offline-run-*")):
        summary = json.loads(wandb_inspect(run_dir, "--summary", "--json"))
        if summary["tags"][0] == task:
            records = [json.loads(line) for line in wandb_inspect(run_dir, "--json").splitlines() if line.strip()]
            return run_dir, summary, records
    raise AssertionError(f"no offline W&B run for {task}")


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_offline_run_holds_the_expected_keys(tiny_runs, task):
    results = json.loads((tiny_runs[task] / "results.json").read_text())
    metric = results["main_metric"]
    _, run, records = offline_run(tiny_runs, task)
    summary = run["summary"]

    (header,) = [r["run"] for r in records if r.get("type") == "run"]
    assert header["run_group"] == task and header["job_type"] == "train"
    assert set(header["tags"]) >= {task, "seed7", "full-finetune", results["precision"]}
    assert run["config"]["main_metric"] == metric and run["config"]["seed"] == 7

    # every scalar dev/test metric under eval/<metric> and test/<metric>; the main one also under */main
    for split, prefix in (("dev", "eval"), ("test", "test")):
        for key, value in results[split].items():
            if isinstance(value, int | float):
                assert summary[f"{prefix}/{key}"] == pytest.approx(value), key
    assert summary["test/main"] == pytest.approx(results["test"][metric])
    history = [e[f"eval_{metric}"] for e in results["dev_history"]]
    best = max(history)
    assert summary["eval/main"] == {"max": pytest.approx(best)}  # define_metric(summary="max")
    assert summary["eval/main_best"] == pytest.approx(best)
    assert summary["eval/main_best_step"] == results["dev_history"][history.index(best)]["step"]
    metrics = {r["metric"]["name"]: r["metric"] for r in records if r.get("type") == "metric" and "name" in r["metric"]}
    assert metrics["eval/main"]["step_metric"] == "train/global_step"

    # data sizes and drops, speed, peak memory
    for split, count in results["data"]["kept"].items():
        assert summary[f"data/{split}/examples"] == count
    if task == "sentiment":
        assert summary["data/all/dropped"] == 37
    assert summary["train/samples_per_second"] == pytest.approx(results["train"]["samples_per_second"])
    assert summary["system/peak_memory_mb"] == results["train"]["peak_memory_mb"] > 0

    # tables: per-class (per entity type for NER) for dev and test; confusion matrix for classification
    assert summary["test/per_class_report"]["_type"] == "table-file"
    classes = {"ner": 4, "sentiment": 2}[task]  # entity types PER/ORG/LOC/MISC; negative/positive
    assert summary["test/per_class_report"]["nrows"] == classes
    has_confusion = "test/confusion_matrix_table" in summary
    assert has_confusion == (task == "sentiment")

    artifacts = [r["artifact"] for r in records if r.get("type") == "artifact" and r["artifact"]["type"] == "model"]
    if task == "sentiment":  # --wandb_log_model true: the best model, no checkpoints or pickles
        (model,) = artifacts
        files = {c["path"] for c in model["manifest"]["contents"]}
        assert {"model.safetensors", "config.json", "tokenizer.json", "results.json"} <= files
        assert not any(f.startswith("checkpoint") or f.endswith(".bin") for f in files)
        assert "best" in model["aliases"]
    else:  # off by default
        assert artifacts == []


def test_confusion_matrix_counts(tiny_runs):
    run_dir, summary, _ = offline_run(tiny_runs, "sentiment")
    table = json.loads((run_dir / "files" / summary["summary"]["test/confusion_matrix_table"]["path"]).read_text())
    results = json.loads((tiny_runs["sentiment"] / "results.json").read_text())
    columns = table["columns"]
    counts = {
        (row[columns.index("Actual")], row[columns.index("Predicted")]): row[columns.index("nPredictions")]
        for row in table["data"]
    }
    assert sum(counts.values()) == results["test"]["examples"]
    for label in results["labels"]:  # row sums are the class supports, the diagonal the true positives
        assert (
            sum(n for (actual, _), n in counts.items() if actual == label)
            == results["test"][f"per_class/{label}/support"]
        )
        recall = counts.get((label, label), 0) / results["test"][f"per_class/{label}/support"]
        assert recall == pytest.approx(results["test"][f"per_class/{label}/recall"])


def test_notes_come_from_the_experiment_file():
    assert experiment_notes(str(ROOT / "experiments/ner-quick.yaml")).startswith("Smoke variant: a few hundred")
    assert experiment_notes(None) is None and experiment_notes("missing.yaml") is None


def test_tags_and_data_summary():
    config = {"tags": ["ner", "bert", "fp32", "seed1"], "options": {"run": {}}}
    assert wandb_tags(config) == ["ner", "bert", "fp32", "seed1", "full-finetune"]
    assert wandb_tags({**config, "options": {"run": {"peft": "lora"}}})[-1] == "peft-lora"
    data = {"kept": {"train": 10}, "dropped": {"all": {"a": 2, "b": 3}}, "truncation": {"train": {"truncated": 1}}}
    assert data_summary(data) == {"data/train/examples": 10, "data/all/dropped": 5, "data/train/truncated": 1}


def test_no_key_means_offline_said_once(monkeypatch, capsys):
    assert wandb_logging.choose_wandb_mode() == "offline"
    assert wandb_logging.choose_wandb_mode() == "offline"
    out = capsys.readouterr().out
    assert out.count("W&B: no API key found, logging offline") == 1


def test_a_key_in_the_environment_or_netrc_means_online(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert wandb_logging.choose_wandb_mode() == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "p" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert wandb_logging.has_wandb_credentials()


def test_the_users_wandb_mode_wins(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_logging.choose_wandb_mode() == "disabled"


def test_wandb_that_cannot_start_online_falls_back_to_offline(monkeypatch, capsys, tmp_path):
    # A key, but the server is a closed local port: online start fails, the run goes on offline.
    monkeypatch.setenv("WANDB_API_KEY", "fake-wandb-key-0123456789abcdef01234567")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "15")
    run = wandb_logging.start_wandb("fallback", "sentiment", ["t"], {"lr": 1e-4})
    try:
        assert run is not None and run.settings.mode == "offline"
        run.log({"eval/accuracy": 0.5})
    finally:
        wandb_logging.finish(run)
    assert "falling back to offline logging" in capsys.readouterr().out
    assert len(list(tmp_path.glob("wandb/offline-run-*"))) == 1
