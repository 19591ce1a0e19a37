"""Trainer callbacks: per-class dev report, epoch wall times, stop at a dev score, checkpoint completion, NaN guard."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from finetune_lab.errors import TrainingError
from finetune_lab.metrics import format_report
from finetune_lab.rundir import latest_complete_checkpoint, mark_checkpoint_complete


class PerClassReport(TrainerCallback):
    """Print the dev per-class table after each evaluation (main process only)."""

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.is_world_process_zero and metrics:
            epoch = f"epoch {state.epoch:.2f}" if state.epoch is not None else "start"
            table = format_report(metrics, "eval_", title=f"dev, {epoch}")
            if table:
                print("\n" + table, flush=True)


class EpochTimer(TrainerCallback):
    """Wall-clock seconds of each training epoch (evaluation excluded)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.seconds.append(round(time.perf_counter() - self._start, 2))


class StopAtDevScore(TrainerCallback):
    """--stop_at_dev_score: stop at the first dev evaluation whose main metric reaches `target` (at least it,
    or at most it where lower is better), and record when: time-to-quality (training plus the dev
    evaluations needed to know, from the start of training)."""

    def __init__(self, target: float | None) -> None:
        self.target = target
        self.reached: dict[str, float] | None = None
        self._start = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.target is None or self.reached is not None:  # every process sees the same gathered metrics
            return
        key = args.metric_for_best_model or "loss"
        value = (metrics or {}).get(key if key.startswith("eval_") else f"eval_{key}")
        if value is None or not state.global_step:
            return
        if (value >= self.target) if args.greater_is_better else (value <= self.target):
            self.reached = {
                "seconds": round(time.perf_counter() - self._start, 2),
                "step": state.global_step,
                "epoch": round(float(state.epoch or 0.0), 4),
                "dev": value,
            }
            control.should_training_stop = True

    def record(self) -> dict[str, object]:
        """For results.json's train block: {} without a target."""
        if self.target is None:
            return {}
        return {"stop_at_dev_score": {"target": self.target, "reached": self.reached}}


class MarkCheckpointComplete(TrainerCallback):
    """Mark each checkpoint once Trainer has finished writing it (on_save comes after the save), with
    each file's checksum. Under DDP every process writes its own RNG state: wait for all of them first."""

    def on_save(self, args, state, control, **kwargs):
        if args.world_size > 1 and args.distributed_state is not None:
            args.distributed_state.wait_for_everyone()
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                mark_checkpoint_complete(folder, state.global_step)


class StopOnNonFiniteLoss(TrainerCallback):
    """Stop before the optimizer applies NaN/inf gradients, so no bad weights are ever saved.

    Gradients are already all-reduced here under DDP, so every process reaches the same verdict.
    """

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.stack([g.detach().float().norm() for g in grads])).all():
            last = state.best_model_checkpoint or latest_complete_checkpoint(Path(args.output_dir))
            raise TrainingError(
                f"training stopped at step {state.global_step + 1}: the loss or its gradients became NaN or "
                f"infinite; last good checkpoint: {last or 'none yet'}. Try a lower --learning_rate, "
                "--max_grad_norm 1.0, or --bf16 false, then --resume"
            )
