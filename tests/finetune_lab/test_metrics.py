import numpy as np
import pytest

from finetune_lab.metrics import (
    chance_level_note,
    classification_metrics,
    constant_prediction_scores,
    entity_metrics,
    format_report,
    per_class_rows,
)


def test_entity_metrics_match_hand_computed_values():
    true = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"]]
    m = entity_metrics(true, pred)
    # entities: true {PER 0-1, LOC 3}, predicted {PER 0-1, ORG 3}: 1 of 2 right each way
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    assert m["token_accuracy"] == pytest.approx(3 / 4)
    rows = per_class_rows(m)
    assert rows["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert rows["LOC"]["recall"] == 0.0 and rows["LOC"]["support"] == 1
    assert rows["ORG"]["precision"] == 0.0 and rows["ORG"]["support"] == 0


def test_entity_metrics_count_a_split_entity_as_wrong():
    # I-PER after O starts a new entity in conlleval's default mode: PER 0-1 vs PER 0 + PER 2
    m = entity_metrics([["B-PER", "I-PER", "O"]], [["B-PER", "O", "I-PER"]])
    assert m["precision"] == pytest.approx(0.0)
    assert m["recall"] == pytest.approx(0.0)


def test_classification_metrics_match_hand_computed_values():
    labels = np.array([0, 0, 1, 1, 1])
    preds = np.array([0, 1, 1, 1, 0])
    m = classification_metrics(labels, preds, ["neg", "pos"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    rows = per_class_rows(m)
    assert rows["neg"]["precision"] == pytest.approx(0.5)
    assert rows["neg"]["recall"] == pytest.approx(0.5)
    assert rows["pos"]["precision"] == pytest.approx(2 / 3)
    assert rows["pos"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert rows["pos"]["support"] == 3


def test_report_table_lists_every_class_with_its_numbers():
    m = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), ["neg", "pos"])
    table = format_report({f"eval_{k}": v for k, v in m.items()}, "eval_", title="dev")
    lines = table.splitlines()
    assert lines[0] == "dev"
    neg = next(line for line in lines if line.startswith("neg"))
    assert neg.split()[1:] == ["0.5000", "1.0000", "0.6667", "1"]
    assert any(line.startswith("accuracy") and line.split()[1] == "0.6667" for line in lines)


def test_binary_metrics_match_hand_computed_values():
    from finetune_lab.metrics import binary_metrics

    labels = np.array([0, 0, 1, 1, 1])
    predictions = np.array([0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.6, 0.8, 0.4, 0.7])
    m = binary_metrics(labels, predictions, scores, ["ham", "spam"])
    # spam: 2 true positives, 1 false positive, 1 false negative
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(3 / 5)
    # positive/negative score pairs ranked correctly: (0.8,0.4,0.7) vs (0.1,0.6): 5 of 6
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert np.isnan(binary_metrics(np.array([1, 1]), np.array([1, 0]), np.array([0.9, 0.2]), ["a", "b"])["roc_auc"])


def test_regression_metrics_match_hand_computed_values():
    from finetune_lab.metrics import regression_metrics

    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([[1.5], [2.0], [2.0]]))
    assert m["mse"] == pytest.approx((0.25 + 0 + 1) / 3) and m["mae"] == pytest.approx(1.5 / 3)
    # pearson of (1,2,3) and (1.5,2,2): cov 0.25/var... = 0.8660; spearman with a tie: 0.8660
    assert m["pearson"] == pytest.approx(np.sqrt(3) / 2) and m["spearman"] == pytest.approx(np.sqrt(3) / 2)
    assert np.isnan(regression_metrics(np.array([1.0, 2.0]), np.array([0.5, 0.5]))["pearson"])


def test_macro_average_skips_classes_neither_present_nor_predicted():
    m = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), ["a", "b", "never"])
    # a: P 1/2 R 1 F 2/3; b: P 1 R 1/2 F 2/3; 'never' takes no part in the average
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert per_class_rows(m)["never"]["support"] == 0


@pytest.mark.parametrize(
    "metric, explicit, expected",
    [
        ("f1", None, True),
        ("accuracy", None, True),
        ("pearson", None, True),
        ("loss", None, False),
        ("eval_loss", None, False),
        ("mse", None, False),
        ("test_mae", None, False),
        ("loss", True, True),  # the run's own greater_is_better wins
        ("f1", False, False),
    ],
)
def test_greater_is_better(metric, explicit, expected):
    from finetune_lab.metrics import greater_is_better

    assert greater_is_better(metric, explicit) is expected


# --- chance level: "the model has not learned yet" ---------------------------------------------


def chance_note(task_class, label_ids: np.ndarray, metric: str, score: float):
    from types import SimpleNamespace

    return chance_level_note(task_class(), SimpleNamespace(label_ids=label_ids), metric, score)


def test_all_O_ner_is_chance_level_and_a_learned_score_is_not():
    from tasks.ner import ConllNer

    o, b_per, i_per = (ConllNer.label_names.index(tag) for tag in ("O", "B-PER", "I-PER"))
    gold = np.array([[o, b_per, i_per, o, -100], [b_per, o, o, o, o]])
    majority, scores = constant_prediction_scores(ConllNer().compute_metrics, gold, len(ConllNer.label_names))
    assert ConllNer.label_names[majority] == "O" and scores["f1"] == 0.0
    note = chance_note(ConllNer, gold, "f1", 0.0)
    assert "chance level" in note and "always predicting 'O' scores 0.0000" in note and "--num_train_epochs" in note
    assert chance_note(ConllNer, gold, "f1", 0.5) is None


def test_accuracy_near_the_majority_share_is_chance_level():
    from tasks.sentiment import MovieReviewSentiment

    gold = np.array([1] * 7 + [0] * 3)
    assert chance_note(MovieReviewSentiment, gold, "accuracy", 0.71) is not None  # majority share 0.7
    assert chance_note(MovieReviewSentiment, gold, "accuracy", 0.75) is None
    assert chance_note(MovieReviewSentiment, gold, "loss", 0.7) is None  # not a higher-is-better score


def test_regression_has_no_chance_level():
    assert constant_prediction_scores(lambda p: {"pearson": 0.0}, np.array([0.5, 1.5]), 1) is None
