from finetune_lab.readers import DataReport
from tasks.sentiment import MovieReviewSentiment


def test_embedded_movie_reviews_binarised_and_split_80_10_10():
    report = DataReport()
    splits = MovieReviewSentiment().load_embedded(report)
    sizes = {s: len(rows) for s, rows in splits.items()}
    # 10,605 sentences: 5,242 positive + 5,326 negative kept, 37 zero ratings dropped and counted
    assert sum(sizes.values()) == 5242 + 5326
    assert report.dropped["all"] == {"neutral (rating 0)": 37}
    assert sizes == {"train": 8454, "validation": 1057, "test": 1057}
    positives = sum(r["label"] == "positive" for rows in splits.values() for r in rows)
    assert positives == 5242
    assert all(r["text"] and r["label"] in ("negative", "positive") for rows in splits.values() for r in rows)


def test_split_is_the_same_every_time():
    a = MovieReviewSentiment().load_embedded(DataReport())
    b = MovieReviewSentiment().load_embedded(DataReport())
    assert a["test"] == b["test"]
