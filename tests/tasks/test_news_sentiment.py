from collections import Counter

import pytest

from finetune_lab.arguments import parse_arguments
from finetune_lab.errors import UsageError
from finetune_lab.readers import DataReport
from tasks.news_sentiment import NewsRating, NewsSentiment, rating_class


def test_documented_cut_points():
    assert [rating_class(r) for r in (-0.55, -0.5, 0.0, 0.5, 0.55)] == [
        "negative", "neutral", "neutral", "neutral", "positive",
    ]  # fmt: skip


def test_embedded_nyt_snippets_thresholded_and_as_ratings_share_the_split():
    classes = NewsSentiment().load_embedded(DataReport())
    scores = NewsRating().load_embedded(DataReport())
    assert {k: len(v) for k, v in classes.items()} == {"train": 4152, "validation": 519, "test": 519}
    assert Counter(r["label"] for part in classes.values() for r in part) == {
        "negative": 1688, "neutral": 2402, "positive": 1100,
    }  # fmt: skip
    for split in classes:
        for c, s in zip(classes[split], scores[split], strict=True):
            assert c["text"] == s["text"] and isinstance(s["label"], float) and rating_class(s["label"]) == c["label"]
    first = scores["train"][0]
    assert first == {"text": classes["train"][0]["text"], "label": 0.3}


def test_the_rating_task_has_a_regression_head_labels_and_main_metric():
    args = parse_arguments(["--task", "news-rating"])
    assert args.training.metric_for_best_model == "pearson" and args.training.greater_is_better is True
    assert args.task.label_names == ("rating",) and args.task.model_config_overrides() == {"problem_type": "regression"}
    # the command line still wins over the task's default
    args = parse_arguments(["--task", "news-rating", "--metric_for_best_model", "spearman"])
    assert args.training.metric_for_best_model == "spearman"
    assert parse_arguments(["--task", "news-sentiment"]).training.metric_for_best_model == "macro_f1"
    with pytest.raises(UsageError, match="--labels does not apply"):
        parse_arguments(["--task", "news-rating", "--labels", "a", "b"])
    with pytest.raises(UsageError, match="unknown option --as_regression"):  # the old switch is gone, loudly
        parse_arguments(["--task", "news-sentiment", "--as_regression"])


def test_regression_local_file_needs_numeric_labels(tmp_path):
    from types import SimpleNamespace

    good, bad = tmp_path / "train.csv", tmp_path / "dev.csv"
    good.write_text("text,label\nfine day,1.5\nbad day,-2\n", encoding="utf-8")
    bad.write_text("text,label\nfine day,positive\n", encoding="utf-8")
    task = NewsRating()
    data, report = SimpleNamespace(text_column_name=None), DataReport()
    expected = [{"text": "fine day", "label": 1.5}, {"text": "bad day", "label": -2.0}]
    assert task.read_file(good, data, report, "train") == expected
    with pytest.raises(UsageError, match=r"dev\.csv:2: label 'positive' is not a number"):
        task.read_file(bad, data, report, "validation")
