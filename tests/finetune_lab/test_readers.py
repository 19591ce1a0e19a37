import csv
import io
import json
from types import SimpleNamespace

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
    f = write(tmp_path / "a.csv", 'text,label\n"good, really",positive\nbad,negative\n')
    assert read_text_file(f, ("negative", "positive")) == [
        {"text": "good, really", "label": "positive"},
        {"text": "bad", "label": "negative"},
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("text,label\ngood,positive\n   ,negative\n", "a.csv:3: empty text"),
        ("text,label\ngood,meh\n", "a.csv:2: label 'meh' is not in the label set"),
        # a label is a name: '0' is not the first label
        ("text,label\ngood,0\n", "a.csv:2: label '0' is not in the label set"),
        # a quote closed on the next line, then more text: two rows would merge into one example
        ('text,label\n"first,positive\nsecond" text,negative\n', "a.csv:2: malformed CSV"),
        # a quote never closed before the end of a short file
        ('text,label\ngood,positive\nbad,"negative\n', "a.csv:3: malformed CSV"),
        ("text,label\ngood,positive,extra\n", "a.csv:2: expected 2 columns"),
        ("words,label\ngood,positive\n", r"a.csv: no column 'text' \(it has: words, label\); name yours"),
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


# --- issue 11: labels are names, CSV is read as CSV, IOB1 input, skipped rows counted -----------


def load_files(task, path, labels=None):
    """What run.py loads from --train_file/--validation_file (both the same file here)."""
    args = SimpleNamespace(
        train_file=str(path), validation_file=str(path), test_file=None, dataset_name=None, text_column_name=None
    )
    return task(label_names=labels).load(args)


def test_numeric_label_names_are_names_not_positions(tmp_path):
    from tasks.sentiment import MovieReviewSentiment

    stars = ["1", "2", "3", "4", "5"]
    f = write(tmp_path / "a.csv", "text,label\n" + "".join(f"review {i},{i % 4 + 1}\n" for i in range(8)))
    data = load_files(MovieReviewSentiment, f, stars)
    assert data.splits["train"]["label"] == [str(i % 4 + 1) for i in range(8)]  # not one class off
    f = write(tmp_path / "b.csv", "text,label\nsuperb,5\n")
    assert load_files(MovieReviewSentiment, f, stars).splits["train"]["label"] == ["5"]  # the fifth label is a label


@pytest.mark.parametrize(
    "labels, value, expected",
    [
        (("negative", "positive"), 1, "positive"),  # a JSON number is a position when no label is a number
        (("1", "2", "3"), 1, "1"),  # ... and a name when the labels are numbers
        (("1", "2", "3"), "3", "3"),
        (("negative", "positive"), " positive ", "positive"),
    ],
)
def test_json_label_values(tmp_path, labels, value, expected):
    f = write(tmp_path / "a.jsonl", json.dumps({"text": "x", "label": value}) + "\n")
    assert read_text_file(f, labels) == [{"text": "x", "label": expected}]


@pytest.mark.parametrize(
    "labels, value",
    [(("1", "2", "3"), 0), (("negative", "positive"), "1"), (("negative", "positive"), True), (("a", "b"), 2)],
)
def test_json_label_values_that_name_no_label(tmp_path, labels, value):
    f = write(tmp_path / "a.jsonl", json.dumps({"text": "x", "label": value}) + "\n")
    with pytest.raises(UsageError, match="a.jsonl:1: label .* is not in the label set"):
        read_text_file(f, labels)


def all_labels(loaded) -> list[str]:
    return sorted(row["label"] for split in loaded.splits.values() for row in split)


def test_hub_class_label_ids_go_through_the_feature_names(monkeypatch):
    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from tasks.sentiment import MovieReviewSentiment

    stars = ["1", "2", "3", "4", "5"]
    named = Features({"text": Value("string"), "label": ClassLabel(names=stars)})
    plain = Features({"text": Value("string"), "label": Value("int64")})

    def hub(features, labels):
        return DatasetDict({"train": Dataset.from_dict({"text": ["a", "b", "c"], "label": labels}, features=features)})

    args = SimpleNamespace(
        train_file=None,
        validation_file=None,
        test_file=None,
        dataset_name="x/y",
        dataset_config_name=None,
        text_column_name=None,
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: hub(named, [0, 4, 2]))
    loaded = MovieReviewSentiment(label_names=stars).load(args)
    assert all_labels(loaded) == ["1", "3", "5"]
    # integers without names: names when the label set is numbers, positions otherwise
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: hub(plain, [1, 5, 3]))
    loaded = MovieReviewSentiment(label_names=stars).load(args)
    assert all_labels(loaded) == ["1", "3", "5"]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: hub(plain, [0, 1, 1]))
    loaded = MovieReviewSentiment().load(args)
    assert all_labels(loaded) == [
        "negative",
        "positive",
        "positive",
    ]


