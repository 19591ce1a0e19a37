"""The reference baseline: the classic BERT fine-tuning tutorial recipe, written out by hand.

Tokenize each batch on the fly, pad every sequence to `max_length` (128), fp32, a plain PyTorch
loop with `torch.optim.AdamW` (its default implementation for the device), linear warm-up/decay,
gradient clipping, evaluation at the training batch size. No Trainer, no caching, no grouping.
Hyperparameters (learning rate, batch size, epochs, warm-up, weight decay, clipping, seed) come
from the project's resolved TrainingArguments, so the baseline and the default path differ only
in *how* they train, not in what.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import EvalPrediction, get_linear_schedule_with_warmup

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the tutorial's `model.to(device)`


def _pad(rows: list[list[int]], length: int, value: int) -> torch.Tensor:
    return torch.tensor([row[:length] + [value] * (length - len(row[:length])) for row in rows])


def make_collate(task: Any, tokenizer: Any, data_args: Any) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    """Raw rows -> a batch padded to max_seq_length, tokenized at the moment it is needed."""
    length = data_args.max_seq_length

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = {key: [row[key] for row in rows] for key in rows[0]}
        encoded = task.preprocess(batch, tokenizer, data_args)  # the project's label alignment
        out = {
            "input_ids": _pad(encoded["input_ids"], length, tokenizer.pad_token_id),
            "attention_mask": _pad(encoded["attention_mask"], length, 0),
        }
        if "token_type_ids" in encoded:
            out["token_type_ids"] = _pad(encoded["token_type_ids"], length, 0)
        labels = encoded["labels"]
        out["labels"] = _pad(labels, length, -100) if isinstance(labels[0], list) else torch.tensor(labels)
        return out

    return collate


def _optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    # The usual tutorial grouping: no decay on biases and LayerNorm weights.
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)]},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def _train_steps(
    model: torch.nn.Module,
    loader: DataLoader,
    training: Any,
    epochs: int,
    max_steps: int | None,
    on_batch: Callable[[dict], None] | None = None,
    after_step: Callable[[int], bool] | None = None,
) -> tuple[int, list[float]]:
    """The plain loop. Returns the number of steps and the wall time of each epoch.

    `after_step(step)` runs after each optimizer step; True stops training (time-to-quality's dev checks).
    """
    steps_per_epoch = len(loader)
    total = min(max_steps, steps_per_epoch * epochs) if max_steps else steps_per_epoch * epochs
    optimizer = _optimizer(model, training.learning_rate, training.weight_decay)
    warmup = training.warmup_steps
    warmup = math.ceil(warmup * total) if isinstance(warmup, float) and warmup < 1 else int(warmup)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    model.train()
    step, epoch_seconds = 0, []
    for _ in range(epochs):
        started = time.perf_counter()
        for batch in loader:
            if on_batch:
                on_batch(batch)
            batch = {key: value.to(DEVICE) for key, value in batch.items()}
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), training.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            stop = after_step is not None and after_step(step)
            if step >= total or stop:
                break
        epoch_seconds.append(time.perf_counter() - started)
        if step >= total or stop:
            break
    return step, epoch_seconds


def evaluate(model: torch.nn.Module, rows: list[dict], collate: Callable, batch_size: int, task: Any) -> dict:
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for batch in DataLoader(rows, batch_size=batch_size, shuffle=False, collate_fn=collate):
            logits.append(model(**{k: v.to(DEVICE) for k, v in batch.items()}).logits.float().cpu().numpy())
            labels.append(batch["labels"].numpy())
    return task.compute_metrics(EvalPrediction(predictions=np.concatenate(logits), label_ids=np.concatenate(labels)))


def _set_up(
    task: Any, splits: Any, tokenizer: Any, model: torch.nn.Module, data_args: Any, training: Any
) -> tuple[Callable, Callable[[], DataLoader], list[dict]]:
    """The tutorial's set-up: the on-the-fly collator, the model on its device in plain fp32, a maker of the
    shuffled training loader (each one seeded alike, so a warm-up pass does not change the timed order), dev rows."""
    collate = make_collate(task, tokenizer, data_args)
    # The tutorial trains in plain fp32; parsing the project's arguments may have switched TF32 on.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model.to(DEVICE)
    train_rows = splits["train"].to_list()

    def loader() -> DataLoader:
        generator = torch.Generator().manual_seed(training.seed)
        return DataLoader(
            train_rows, batch_size=training.per_device_train_batch_size, shuffle=True, collate_fn=collate,
            generator=generator,
        )  # fmt: skip

    return collate, loader, splits["validation"].to_list()


def run_baseline(
    task: Any,
    splits: Any,
    tokenizer: Any,
    model: torch.nn.Module,
    data_args: Any,
    training: Any,
    warmup_steps: int,
    max_steps: int | None,
    record: Callable[[dict], None],
) -> dict[str, Any]:
    """Warm up on a copy of the model, then train and evaluate; `record` sees every timed batch."""
    collate, loader, eval_rows = _set_up(task, splits, tokenizer, model, data_args, training)
    epochs = math.ceil(training.num_train_epochs)
    if warmup_steps:
        _train_steps(copy.deepcopy(model), loader(), training, 1, warmup_steps)
        evaluate(copy.deepcopy(model), eval_rows[: training.per_device_train_batch_size], collate, 32, task)
    random.seed(training.seed)
    torch.manual_seed(training.seed)
    started = time.perf_counter()
    steps, epoch_seconds = _train_steps(model, loader(), training, epochs, max_steps, record)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    batch_size = training.per_device_train_batch_size  # tutorials evaluate at the training batch size
    metrics = evaluate(model, eval_rows, collate, batch_size, task)
    return {
        "steps": steps,
        "train_seconds": train_seconds,
        "epoch_seconds": epoch_seconds,
        "eval_seconds": time.perf_counter() - started,
        "eval_samples": len(eval_rows),
        "eval_batch_size": batch_size,
        "dev": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
    }


def train_to_target(
    task: Any,
    splits: Any,
    tokenizer: Any,
    model: torch.nn.Module,
    data_args: Any,
    training: Any,
    eval_every: int,
    target: float,
    metric: str,
) -> dict[str, Any]:
    """Time-to-quality of the tutorial recipe: train, score dev every `eval_every` steps (at the training batch
    size, as tutorials do), stop at the first score >= `target`; then score test (untimed).

    `seconds`: training plus those dev evaluations, from the first step, as `--stop_at_dev_score` counts it.
    """
    collate, new_loader, eval_rows = _set_up(task, splits, tokenizer, model, data_args, training)
    batch_size = training.per_device_train_batch_size
    random.seed(training.seed)
    torch.manual_seed(training.seed)
    loader = new_loader()
    history: list[dict[str, float]] = []
    reached: dict[str, float] | None = None
    started = time.perf_counter()

    def check(step: int) -> bool:
        nonlocal reached
        if step % eval_every:
            return False
        score = evaluate(model, eval_rows, collate, batch_size, task)[metric]
        model.train()
        history.append({"step": step, "dev": score, "seconds": round(time.perf_counter() - started, 2)})
        if score >= target:
            reached = {"seconds": history[-1]["seconds"], "step": step, "epoch": step / len(loader), "dev": score}
        return reached is not None

    steps, _ = _train_steps(model, loader, training, math.ceil(training.num_train_epochs), None, after_step=check)
    seconds = time.perf_counter() - started
    test = evaluate(model, splits["test"].to_list(), collate, batch_size, task) if "test" in splits else {}
    return {
        "stop_at_dev_score": {"target": target, "reached": reached},
        "steps": steps,
        "seconds": round(seconds, 2),
        "dev_history": history,
        "test": {k: v for k, v in test.items() if isinstance(v, int | float)},
    }
