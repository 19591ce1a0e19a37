import pytest

from finetune_lab.errors import UsageError
from finetune_lab.readers import DataReport
from tasks.spam import SmsSpam, read_sms_csv


def test_embedded_sms_file_recovers_the_glued_messages():
    report = DataReport()
    splits = SmsSpam().load_embedded(report)
    rows = [r for part in splits.values() for r in part]
    # 4,837 clean rows + 737 glued `ham\t`/`spam\t` lines = 5,574 messages; 414 exact repeats dropped
    assert report.repaired["all"] == {"messages recovered from inside other rows": 737}
    assert report.dropped["all"] == {"duplicate messages": 414}
    assert len(rows) == 5574 - 414 == 5160
    assert sum(r["label"] == "spam" for r in rows) == 642
    assert {k: len(v) for k, v in splits.items()} == {"train": 4128, "validation": 516, "test": 516}
    texts = {r["text"] for r in rows}
    assert "Ok. I asked for money how far" in texts  # the first glued line (file line 285)
    assert not any("\tham" in t or t.startswith(("ham\t", "spam\t")) or "\n" in t for t in texts)


def test_hand_made_broken_rows(tmp_path):
    path = tmp_path / "sms.csv"
    path.write_text(
        ",spam,text\n"
        '0,0,"Hello ""there"" friend\n'  # an unclosed cell: the next lines are glued into it
        "spam\tWIN a prize now\n"
        "ham\tsee you later\n"
        "a line with no label\n"
        'ham\tHello again"\n'  # the closing quote ends the glued block
        "1,1,WIN a prize now\n"  # the same spam again: a duplicate
        "2,0,conflict text\n"
        "3,1,conflict text\n",  # labelled both ways: dropped
        encoding="utf-8",
    )
    report = DataReport()
    rows = read_sms_csv(path, report)
    assert rows == [
        {"text": 'Hello "there" friend', "label": "ham"},
        {"text": "WIN a prize now", "label": "spam"},
        {"text": "see you later", "label": "ham"},
        {"text": "Hello again", "label": "ham"},
    ]
    assert report.repaired["all"] == {"messages recovered from inside other rows": 3}
    assert report.dropped["all"] == {
        "unrecoverable lines inside other rows": 1,
        "duplicate messages": 1,
        "texts labelled both ham and spam": 1,
    }


def test_a_row_that_is_not_index_label_text_names_its_line(tmp_path):
    path = tmp_path / "sms.csv"
    path.write_text(",spam,text\n0,0,fine\n1,maybe,bad label\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"sms\.csv:3: expected '<index>,<0\|1>,<text>'"):
        read_sms_csv(path, DataReport())