def test_embedded_data_with_other_labels_is_an_error_naming_labels():
    from tasks.sentiment import MovieReviewSentiment

    args = SimpleNamespace(train_file=None, validation_file=None, test_file=None, dataset_name=None)
    with pytest.raises(UsageError, match="--labels pos neg: .*embedded.*'negative'"):
        MovieReviewSentiment(label_names=["pos", "neg"]).load(args)


def test_csv_multi_line_quoted_cells_keep_their_newlines(tmp_path):
    f = write(
        tmp_path / "a.csv", 'text,label\n"line one\nline two",positive\n"crlf\r\ninside",negative\nplain,positive\n'
    )
    assert read_text_file(f, ("negative", "positive")) == [
        {"text": "line one\nline two", "label": "positive"},
        {"text": "crlf\r\ninside", "label": "negative"},
        {"text": "plain", "label": "positive"},
    ]


def test_csv_rows_equal_the_csv_module_on_the_raw_file(tmp_path):
    rows = [
        [f"review {i}" + ("\nits second line" if i % 7 == 0 else "") + (', "quoted"' if i % 5 == 0 else ""), "positive"]
        for i in range(80)
    ]
    out = io.StringIO()
    csv.writer(out).writerows([["text", "label"], *rows])
    f = write(tmp_path / "a.csv", out.getvalue())
    with open(f, newline="", encoding="utf-8") as handle:
        oracle = list(csv.reader(handle))[1:]
    loaded = read_text_file(f, ("negative", "positive"))
    assert len(loaded) == len(oracle) == 80
    assert [[r["text"], r["label"]] for r in loaded] == oracle


def test_skipped_csv_rows_are_counted_with_their_reason(tmp_path):
    from tasks.sentiment import MovieReviewSentiment

    f = write(tmp_path / "a.csv", "text,label\ngood,positive\n,\n\n  ,  \nbad,negative\n")
    data = load_files(MovieReviewSentiment, f)
    assert data.report.kept["train"] == 2
    assert data.report.dropped["train"] == {"blank rows": 3}
    assert "(dropped 3 blank rows)" in "\n".join(data.report.lines())


