"""The one Trainer builder: run.py, the benchmark and every later technique build their Trainer here.

Precision and data-loader settings arrive resolved in `TrainingArguments` (see arguments.py and
hardware.py); this adds what every run shares: the task's collator and metrics and the standard
callbacks (per-class dev report, checkpoint completion markers, the NaN guard, early stopping).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from datasets import Dataset
from transformers import (
    EarlyStoppingCallback,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from finetune_lab.callbacks import MarkCheckpointComplete, PerClassReport, StopOnNonFiniteLoss


def build_trainer(
    task: Any,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    training_args: TrainingArguments,
    data_args: Any,
    train_dataset: Dataset | None,
    eval_dataset: Dataset | None,
    callbacks: Sequence[TrainerCallback] = (),
    early_stopping_patience: int = 0,
    trainer_class: Callable[..., Trainer] = Trainer,
) -> Trainer:
    """A Trainer for `task`: its collator and compute_metrics, the standard callbacks, then `callbacks`.

    `early_stopping_patience` > 0 stops after that many evaluations without improvement.
    `trainer_class` (a Trainer subclass, or a partial of one) lets a caller change the loss (distillation.py)
    or add instrumentation (the benchmark).
    """
    standard: list[TrainerCallback] = [PerClassReport(), MarkCheckpointComplete(), StopOnNonFiniteLoss()]
    if early_stopping_patience > 0:
        standard.append(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    return trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=task.data_collator(
            tokenizer,
            data_args.pad_to_multiple_of,
            # --pad_to_max_length (HF's option): every batch as long as --max_seq_length
            data_args.max_seq_length if getattr(data_args, "pad_to_max_length", False) else None,
        ),
        compute_metrics=task.compute_metrics,
        callbacks=[*standard, *callbacks],
    )
