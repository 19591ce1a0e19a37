"""Each new task end to end: run.py on a tiny model and a few hundred examples, results.json checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoTokenizer

from run import main
from tasks import available_tasks

QUICK = [
    "--num_train_epochs",
    "1",
    "--per_device_train_batch_size",
    "16",
    "--learning_rate",
    "5e-3",
    "--disable_tqdm",
    "true",
    "--logging_steps",
    "5",
    "--report_to",
    "none",
    "--max_train_samples",
    "200",
    "--max_eval_samples",
    "60",
    "--max_test_samples",
    "60",
]
# A from-scratch Chinese BERT as small as the English fixture: 2 layers, 32 wide.
TINY_SCRATCH = ["--scratch_hidden_size", "32", "--scratch_layers", "2", "--scratch_heads", "2"]


def test_the_registry_lists_every_task():
    assert available_tasks() == sorted(
        ["ner", "sentiment", "spam", "intent", "opinion", "news-sentiment", "news-rating", "ner-zh", "sentiment-zh"]
    )


def run_task(*args: str) -> dict:
    results = main([*args, *QUICK])
    saved = json.loads((Path(results["output_dir"]) / "results.json").read_text())
    assert saved["test"]["examples"] == 60 and saved["dev"]["examples"] == 60
    return saved


@pytest.mark.parametrize(
    ("task", "extra", "keys"),
    [
        ("spam", [], {"f1", "precision", "recall", "accuracy", "roc_auc", "per_class/spam/f1"}),
        ("intent", [], {"macro_f1", "accuracy", "per_class/HUM/f1"}),
        ("opinion", ["--min_confidence", "0.6"], {"macro_f1", "accuracy", "per_class/neutral/f1"}),
        ("news-sentiment", [], {"macro_f1", "accuracy", "per_class/neutral/f1"}),
    ],
)
def test_english_task_end_to_end(tiny_model_dir, task, extra, keys):
    saved = run_task("--task", task, "--model_name_or_path", str(tiny_model_dir), *extra)
    assert set(saved["test"]) >= keys
    assert 0 <= saved["test"][saved["main_metric"]] <= 1
    assert saved["model_from_scratch"] is False
    assert sum(saved["data"]["kept"].values()) > 0
    if task == "spam":  # ROC-AUC from the softmax scores of the spam class; the repair is reported
        assert saved["main_metric"] == "f1" and 0 <= saved["test"]["roc_auc"] <= 1
        assert saved["data"]["repaired"] == {"all": {"messages recovered from inside other rows": 737}}


def test_intent_fine_granularity_has_50_labels(tiny_model_dir):
    saved = run_task("--task", "intent", "--label_granularity", "fine", "--model_name_or_path", str(tiny_model_dir))
    assert len(saved["labels"]) == 50 and "HUM:ind" in saved["labels"]
    assert saved["options"]["task"] == {"label_granularity": "fine"}


def test_news_sentiment_regression_end_to_end(tiny_model_dir):
    saved = run_task("--task", "news-rating", "--model_name_or_path", str(tiny_model_dir))
    assert saved["main_metric"] == "pearson"
    assert set(saved["test"]) >= {"mse", "mae", "pearson", "spearman"}
    assert saved["test"]["mse"] >= 0 and saved["test"]["mae"] >= 0
    pearson = saved["test"]["pearson"]
    if pearson is None:  # undefined (constant predictions): null in results.json, and why
        assert "constant" in saved["undefined"]["test.pearson"]
    else:
        assert -1 <= pearson <= 1
    config = AutoConfig.from_pretrained(saved["output_dir"])
    assert config.num_labels == 1 and config.problem_type == "regression"


@pytest.mark.parametrize(("task", "metric"), [("ner-zh", "f1"), ("sentiment-zh", "accuracy")])
def test_chinese_task_falls_back_to_a_from_scratch_model_offline(task, metric, capsys):
    # No --model_name_or_path: the default bert-base-chinese cannot load offline (HF_HUB_OFFLINE=1).
    saved = run_task("--task", task, *TINY_SCRATCH)
    assert "falling back to a small BERT" in capsys.readouterr().err
    assert saved["model_from_scratch"] is True
    assert saved["model"].startswith("from scratch: BERT 2 layers x 32")
    assert saved["main_metric"] == metric and 0 <= saved["test"][metric] <= 1
    config = AutoConfig.from_pretrained(saved["output_dir"])
    assert config.hidden_size == 32 and config.vocab_size > 1000  # a character vocabulary, not MiniLM's
    # the saved tokenizer knows the common characters: few [UNK]s in real text
    tokenizer = AutoTokenizer.from_pretrained(saved["output_dir"])
    assert tokenizer.tokenize("中国人民银行在北京") == list("中国人民银行在北京")
