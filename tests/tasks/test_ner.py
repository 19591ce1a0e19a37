from finetune_lab.readers import DataReport
from tasks.ner import ConllNer


def test_embedded_conll2003_has_the_standard_splits():
    splits = ConllNer().load_embedded(DataReport())
    assert {s: len(rows) for s, rows in splits.items()} == {"train": 14041, "validation": 3250, "test": 3453}
    assert sum(len(r["tokens"]) for r in splits["train"]) == 203621
    assert splits["train"][0] == {
        "tokens": ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
        "tags": ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"],
    }
    tags = {t for rows in splits.values() for r in rows for t in r["tags"]}
    assert tags == set(ConllNer.label_names)
