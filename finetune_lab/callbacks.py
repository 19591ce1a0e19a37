"""Trainer callbacks: the per-class dev report after each evaluation, and epoch wall times."""

from __future__ import annotations

import time

from transformers import TrainerCallback

from finetune_lab.metrics import format_report


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
