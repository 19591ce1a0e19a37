"""From loaded rows to model inputs: sample limits, tokenization, truncation accounting."""

from __future__ import annotations

from typing import Any

from datasets import DatasetDict
from transformers import PreTrainedTokenizerBase

SAMPLE_LIMITS = {"train": "max_train_samples", "validation": "max_eval_samples", "test": "max_test_samples"}


def limit_samples(splits: DatasetDict, data_args: Any) -> list[str]:
    """Keep the first N examples of each split the user limited; say so."""
    notes = []
    for split, option in SAMPLE_LIMITS.items():
        limit = getattr(data_args, option)
        if limit is not None and split in splits and limit < len(splits[split]):
            notes.append(f"  {split}: using the first {limit} of {len(splits[split])} examples (--{option})")
            splits[split] = splits[split].select(range(limit))
    return notes


def tokenize_splits(
    task: Any, splits: DatasetDict, tokenizer: PreTrainedTokenizerBase, data_args: Any
) -> tuple[DatasetDict, dict[str, dict[str, int]]]:
    """Run the task's `preprocess` on every split; count truncated examples and lost words."""
    tokenized = splits.map(
        task.preprocess,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "data_args": data_args},
        remove_columns=list(task.example_columns),
        num_proc=data_args.preprocessing_num_workers,
        desc="tokenizing",
    )
    truncation = {}
    for split, dataset in tokenized.items():
        counts = {"examples": len(dataset), "truncated": int(sum(dataset["truncated"]))}
        if "words_lost" in dataset.column_names:
            counts["words_lost"] = int(sum(dataset["words_lost"]))
        truncation[split] = counts
    accounting = [c for c in ("truncated", "words_lost") if c in tokenized["train"].column_names]
    return tokenized.remove_columns(accounting), truncation


def truncation_lines(truncation: dict[str, dict[str, int]], max_length: int) -> list[str]:
    lines = []
    for split, c in truncation.items():
        if c["truncated"]:
            lost = f", {c['words_lost']} words lost" if "words_lost" in c else ""
            lines.append(
                f"  {split}: {c['truncated']} of {c['examples']} examples truncated at {max_length} tokens{lost}"
            )
    return lines or [f"  no example is longer than --max_seq_length {max_length}"]
