"""Helpers for the embedded data sets: the fixed split, de-duplication, the rated-snippet reader."""

import pytest

from finetune_lab.embedded import DistinctTexts, fixed_split, read_rated_snippets
from finetune_lab.errors import UsageError
from finetune_lab.readers import DataReport


def test_stratified_split_is_fixed_and_keeps_proportions():
    rows = [{"text": str(i), "label": "a" if i % 4 else "b"} for i in range(400)]
    first, second = fixed_split(rows, "label", 42), fixed_split(rows, "label", 42)
    assert first == second
    assert [len(first[s]) for s in ("train", "validation", "test")] == [320, 40, 40]
    assert sum(r["label"] == "b" for r in first["test"]) == 10  # 25% of 40
    seen = [r["text"] for split in first.values() for r in split]
    assert sorted(seen) == sorted(r["text"] for r in rows)  # nothing lost, nothing duplicated


def test_unstratified_split_is_the_seeded_shuffle():
    from sklearn.model_selection import train_test_split

    rows = [{"text": str(i)} for i in range(100)]
    split = fixed_split(rows, stratify_by=None)
    train, rest = train_test_split(rows, train_size=0.8, random_state=42)
    validation, test = train_test_split(rest, train_size=0.5, random_state=42)
    assert split == {"train": train, "validation": validation, "test": test}


def test_distinct_texts_counts_duplicates_and_conflicts_per_pair_or_per_text():
    for per_text, conflicts in ((False, 2), (True, 1)):
        report = DataReport()
        texts = DistinctTexts(report, "duplicates", "conflicts", count_conflicting_texts=per_text)
        for text, label in (("a", "x"), ("b", "y"), ("a", "x"), ("c", "x"), ("c", "y")):
            texts.add(text, label)
        assert texts.unambiguous() == [("a", "x"), ("b", "y")]
        assert report.dropped["all"] == {"duplicates": 1, "conflicts": conflicts}


def test_rated_snippets_reader_counts_empty_texts_and_names_a_bad_line(tmp_path):
    path = tmp_path / "snippets.txt"
    path.write_text("id\tsentiment\ttext\n1\t1.5\tgood\n2\t-2\t  \n", encoding="utf-8")
    report = DataReport()
    assert read_rated_snippets(path, report) == [(1.5, "good")]
    assert report.dropped["all"] == {"empty texts": 1}
    path.write_text("id\tsentiment\ttext\n1\t1.5\tgood\n2\tvery\tbad\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"snippets\.txt:3: expected 'id<TAB>rating<TAB>text'"):
        read_rated_snippets(path, DataReport())
