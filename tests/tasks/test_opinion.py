from collections import Counter

import pytest

from finetune_lab.errors import UsageError
from finetune_lab.readers import DataReport
from tasks.opinion import OpinionOptions, TweetOpinion, read_opinion_csv


@pytest.fixture(scope="module")
def embedded():
    report = DataReport()
    return TweetOpinion().load_embedded(report), report


def test_embedded_tweets_repaired_deduplicated_and_counted(embedded):
    splits, report = embedded
    rows = [r for part in splits.values() for r in part]
    # 38,158 tweets = 37,197 kept + 868 repeats + 93 versions of tweets labelled two ways
    assert len(rows) == 37197
    assert report.dropped["all"] == {"duplicate tweets": 868, "tweets with conflicting labels": 93}
    assert Counter(r["label"] for r in rows) == {"negative": 15955, "neutral": 14431, "positive": 6811}
    assert report.repaired["all"] == {
        "lines not valid UTF-8, decoded as mac_roman": 5039,
        "texts changed by ftfy": 2823,
        "texts still mis-encoded after ftfy (kept)": 1847,
    }
    assert {k: len(v) for k, v in splits.items()} == {"train": 29757, "validation": 3720, "test": 3720}
    assert not any("\ufffd" in r["text"] for r in rows)  # no replacement characters: nothing decoded lossily


def test_hand_made_mojibake_confidence_and_duplicates(tmp_path):
    path = tmp_path / "tweets.csv"
    utf8_mojibake = "I don’t know".encode().decode("cp1252").encode()  # 'donâ€™t', valid UTF-8
    mac_roman_byte = b"Google\xd5s cars"  # 0xD5 is a curly apostrophe in Mac Roman, invalid UTF-8
    path.write_bytes(
        b"sentiment,confidence,text\n"
        + b"negative,0.9," + utf8_mojibake + b"\n"
        + b"positive,0.8," + mac_roman_byte + b"\n"
        + b"neutral,0.4,low agreement\n"
        + b"neutral,,no confidence\n"
        + b"positive,1,same tweet\npositive,1,same tweet\nnegative,1,same tweet\n"
        + b"positive,1,twice\npositive,1,twice\n"
    )  # fmt: skip
    report = DataReport()
    assert read_opinion_csv(path, report) == [
        {"text": "I don't know", "label": "negative"},
        {"text": "Google's cars", "label": "positive"},
        {"text": "low agreement", "label": "neutral"},
        {"text": "no confidence", "label": "neutral"},
        {"text": "twice", "label": "positive"},
    ]
    assert report.repaired["all"] == {"lines not valid UTF-8, decoded as mac_roman": 1, "texts changed by ftfy": 2}
    assert report.dropped["all"] == {"duplicate tweets": 2, "tweets with conflicting labels": 2}
    report = DataReport()
    kept = read_opinion_csv(path, report, min_confidence=0.5)
    assert [r["text"] for r in kept] == ["I don't know", "Google's cars", "twice"]
    assert report.dropped["all"]["confidence below 0.5"] == 1
    assert report.dropped["all"]["no confidence value (--min_confidence)"] == 1


def test_bad_rows_name_their_line(tmp_path):
    path = tmp_path / "tweets.csv"
    path.write_text("sentiment,confidence,text\nnegative,0.9,ok\nangry,0.9,not a label\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"tweets\.csv:3: expected '<negative\|neutral\|positive>"):
        read_opinion_csv(path, DataReport())
    path.write_text("sentiment,confidence,text\nnegative,high,ok\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"tweets\.csv:2: confidence 'high' is not a number"):
        read_opinion_csv(path, DataReport())
    with pytest.raises(UsageError, match=r"--min_confidence must lie in \[0, 1\]"):
        TweetOpinion(OpinionOptions(min_confidence=2)).load_embedded(DataReport())
