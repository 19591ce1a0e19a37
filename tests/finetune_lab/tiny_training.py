"""A tiny model, a few tokenized examples and one-step Trainers, for the technique tests (PEFT, adversarial,
gradient accumulation): parameter updates compared exactly, so plain SGD (an update proportional to the
gradient; Adam's first step is nearly its sign and would hide a wrong scale), no dropout, examples in order."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from datasets import DatasetDict
from transformers import TrainingArguments

from finetune_lab.modeling import build_model
from finetune_lab.tokenization import tokenize_splits
from finetune_lab.trainer import build_trainer

DATA_ARGS = SimpleNamespace(
    max_seq_length=32, label_all_tokens=False, pad_to_multiple_of=None, preprocessing_num_workers=None,
    tokenized_cache_dir="none", text_column_name=None,
)  # fmt: skip


def tiny_model(task: Any, model_dir: Path, dropout: bool = False) -> Any:
    """modeling.BuiltModel for `task` on the tiny BERT; dropout off unless asked (updates compared exactly)."""
    model_args = SimpleNamespace(
        model_name_or_path=str(model_dir), revision="main", cache_dir=None, trust_remote_code=False,
        attn_implementation=None, cudnn_attention=False,
    )  # fmt: skip
    torch.manual_seed(0)  # the head's random initialisation
    built = build_model(task, model_args, None)
    if not dropout:
        for module in built.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    return built


def tiny_examples(task: Any, tokenizer: Any, n: int) -> Any:
    """The first `n` embedded training examples of `task`, tokenized (at most 32 tokens)."""
    data = task.load(SimpleNamespace(train_file=None, validation_file=None, test_file=None, dataset_name=None))
    tokenized, _ = tokenize_splits(
        task, DatasetDict({"train": data.splits["train"].select(range(n))}), tokenizer, DATA_ARGS
    )
    return tokenized["train"]


def one_step_args(folder: Path, batch: int, accumulation: int = 1, lr: float = 0.5, **extra: Any) -> TrainingArguments:
    """One optimizer step of plain SGD at a constant rate over the first batch * accumulation examples, in order."""
    settings = dict(
        output_dir=str(folder), report_to=[], use_cpu=True, optim="sgd", learning_rate=lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0, max_steps=1,
        per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
        train_sampling_strategy="sequential", save_strategy="no", eval_strategy="no", logging_strategy="no",
        disable_tqdm=True, seed=0, dataloader_num_workers=0,
    )  # fmt: skip
    return TrainingArguments(**{**settings, **extra})


def train(task: Any, built: Any, train_set: Any, args: TrainingArguments, **kwargs: Any) -> Any:
    """The Trainer after training with `args`, built by the runner's own build_trainer."""
    trainer = build_trainer(task, built.model, built.tokenizer, args, DATA_ARGS, train_set, None, **kwargs)
    trainer.train()
    return trainer


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}
