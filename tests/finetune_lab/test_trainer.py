"""The one Trainer builder: the task's collator and metrics, the standard callbacks, early stopping on request."""

from types import SimpleNamespace

import pytest
import torch
from datasets import DatasetDict
from transformers import EarlyStoppingCallback, TrainingArguments

from finetune_lab.callbacks import MarkCheckpointComplete, StopOnNonFiniteLoss
from finetune_lab.modeling import build_model
from finetune_lab.tokenization import tokenize_splits
from finetune_lab.trainer import build_trainer
from tasks.ner import ConllNer
from tasks.sentiment import MovieReviewSentiment
from tests.finetune_lab.tiny_training import one_step_args, parameters, tiny_examples, tiny_model, train


def test_builder_wires_the_task_into_the_trainer(tiny_model_dir, tmp_path):
    task = ConllNer()
    data = task.load(SimpleNamespace(train_file=None, validation_file=None, test_file=None, dataset_name=None))
    splits = DatasetDict({split: data.splits[split].select(range(12)) for split in ("train", "validation")})
    model_args = SimpleNamespace(
        model_name_or_path=str(tiny_model_dir), revision="main", cache_dir=None, trust_remote_code=False,
        attn_implementation=None, cudnn_attention=False,
    )  # fmt: skip
    built = build_model(task, model_args, data.splits["train"])
    data_args = SimpleNamespace(
        max_seq_length=30, label_all_tokens=False, pad_to_multiple_of=8, preprocessing_num_workers=None,
        tokenized_cache_dir="none", text_column_name=None,
    )  # fmt: skip
    tokenized, _ = tokenize_splits(task, splits, built.tokenizer, data_args)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, per_device_eval_batch_size=4)

    plain = build_trainer(task, built.model, built.tokenizer, args, data_args, None, tokenized["validation"])
    kinds = {type(c) for c in plain.callback_handler.callbacks}
    assert {MarkCheckpointComplete, StopOnNonFiniteLoss} <= kinds and EarlyStoppingCallback not in kinds
    examples = [tokenized["validation"][i] for i in range(3)]
    longest = max(len(e["input_ids"]) for e in examples)
    assert longest % 8 != 0  # so the padding below is the collator's doing
    assert plain.data_collator(examples)["input_ids"].shape[1] == longest + (-longest % 8)
    metrics = plain.evaluate()
    assert {"eval_f1", "eval_precision", "eval_recall"} <= set(metrics)  # the family's entity metrics

    stopping = build_trainer(task, built.model, built.tokenizer, args, data_args, None, None, early_stopping_patience=2)
    assert EarlyStoppingCallback in {type(c) for c in stopping.callback_handler.callbacks}


@pytest.mark.parametrize("task_class", [ConllNer, MovieReviewSentiment])
def test_gradient_accumulation_16_by_2_is_the_update_of_batch_32(task_class, tiny_model_dir, tmp_path):
    """One optimizer step over the same 32 examples: batch 32, or 2 micro-batches of 16 accumulated.

    Token classification is the hard case: the micro-batches hold different numbers of labelled tokens,
    so averaging each micro-batch's mean loss would weigh tokens unequally; Trainer normalises by the
    labelled tokens of the whole accumulated batch instead. Plain SGD and no dropout: an exact comparison.
    """
    task = task_class()
    updates = {}
    for batch, accumulation in ((32, 1), (16, 2)):
        built = tiny_model(task, tiny_model_dir)
        examples = tiny_examples(task, built.tokenizer, 32)
        before = parameters(built.model)
        trainer = train(task, built, examples, one_step_args(tmp_path / f"{batch}", batch, accumulation))
        assert trainer.state.global_step == 1
        updates[batch] = {n: p.detach() - before[n] for n, p in built.model.named_parameters()}
    if task_class is ConllNer:  # the micro-batches really differ in labelled tokens
        counts = [sum(sum(label != -100 for label in row) for row in examples[part]["labels"]) for part in
                  (slice(0, 16), slice(16, 32))]  # fmt: skip
        assert counts[0] != counts[1]
    moved = max(u.abs().max().item() for u in updates[32].values())
    assert moved > 1e-3  # a real step, not two zero updates compared
    for name, update in updates[32].items():
        torch.testing.assert_close(updates[16][name], update, rtol=1e-4, atol=1e-6, msg=name)
