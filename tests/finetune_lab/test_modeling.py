from collections import Counter

import pytest
from datasets import Dataset

from finetune_lab.arguments import ModelArguments
from finetune_lab.errors import UsageError
from finetune_lab.modeling import ScratchModelOptions, build_model, character_vocabulary
from tasks.ner_zh import MsraNer
from tasks.sentiment import MovieReviewSentiment


def test_character_vocabulary_keeps_frequent_characters_and_spells_latin():
    vocab = character_vocabulary(Counter({"中": 5, "国": 3, "a": 2, "罕": 1}), min_count=2)
    assert vocab == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "中", "国", "a", "##a"]


def test_from_scratch_model_tokenizes_characters():
    options = ScratchModelOptions(
        from_scratch=True, scratch_hidden_size=32, scratch_layers=1, scratch_heads=2, scratch_min_char_count=1
    )
    task = MsraNer(options)
    train = Dataset.from_list([{"tokens": list("北京欢迎你"), "tags": ["O"] * 5}, {"tokens": ["ab"], "tags": ["O"]}])
    model_args = ModelArguments(model_name_or_path="bert-base-chinese")
    built = build_model(task, model_args, train)
    tokenizer, model = built.tokenizer, built.model
    assert built.from_scratch and built.description.startswith("from scratch: BERT 1 layers x 32")
    assert tokenizer.tokenize("北京欢迎你") == ["北", "京", "欢", "迎", "你"]
    assert tokenizer.tokenize("上") == ["[UNK]"]  # never seen in training
    assert tokenizer.tokenize("ab") == ["a", "##b"]  # Latin spelled out character by character
    assert model.config.num_labels == 7 and model.config.vocab_size == len(tokenizer)


def test_a_named_model_that_cannot_load_is_an_error_not_a_fallback():
    model_args = ModelArguments(model_name_or_path="hfl/rbt3")
    with pytest.raises(UsageError, match="cannot load --model_name_or_path hfl/rbt3"):
        build_model(MsraNer(), model_args, Dataset.from_list([]))
    with pytest.raises(UsageError):  # tasks without the fallback never build a model from scratch
        build_model(MovieReviewSentiment(), model_args, Dataset.from_list([]))


def test_attention_dropout_reaches_the_config_and_lets_sdpa_fuse(tiny_model_dir):
    import torch

    task = MovieReviewSentiment()
    own = build_model(task, ModelArguments(model_name_or_path=str(tiny_model_dir)), None).model
    off = build_model(task, ModelArguments(model_name_or_path=str(tiny_model_dir), attention_dropout=0.0), None).model
    assert own.config.attention_probs_dropout_prob > 0 and off.config.attention_probs_dropout_prob == 0.0
    batch = {"input_ids": torch.randint(5, 90, (2, 7)), "attention_mask": torch.ones(2, 7, dtype=torch.long)}
    kernels = {}
    for name, model in (("own", own), ("off", off)):
        model.train()
        with torch.profiler.profile() as profiled:
            model(**batch).logits.sum().backward()
        kernels[name] = {e.key for e in profiled.key_averages() if "scaled_dot_product" in e.key}
    # with dropout on the weights SDPA falls back to its unfused math path in training on a CPU
    assert "aten::_scaled_dot_product_attention_math" in kernels["own"]
    assert "aten::_scaled_dot_product_attention_math" not in kernels["off"]
    scratch = ScratchModelOptions(
        from_scratch=True, scratch_hidden_size=32, scratch_layers=1, scratch_heads=2, scratch_min_char_count=1
    )
    train = Dataset.from_list([{"tokens": list("北京"), "tags": ["O"] * 2}])
    built = build_model(MsraNer(scratch), ModelArguments(model_name_or_path="x/y", attention_dropout=0.05), train)
    assert built.from_scratch and built.model.config.attention_probs_dropout_prob == 0.05
