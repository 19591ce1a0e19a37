from types import SimpleNamespace

import pytest
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer

from finetune_lab.modeling import embedded_model_path
from finetune_lab.tokenization import tokenize_splits, tokenized_cache_root
from tasks.ner import ConllNer

ROWS = [
    {"tokens": ["EU", "rejects", "German", "call"], "tags": ["B-ORG", "O", "B-MISC", "O"]},
    {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(embedded_model_path())


def data_args(cache_dir, max_seq_length=128, **extra):
    fields = dict(max_seq_length=max_seq_length, label_all_tokens=False, preprocessing_num_workers=None)
    return SimpleNamespace(**fields, tokenized_cache_dir=str(cache_dir), text_column_name=None, **extra)


def splits():
    return DatasetDict({"train": Dataset.from_list(ROWS), "validation": Dataset.from_list(ROWS[:1])})


def test_second_tokenization_reads_the_cache(tmp_path, tokenizer):
    first, counts = tokenize_splits(ConllNer(), splits(), tokenizer, data_args(tmp_path))
    files = sorted(p.name for p in tmp_path.rglob("*.arrow"))
    assert files == ["train.arrow", "validation.arrow"]
    task = ConllNer()
    task.preprocess = None  # a cache hit must not tokenize again (calling the tokenizer mutates it, too)
    second, counts2 = tokenize_splits(task, splits(), tokenizer, data_args(tmp_path))
    assert second["train"].cache_files and second["train"].cache_files[0]["filename"].endswith("train.arrow")
    assert second["train"]["input_ids"] == first["train"]["input_ids"]
    assert second["train"]["labels"] == first["train"]["labels"] and counts2 == counts


def test_cache_is_keyed_by_max_length_and_data(tmp_path, tokenizer):
    tokenize_splits(ConllNer(), splits(), tokenizer, data_args(tmp_path))
    short, counts = tokenize_splits(ConllNer(), splits(), tokenizer, data_args(tmp_path, max_seq_length=4))
    assert max(len(ids) for ids in short["train"]["input_ids"]) == 4 and counts["train"]["truncated"] == 1
    limited = splits()
    limited["train"] = limited["train"].select([1])
    fewer, _ = tokenize_splits(ConllNer(), limited, tokenizer, data_args(tmp_path))
    assert len(fewer["train"]) == 1
    assert len({p.parent for p in tmp_path.rglob("*.arrow")}) == 3


def test_cache_can_be_turned_off(tmp_path, tokenizer, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tokenized, _ = tokenize_splits(ConllNer(), splits(), tokenizer, data_args("none"))
    assert not tokenized["train"].cache_files and not list(tmp_path.rglob("*.arrow"))
    assert tokenized_cache_root(data_args("none")) is None


def test_default_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FINETUNE_LAB_CACHE", str(tmp_path / "c"))
    assert tokenized_cache_root(SimpleNamespace(tokenized_cache_dir=None)) == tmp_path / "c"
