from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

from finetune_lab.modeling import embedded_model_path
from finetune_lab.task import align_labels_to_words, encode_texts, stratified_split

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


def test_stratified_split_is_fixed_and_keeps_proportions():
    rows = [{"text": str(i), "label": "a" if i % 4 else "b"} for i in range(400)]
    first, second = stratified_split(rows, "label", 42), stratified_split(rows, "label", 42)
    assert first == second
    assert [len(first[s]) for s in ("train", "validation", "test")] == [320, 40, 40]
    assert sum(r["label"] == "b" for r in first["test"]) == 10  # 25% of 40
    seen = [r["text"] for split in first.values() for r in split]
    assert sorted(seen) == sorted(r["text"] for r in rows)  # nothing lost, nothing duplicated


def test_load_prefers_files_over_hub_over_embedded(tmp_path):
    from tasks.sentiment import MovieReviewSentiment

    (tmp_path / "t.csv").write_text("text,label\ngood,positive\nbad,negative\n")
    args = SimpleNamespace(
        train_file=str(tmp_path / "t.csv"),
        validation_file=str(tmp_path / "t.csv"),
        test_file=None,
        dataset_name=None,
        text_column=None,
    )
    splits, report = MovieReviewSentiment().load(args)
    assert set(splits) == {"train", "validation"}
    assert report.kept == {"train": 2, "validation": 2}
    assert report.source.startswith("files: ")
