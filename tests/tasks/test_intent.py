from collections import Counter

import pytest

from finetune_lab.errors import UsageError
from finetune_lab.readers import DataReport
from tasks.intent import IntentOptions, TrecIntent, read_trec


def test_embedded_trec_questions_deduplicated_and_split_by_coarse_label():
    report = DataReport()
    splits = TrecIntent().load_embedded(report)
    rows = [r for part in splits.values() for r in part]
    # 15,452 lines, 5,382 distinct (label, question) pairs; one question carries two labels
    assert report.dropped["all"] == {"duplicate lines": 10070, "questions with conflicting labels": 2}
    assert len(rows) == 5380
    assert {k: len(v) for k, v in splits.items()} == {"train": 4304, "validation": 538, "test": 538}
    # distinct lines per coarse label: ENTY 1245, HUM 1215, DESC 1153, NUM 859, LOC 824, ABBR 86;
    # the conflicting question is labelled with two NUM fine classes, so NUM loses both lines
    assert Counter(r["label"] for r in rows) == {
        "ENTY": 1245, "HUM": 1215, "DESC": 1153, "NUM": 857, "LOC": 824, "ABBR": 86,
    }  # fmt: skip


def test_fine_granularity_uses_the_same_questions_and_50_labels():
    coarse = TrecIntent().load_embedded(DataReport())
    task = TrecIntent(IntentOptions(label_granularity="fine"))
    fine = task.load_embedded(DataReport())
    labels = task.embedded_label_names(fine)
    assert len(labels) == 50 and "NUM:date" in labels
    for split in coarse:
        assert [r["text"] for r in coarse[split]] == [r["text"] for r in fine[split]]
        assert all(f["label"].split(":")[0] == c["label"] for c, f in zip(coarse[split], fine[split], strict=True))


def test_hand_made_lines(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text(
        "HUM:ind Who wrote Hamlet ?\nHUM:ind Who wrote Hamlet ?\nLOC:city Where is X ?\nNUM:count Where is X ?\n",
        encoding="utf-8",
    )
    report = DataReport()
    assert read_trec(path, report) == [{"text": "Who wrote Hamlet ?", "coarse": "HUM", "fine": "HUM:ind"}]
    assert report.dropped["all"] == {"duplicate lines": 1, "questions with conflicting labels": 2}
    path.write_text("HUM:ind Who ?\nnot a labelled line\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"q\.txt:2: expected 'COARSE:fine question'"):
        read_trec(path, DataReport())
