from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

from finetune_lab.families import align_labels_to_words, encode_texts
from finetune_lab.modeling import embedded_model_path

LABEL2ID = {"O": 0, "B-ORG": 1, "I-ORG": 2, "B-MISC": 3, "I-MISC": 4}
SENTENCE = {"tokens": [["EU", "rejects", "Germanyish", "call"]], "tags": [["B-ORG", "O", "B-MISC", "O"]]}


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(embedded_model_path())


def pieces(tokenizer, encoded):
    return tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])


def test_first_subword_gets_the_label_the_rest_minus_100(tokenizer):
    encoded = align_labels_to_words(SENTENCE, tokenizer, LABEL2ID, max_length=32)
    assert pieces(tokenizer, encoded) == ["[CLS]", "eu", "rejects", "germany", "##ish", "call", "[SEP]"]
    assert encoded["labels"][0] == [-100, 1, 0, 3, -100, 0, -100]
    assert encoded["words_lost"] == [0] and encoded["truncated"] == [0]


def test_label_all_tokens_turns_b_into_i_on_later_pieces(tokenizer):
    encoded = align_labels_to_words(SENTENCE, tokenizer, LABEL2ID, max_length=32, label_all_tokens=True)
    assert encoded["labels"][0] == [-100, 1, 0, 3, 4, 0, -100]


def test_truncation_counts_lost_words(tokenizer):
    encoded = align_labels_to_words(SENTENCE, tokenizer, LABEL2ID, max_length=4)
    assert pieces(tokenizer, encoded) == ["[CLS]", "eu", "rejects", "[SEP]"]
    assert encoded["words_lost"] == [2] and encoded["truncated"] == [1]


def test_text_truncation_is_flagged(tokenizer):
    batch = {"text": ["one two three four five six", "short"], "label": ["pos", "neg"]}
    encoded = encode_texts(batch, tokenizer, {"neg": 0, "pos": 1}, max_length=5)
    assert encoded["truncated"] == [1, 0]
    assert encoded["labels"] == [1, 0]
    assert len(encoded["input_ids"][0]) == 5


def test_load_prefers_files_over_hub_over_embedded(tmp_path):
    from tasks.sentiment import MovieReviewSentiment

    (tmp_path / "t.csv").write_text("text,label\ngood,positive\nbad,negative\n")
    args = SimpleNamespace(
        train_file=str(tmp_path / "t.csv"),
        validation_file=str(tmp_path / "t.csv"),
        test_file=None,
        dataset_name=None,
        text_column_name=None,
    )
    data = MovieReviewSentiment().load(args)
    assert set(data.splits) == {"train", "validation"}
    assert data.report.kept == {"train": 2, "validation": 2}
    assert data.report.source.startswith("files: ")
    assert data.label_names == ("negative", "positive")


def test_settling_the_labels_makes_a_new_task_and_leaves_the_declared_one():
    from tasks.intent import IntentOptions, TrecIntent

    declared = TrecIntent(IntentOptions(label_granularity="fine"))
    settled = declared.with_labels(["NUM:date", "HUM:ind"])
    assert settled.label2id == {"NUM:date": 0, "HUM:ind": 1} and settled.options is declared.options
    assert declared.label_names == TrecIntent.label_names  # untouched


def test_duplicate_label_names_are_rejected():
    from finetune_lab.errors import UsageError
    from tasks.sentiment import MovieReviewSentiment

    with pytest.raises(UsageError, match="each label must be named once"):
        MovieReviewSentiment(label_names=["negative", "positive", "negative"])


def test_the_family_scores_a_binary_task_on_its_positive_class():
    import numpy as np
    from transformers import EvalPrediction

    from tasks.sentiment import MovieReviewSentiment
    from tasks.spam import SmsSpam

    logits = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0], [2.0, 0.0]])
    labels = np.array([0, 1, 0, 1])
    spam = SmsSpam().compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert spam["precision"] == 0.5 and spam["recall"] == 0.5 and "roc_auc" in spam
    assert "roc_auc" not in MovieReviewSentiment().compute_metrics(EvalPrediction(logits, labels))
