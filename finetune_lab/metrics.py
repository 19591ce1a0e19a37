"""Metrics, one function per family, shared by every task.

Entity-level scores come from seqeval (the conlleval definition: micro-averaged over entities);
classification scores from scikit-learn. Per-class numbers are returned flat, as
`per_class/<name>/<stat>`, so Trainer can log them and `format_report` can print them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from seqeval.metrics import classification_report as seqeval_report
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    roc_auc_score,
)
from transformers import EvalPrediction

from finetune_lab import tables

PER_CLASS = "per_class/"
STATS = ("precision", "recall", "f1", "support")
# Metrics where a smaller value means a better model: losses, regression errors, perplexity.
LOWER_IS_BETTER_SUFFIXES = ("loss", "mse", "mae", "rmse", "perplexity")


def greater_is_better(metric: str, explicit: bool | None = None) -> bool:
    """Whether a higher `metric` means a better model: the one rule for leaderboards and trackers.

    `explicit` (TrainingArguments.greater_is_better, as a run stores it) wins when set; otherwise
    every metric is higher-is-better except loss-like ones (`eval_loss`, `mse`, `test_mae`, ...).
    """
    if explicit is not None:
        return bool(explicit)
    return not metric.endswith(LOWER_IS_BETTER_SUFFIXES)


def entity_metrics(true_tags: list[list[str]], pred_tags: list[list[str]]) -> dict[str, float]:
    """seqeval micro P/R/F1 over entities, per entity type, and token accuracy."""
    report = seqeval_report(true_tags, pred_tags, output_dict=True, zero_division=0)
    micro = report.pop("micro avg")
    flat_true = [tag for sentence in true_tags for tag in sentence]
    flat_pred = [tag for sentence in pred_tags for tag in sentence]
    correct = sum(t == p for t, p in zip(flat_true, flat_pred, strict=True))
    metrics = {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "token_accuracy": correct / max(len(flat_true), 1),
        "examples": len(true_tags),
    }
    for name, row in report.items():
        if name.endswith(" avg"):
            continue
        metrics.update(_per_class(name, row["precision"], row["recall"], row["f1-score"], row["support"]))
    return metrics


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, names: Sequence[str]) -> dict:
    """Accuracy, macro and per-class P/R/F1 with support, for integer class ids.

    Macro averages run over the classes that occur in the labels or the predictions (sklearn's
    default): with 50 fine intent classes a small dev set lacks some, and a class that is neither
    present nor predicted says nothing about the model. Per-class rows cover every class.
    """
    ids = list(range(len(names)))
    p, r, f, s = precision_recall_fscore_support(labels, predictions, labels=ids, zero_division=0)
    seen = sorted(set(np.asarray(labels).tolist()) | set(np.asarray(predictions).tolist()))
    mp, mr, mf, _ = precision_recall_fscore_support(labels, predictions, labels=seen, average="macro", zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(mf),
        "macro_precision": float(mp),
        "macro_recall": float(mr),
        "examples": len(labels),
    }
    for i, name in enumerate(names):
        metrics.update(_per_class(name, p[i], r[i], f[i], s[i]))
    return metrics


def binary_metrics(labels: np.ndarray, predictions: np.ndarray, scores: np.ndarray, names: Sequence[str]) -> dict:
    """Classification metrics plus P/R/F1 of the positive class (`names[1]`) and ROC-AUC of `scores`.

    `scores` are the model's probabilities of the positive class; ROC-AUC is undefined (NaN) when
    the labels hold one class only.
    """
    metrics = classification_metrics(labels, predictions, names)
    p, r, f, _ = precision_recall_fscore_support(labels, predictions, labels=[1], zero_division=0)
    both_classes = len(set(np.asarray(labels).tolist())) == 2
    metrics.update(
        precision=float(p[0]),
        recall=float(r[0]),
        f1=float(f[0]),
        roc_auc=float(roc_auc_score(labels, scores)) if both_classes else float("nan"),
    )
    return metrics


def regression_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """MSE, MAE, Pearson and Spearman correlation of predicted vs. true scores."""
    labels, predictions = np.asarray(labels, dtype=float).ravel(), np.asarray(predictions, dtype=float).ravel()
    constant = np.ptp(predictions) == 0 or np.ptp(labels) == 0  # correlation undefined, not an error
    return {
        "mse": float(mean_squared_error(labels, predictions)),
        "mae": float(mean_absolute_error(labels, predictions)),
        "pearson": float("nan") if constant else float(pearsonr(labels, predictions)[0]),
        "spearman": float("nan") if constant else float(spearmanr(labels, predictions)[0]),
        "examples": len(labels),
    }


def _per_class(name: str, precision: float, recall: float, f1: float, support: float) -> dict[str, float]:
    values = (float(precision), float(recall), float(f1), int(support))
    return {f"{PER_CLASS}{name}/{stat}": value for stat, value in zip(STATS, values, strict=True)}


def per_class_rows(metrics: dict, prefix: str = "") -> dict[str, dict[str, float]]:
    """{class: {stat: value}} recovered from flat metric keys (with an optional 'eval_' prefix)."""
    rows: dict[str, dict[str, float]] = {}
    start = f"{prefix}{PER_CLASS}"
    for key, value in metrics.items():
        if key.startswith(start):
            name, stat = key[len(start) :].rsplit("/", 1)
            rows.setdefault(name, {})[stat] = value
    return rows


def format_report(metrics: dict, prefix: str = "", title: str = "") -> str:
    """The per-class report as a fixed-width table, like sklearn's classification_report."""
    rows = per_class_rows(metrics, prefix)
    if not rows:
        return ""
    table = [
        [name, *(f"{row.get(stat, 0):.4f}" for stat in ("precision", "recall", "f1")), str(int(row.get("support", 0)))]
        for name, row in rows.items()
    ]
    summary = {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix) and "/" not in k}
    for key in ("precision", "recall", "f1", "token_accuracy", "accuracy", "macro_f1", "roc_auc"):
        if key in summary:
            table.append([key, f"{summary[key]:.4f}"])  # overall numbers under the classes, one per line
    text = tables.render(["", *STATS], table, align="lrrrr")
    return f"{title}\n{text}" if title else text


