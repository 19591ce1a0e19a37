"""The one Trainer builder: run.py, the benchmark and every later technique build their Trainer here.

Precision and data-loader settings arrive resolved in `TrainingArguments` (see arguments.py and
hardware.py); this adds what every run shares: the task's collator and metrics, a loss that gradient
accumulation does not distort (`accumulation_safe_loss`) and the standard callbacks (per-class dev
report, checkpoint completion markers, the NaN guard, early stopping).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import (
    EarlyStoppingCallback,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from finetune_lab.batching import DEFAULT_LOSS_DENOMINATOR, DEFAULT_POOL_BATCHES, with_batching
from finetune_lab.callbacks import MarkCheckpointComplete, PerClassReport, StopOnNonFiniteLoss


def accumulation_safe_loss(regression: bool, label_smoothing: float = 0.0) -> Callable[..., torch.Tensor]:
    """Trainer's compute_loss_func: the summed loss over the labelled items (tokens, or texts) of a micro-batch,
    divided by the labelled items of the whole accumulated batch (Trainer's `num_items_in_batch`).

    Batch 16 x 2 accumulation steps then gives the update of batch 32. Without it, transformers 5 (5.24
    checked) takes BERT-family heads for ones that normalise by `num_items_in_batch` (their forward declares
    **kwargs), so it skips its own division by the accumulation steps, while the heads return each
    micro-batch's mean: the gradient came out `gradient_accumulation_steps` times too large, and tokens of
    short micro-batches weighed more (huggingface/transformers#47688). Outside training (no count given):
    the mean over the batch, as the model's own loss. `label_smoothing`: --label_smoothing_factor, the same
    loss as Trainer's LabelSmoother (which a compute_loss_func replaces).
    """

    def loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        if regression:  # one number per text, as the model's own MSE loss
            total = ((logits.float().reshape(labels.shape) - labels.float()) ** 2).sum()
            count = labels.numel()
        else:
            flat = labels.reshape(-1)
            total = F.cross_entropy(
                logits.float().reshape(flat.numel(), -1),
                flat,
                ignore_index=-100,
                reduction="sum",
                label_smoothing=label_smoothing,
            )
            count = (flat != -100).sum()
        denominator = count if num_items_in_batch is None else num_items_in_batch
        if torch.is_tensor(denominator):
            denominator = denominator.to(total.device)
        return total / denominator

    return loss


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
    trainer_class = with_batching(  # training order and the loss denominator
        trainer_class,
        getattr(data_args, "group_by_length_pool", DEFAULT_POOL_BATCHES),
        getattr(data_args, "loss_denominator", DEFAULT_LOSS_DENOMINATOR),
    )
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
        compute_loss_func=accumulation_safe_loss(
            bool(getattr(task, "regression", False)), float(getattr(training_args, "label_smoothing_factor", 0.0))
        ),
        callbacks=[*standard, *callbacks],
    )