def test_conll_iob1_input_is_converted_to_iob2_and_counted(tmp_path):
    from tasks.ner import ConllNer

    # IOB1: an entity starts with I-X; B-X only where it directly follows an entity of the same type
    f = write(
        tmp_path / "a.conll", "Alice I-PER\nSmith I-PER\nvisited O\nBerlin I-LOC\n\nBob I-PER\nAnn B-PER\nx I-ORG\n"
    )
    data = load_files(ConllNer, f)
    assert data.splits["train"]["tags"] == [["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "B-PER", "B-ORG"]]
    assert data.report.repaired["train"] == {"I- tags starting an entity read as B- (IOB1 to IOB2)": 4}
    assert any("IOB1 to IOB2" in line for line in data.report.lines())


def test_jsonl_token_iob1_input_is_converted_too(tmp_path):
    from tasks.ner import ConllNer

    f = write(tmp_path / "a.jsonl", json.dumps({"tokens": ["Ann", "ran"], "ner_tags": ["I-PER", "O"]}) + "\n")
    data = load_files(ConllNer, f)
    assert data.splits["train"]["tags"] == [["B-PER", "O"]]
    assert sum(data.report.repaired["train"].values()) == 1


def test_io_tags_without_b_labels_are_left_alone(tmp_path):
    from tasks.ner import ConllNer

    f = write(tmp_path / "a.conll", "Alice I-PER\nSmith I-PER\nvisited O\n")
    data = load_files(ConllNer, f, ["O", "I-PER"])
    assert data.splits["train"]["tags"] == [["I-PER", "I-PER", "O"]]
    assert not data.report.repaired


# --- issue 10: your own column names ---------------------------------------------------------------


def test_own_text_and_label_columns(tmp_path):
    f = write(tmp_path / "a.csv", "id,sentence,sentiment\n1,good film,positive\n2,bad film,negative\n")
    rows = read_text_file(f, ("negative", "positive"), "sentence", label_column="sentiment")
    assert rows == [{"text": "good film", "label": "positive"}, {"text": "bad film", "label": "negative"}]
    j = write(tmp_path / "a.jsonl", '{"title": "Good", "body": "film", "stars": "positive"}\n')
    rows = read_text_file(j, ("negative", "positive"), "title,body", label_column="stars", delimiter=". ")
    assert rows == [{"text": "Good. film", "label": "positive"}]


@pytest.mark.parametrize(
    "name, content, columns, message",
    [
        ("a.csv", "sentence,label\nx,positive\n", ("text", "label"), r"a.csv: no column 'text' \(it has: sentence, "),
        ("a.tsv", "text\tstars\nx\tpositive\n", ("text", "label"), r"a.tsv: no column 'label' \(it has: text, stars\)"),
        ("a.csv", "text,label\n", ("text", "y"), r"a.csv: no column 'y' \(it has: text, label\)"),  # header only
        ("a.jsonl", '{"text": "x", "stars": 1}\n', ("text", "label"), r"a.jsonl:1: no field 'label' \(it has: stars, "),
        ("a.csv", "title,label\nx,positive\n", ("title,body", "label"), r"no column 'body' \(it has: title, label\)"),
    ],
)  # fmt: skip
def test_a_missing_column_names_the_file_and_the_columns_it_has(tmp_path, name, content, columns, message):
    f = write(tmp_path / name, content)
    with pytest.raises(UsageError, match=message) as caught:
        read_text_file(f, ("negative", "positive"), columns[0], label_column=columns[1])
    assert "--text_column_name / --label_column_name" in str(caught.value) and "\n" not in str(caught.value)


def test_ner_json_lines_with_own_field_names(tmp_path):
    f = write(tmp_path / "a.jsonl", json.dumps({"words": ["John", "runs"], "labels": ["B-PER", "O"]}) + "\n")
    assert read_token_file(f, LABELS, tokens_column="words", tags_column="labels") == [
        {"tokens": ["John", "runs"], "tags": ["B-PER", "O"]}
    ]
    with pytest.raises(UsageError, match=r"a.jsonl:1: no field 'tokens', 'ner_tags' \(it has: labels, words\)"):
        read_token_file(f, LABELS)
    conll = write(tmp_path / "a.txt", "John B-PER\n")
    with pytest.raises(UsageError, match="a.txt: CoNLL columns have no names"):
        read_token_file(conll, LABELS, tokens_column="words")


def test_hub_sets_with_own_column_names(monkeypatch):
    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from tasks.sentiment import MovieReviewSentiment

    features = Features({"review": Value("string"), "stars": ClassLabel(names=["negative", "positive"])})
    hub = DatasetDict({"train": Dataset.from_dict({"review": ["a", "b"], "stars": [0, 1]}, features=features)})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: hub)
    args = SimpleNamespace(
        train_file=None, validation_file=None, test_file=None, dataset_name="x/y", dataset_config_name=None,
        text_column_name="review", label_column_name="stars",
    )  # fmt: skip
    loaded = MovieReviewSentiment().load(args)
    assert loaded.splits["train"].to_list() + loaded.splits["validation"].to_list() != []
    assert sorted(all_labels(loaded)) == ["negative", "positive"]
    args.label_column_name = None
    with pytest.raises(UsageError, match=r"--dataset_name x/y \[train\]: no column 'label' \(it has: review, stars\)"):
        MovieReviewSentiment().load(args)
