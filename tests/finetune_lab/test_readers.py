import json

import pytest

from finetune_lab.errors import UsageError
from finetune_lab.readers import DataReport, read_conll, read_text_file, read_token_file

LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_conll_reads_sentences_and_skips_docstart(tmp_path):
    f = write(
        tmp_path / "a.txt",
        "-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nlives VBZ O O\n\nParis NNP O B-LOC\n",
    )
    assert read_conll(f, LABELS) == [
        {"tokens": ["John", "lives"], "tags": ["B-PER", "O"]},
        {"tokens": ["Paris"], "tags": ["B-LOC"]},
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("John B-PER\nlives\n", "a.txt:2: expected 'TOKEN ... TAG'"),
        ("John B-PER\nParis B-CITY\n", "a.txt:2: tag 'B-CITY' is not in the label set"),
        ("", "a.txt: no sentences found"),
        (b"John B-PER\n\xff\xfe O\n", "a.txt:2: not valid UTF-8"),
    ],
)
def test_conll_errors_name_file_and_line(tmp_path, content, message):
    f = write(tmp_path / "a.txt", content)
    with pytest.raises(UsageError, match=message.replace(".", r"\.").replace("'", "'")):
        read_conll(f, LABELS)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="data file not found: .*nope.txt"):
        read_conll(tmp_path / "nope.txt", LABELS)


def test_jsonl_tokens_accept_tag_names_and_indices(tmp_path):
    f = write(tmp_path / "a.jsonl", json.dumps({"tokens": ["Ann", "ran"], "ner_tags": [1, "O"]}) + "\n")
    assert read_token_file(f, LABELS) == [{"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"tokens": ["a"], "ner_tags": [1, 2]}', "a.jsonl:1: 1 tokens but 2 tags"),
        ('{"tokens": ["a"], "ner_tags": [9]}', "a.jsonl:1: label 9 is not in the label set"),
        ('{"tokens": ["a"], "ner_tags": [0]', "a.jsonl:1: not valid JSON"),
        ('{"tokens": [], "ner_tags": []}', "a.jsonl:1: empty sentence"),
    ],
)
def test_jsonl_token_errors(tmp_path, line, message):
    f = write(tmp_path / "a.jsonl", line + "\n")
    with pytest.raises(UsageError, match=message):
        read_token_file(f, LABELS)


def test_csv_text_file(tmp_path):
    f = write(tmp_path / "a.csv", 'text,label\n"good, really",positive\nbad,0\n')
    assert read_text_file(f, ("negative", "positive")) == [
        {"text": "good, really", "label": "positive"},
        {"text": "bad", "label": "negative"},
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("text,label\ngood,positive\n   ,negative\n", "a.csv:3: empty text"),
        ("text,label\ngood,meh\n", "a.csv:2: label 'meh' is not in the label set"),
        ("text,label\ngood,positive,extra\n", "a.csv:2: expected 2 columns"),
        ("words,label\ngood,positive\n", "a.csv:2: expected fields 'text' and 'label'"),
        ("", "a.csv: file is empty"),
        # an unclosed quote swallows the rest of the file into one field, until csv gives up
        ('text,label\ngood,positive\n"bad,negative\n' + "more text\n" * 20_000, "a.csv:3: malformed CSV"),
    ],
)
def test_csv_text_errors(tmp_path, content, message):
    f = write(tmp_path / "a.csv", content)
    with pytest.raises(UsageError, match=message):
        read_text_file(f, ("negative", "positive"))


def test_report_lists_kept_and_dropped():
    report = DataReport(source="x", kept={"train": 8})
    report.drop("train", "empty texts", 2)
    assert report.lines() == ["data: x", "  train            8 examples  (dropped 2 empty texts)"]
    assert report.to_dict()["dropped"] == {"train": {"empty texts": 2}}
