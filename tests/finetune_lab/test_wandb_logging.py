"""W&B conventions, read back from the offline runs with wandb's own reader (`wandb leet inspect`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from finetune_lab import wandb_logging
from finetune_lab.results import seed_group
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
    assert header["run_group"].startswith(f"{task} · ") and header["job_type"] == "train"
    assert set(header["tags"]) >= {task, "seed7", "full-finetune", results["precision"], "embedded"}
    assert run["config"]["main_metric"] == metric and run["config"]["seed"] == 7

    # the kept model's final dev scores under eval/best_<metric>, test under test/<metric>; main also */main
    for split, prefix in (("dev", "eval/best_"), ("test", "test/")):
        for key, value in results[split].items():
            if isinstance(value, int | float) and key != "epoch":
                assert summary[f"{prefix}{key}"] == pytest.approx(value), key
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
        assert summary[f"data/{split}/loaded"] == count
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
    if task == "sentiment":  # --wandb_log_model true and WANDB_LOG_MODEL=end: the best model, once
        (model,) = artifacts
        files = {c["path"] for c in model["manifest"]["contents"]}
        assert {"model.safetensors", "config.json", "tokenizer.json", "results.json", "README.md"} <= files
        assert not any(f.startswith("checkpoint") or f.endswith(".bin") for f in files)
        assert "best" in model["aliases"]
    else:  # off by default
        assert artifacts == []


def history(records: list[dict], key: str) -> list[dict]:
    """The logged points (history rows) that hold `key`."""
    rows = [r["history"]["item"] for r in records if r.get("type") == "history"]
    return [row for row in rows if key in row]


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_data_counts_are_after_the_sample_limits(tiny_runs, task):
    results = json.loads((tiny_runs[task] / "results.json").read_text())
    summary = offline_run(tiny_runs, task)[1]["summary"]
    limits = {"ner": (160, 40, 30), "sentiment": (240, 60, 50)}[task]
    for split, limit in zip(("train", "validation", "test"), limits, strict=True):
        assert results["data"]["used"][split] == summary[f"data/{split}/examples"] == limit
        assert summary[f"data/{split}/loaded"] == results["data"]["kept"][split] > limit  # before the limits


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_the_final_evaluation_is_in_the_summary_not_on_the_curves(tiny_runs, task):
    results = json.loads((tiny_runs[task] / "results.json").read_text())
    metric = results["main_metric"]
    _, run, records = offline_run(tiny_runs, task)
    epochs = results["dev_history"]  # one evaluation per epoch during training
    for key in (f"eval/{metric}", "eval/loss", "eval/main"):
        points = history(records, key)
        assert [p["train/global_step"] for p in points] == [e["step"] for e in epochs], key
    assert [p[f"eval/{metric}"] for p in history(records, f"eval/{metric}")] == [e[f"eval_{metric}"] for e in epochs]
    assert history(records, f"test/{metric}") == []  # test scores: summary only
    assert run["summary"][f"eval/{metric}"] == pytest.approx(epochs[-1][f"eval_{metric}"])  # the curve's last point
    assert run["summary"][f"eval/best_{metric}"] == pytest.approx(results["dev"][metric])


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_the_loss_curve_and_the_mean_loss_have_their_own_keys(tiny_runs, task):
    results = json.loads((tiny_runs[task] / "results.json").read_text())
    _, run, records = offline_run(tiny_runs, task)
    curve = [p["train/loss"] for p in history(records, "train/loss")]
    assert curve == pytest.approx([e["loss"] for e in results["train_history"]]) and len(curve) >= 2
    assert run["summary"]["train/loss"] == pytest.approx(curve[-1])  # the curve's last point, not overwritten
    assert run["summary"]["train/mean_loss"] == pytest.approx(results["train"]["loss"])
    assert results["train"]["loss"] != pytest.approx(curve[-1])


def test_experiment_data_and_seed_group_in_config_tags_name_and_group(tiny_runs):
    from finetune_lab.compare import load_runs

    groups = set()
    for task in ("ner", "sentiment"):
        results = json.loads((tiny_runs[task] / "results.json").read_text())
        _, run, records = offline_run(tiny_runs, task)
        config, (header,) = run["config"], [r["run"] for r in records if r.get("type") == "run"]
        experiment = "tiny-ner" if task == "ner" else None
        assert config["experiment_name"] == results["experiment_name"] == experiment
        assert config["data_source"] == results["data_source"] == "embedded"
        assert config["seed_group"] == results["seed_group"] == seed_group(results)
        assert ("tiny-ner" in header["tags"]) == (task == "ner") and "embedded" in header["tags"]
        assert header["display_name"] == " · ".join(filter(None, [results["run_name"], experiment, "embedded"]))
        assert header["run_group"] == " · ".join(filter(None, [task, experiment, "embedded", results["seed_group"]]))
        groups.add(header["run_group"])
    assert len(groups) == 2
    # make compare's grouping key is the one the seed group digests
    runs, _ = load_runs(tiny_runs["wandb_dir"] / "outputs")
    for row in runs.itertuples():
        saved = json.loads(Path(row.path).read_text())
        assert saved["seed_group"] == hashlib.sha256(row.experiment.encode()).hexdigest()[:12]


def test_seeds_share_a_seed_group_and_other_options_do_not(tiny_runs):
    results = json.loads((tiny_runs["ner"] / "results.json").read_text())
    other_seed = {**results, "seed": 8, "run_name": "x", "tags": ["ner", "seed8"], "options": {**results["options"]}}
    other_seed["options"]["training"] = {**results["options"]["training"], "seed": 8, "output_dir": "elsewhere"}
    assert seed_group(other_seed) == seed_group(results)
    other_lr = {**results, "options": {**results["options"]}}
    other_lr["options"]["training"] = {**results["options"]["training"], "learning_rate": 1e-4}
    assert seed_group(other_lr) != seed_group(results)


def test_project_and_entity_are_honoured(tiny_runs):
    for task, project, entity in (("ner", "lab-tests", "team-x"), ("sentiment", "finetune-lab", None)):
        _, run, records = offline_run(tiny_runs, task)
        (header,) = [r["run"] for r in records if r.get("type") == "run"]
        assert (run["project"], header["project"]) == (project, project)
        if entity:
            assert header["entity"] == entity


def test_wandb_project_comes_from_the_option_then_the_environment(monkeypatch):
    from finetune_lab.arguments import parse_arguments

    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    assert parse_arguments(["--task", "ner"]).training.project == "finetune-lab"
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    assert parse_arguments(["--task", "ner"]).training.project == "from-env"
    assert parse_arguments(["--task", "ner", "--project", "from-option"]).training.project == "from-option"


@pytest.mark.parametrize(
    "flag, env, report_to, wanted",
    [
        (False, None, ["wandb"], False),
        (True, None, ["wandb"], True),
        (False, "end", ["wandb"], True),
        (True, "END", ["wandb"], True),
        (False, "false", ["wandb"], False),
        (False, "end", [], False),  # a WANDB_LOG_MODEL left in the shell, with W&B off for this run
    ],
)
def test_model_upload_one_switch_two_spellings(monkeypatch, flag, env, report_to, wanted):
    if env is not None:
        monkeypatch.setenv("WANDB_LOG_MODEL", env)
    assert wandb_logging.model_upload(flag, report_to) is wanted


@pytest.mark.parametrize(
    "flag, env, report_to, message",
    [
        (False, "checkpoint", ["wandb"], "WANDB_LOG_MODEL=checkpoint: run.py uploads the best model once"),
        (False, "true", ["wandb"], "WANDB_LOG_MODEL=true: run.py uploads the best model once"),
        (True, None, [], "--wandb_log_model true uploads to W&B, but --report_to has no wandb"),
    ],
)
def test_model_upload_refuses_what_it_would_not_do(monkeypatch, flag, env, report_to, message):
    from finetune_lab.errors import UsageError

    if env is not None:
        monkeypatch.setenv("WANDB_LOG_MODEL", env)
    with pytest.raises(UsageError, match=re.escape(message)):
        wandb_logging.model_upload(flag, report_to)


def test_trainers_own_callback_is_built_with_uploads_off(monkeypatch):
    from transformers.integrations import WandbCallback
    from transformers.integrations.integration_utils import WandbLogModel

    monkeypatch.setenv("WANDB_LOG_MODEL", "end")
    with wandb_logging.trainer_uploads_no_model():
        assert WandbCallback()._log_model == WandbLogModel.FALSE
    assert os.environ["WANDB_LOG_MODEL"] == "end"


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
    assert experiment_notes(str(ROOT / "experiments/ner-quick.yaml")).startswith("Quick variant: 3,000 CoNLL sentences")
    assert experiment_notes(None) is None and experiment_notes("missing.yaml") is None


def test_tags_and_data_summary():
    config = {"tags": ["ner", "bert", "fp32", "seed1"], "options": {"run": {}}}
    assert wandb_tags(config) == ["ner", "bert", "fp32", "seed1", "full-finetune"]
    assert wandb_tags({**config, "options": {"run": {"peft": "lora"}}})[-1] == "peft-lora"
    data = {
        "kept": {"train": 10},
        "used": {"train": 4},
        "dropped": {"all": {"a": 2, "b": 3}},
        "truncation": {"train": {"truncated": 1}},
    }
    assert data_summary(data) == {
        "data/train/examples": 4,
        "data/train/loaded": 10,
        "data/all/dropped": 5,
        "data/train/truncated": 1,
    }


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
    run = wandb_logging.start_wandb({"run_name": "fallback", "task": "sentiment", "tags": ["t"]}, "finetune-lab")
    try:
        assert run is not None and run.settings.mode == "offline"
        run.log({"eval/accuracy": 0.5})
    finally:
        wandb_logging.finish(run)
    assert "falling back to offline logging" in capsys.readouterr().out
    assert len(list(tmp_path.glob("wandb/offline-run-*"))) == 1