# What a model that learned nothing scores: within this margin of it, a run is "at chance level".
CHANCE_MARGIN = 0.02


def constant_prediction_scores(
    compute_metrics: Callable[[EvalPrediction], dict], label_ids: np.ndarray, num_labels: int
) -> tuple[int, dict] | None:
    """The most frequent gold label of a set and the scores of predicting it everywhere (None: regression).

    Scored with the task's own `compute_metrics`, so the bar fits every metric: 0 entity F1 for
    all-`O` NER, the majority share for accuracy, 0 F1 of spam for always-ham.
    """
    gold = np.asarray(label_ids)
    if not np.issubdtype(gold.dtype, np.integer) or num_labels < 2:
        return None
    valid = gold[gold != -100]
    if valid.size == 0:
        return None
    majority = int(np.bincount(valid, minlength=num_labels).argmax())
    logits = np.zeros((*gold.shape, num_labels), dtype=np.float32)
    logits[..., majority] = 1.0
    return majority, compute_metrics(EvalPrediction(predictions=logits, label_ids=gold))


def chance_level_note(task: Any, output: Any, metric: str, score: float | None, split: str = "test") -> str | None:
    """A one-line warning when `score` (of `output`, a Trainer prediction) is no better than always
    predicting the most frequent label; None when it is, or when that is undefined (regression)."""
    constant = constant_prediction_scores(task.compute_metrics, output.label_ids, len(task.label_names))
    if score is None or constant is None or not greater_is_better(metric):
        return None
    majority, scores = constant
    chance = scores.get(metric)
    if chance is None or score > chance + CHANCE_MARGIN:
        return None
    return (
        f"{split} {metric} {score:.4f} is at chance level (always predicting '{task.label_names[majority]}' "
        f"scores {chance:.4f}): the model has not learned yet; train longer (more --num_train_epochs or "
        "--max_train_samples) or try another --learning_rate"
    )
