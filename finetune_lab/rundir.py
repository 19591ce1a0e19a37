"""Where a run lives (outputs/<task>/<run-name>/), what it may overwrite, its checkpoints and saved model."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from finetune_lab.errors import UsageError
from finetune_lab.modeling import model_label

# Written into a checkpoint folder only after Trainer has saved all of it (model, optimizer,
# scheduler, RNG, trainer state): a folder without it was cut short by a kill and is never resumed.
COMPLETE_MARKER = "checkpoint-complete"
CHECKPOINT_PREFIX = "checkpoint-"


def _broadcast_from_main(value: str, world_size: int) -> str:
    """The main process's value on every process (run names hold a timestamp)."""
    if world_size <= 1:
        return value
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def prepare_run_dir(args: Any) -> Path:
    """Pick the run folder and refuse to clobber a finished or unfinished run unless asked."""
    training = args.training
    if not training.run_name:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{model_label(args.model.model_name_or_path)}-seed{training.seed}-{stamp}"
        training.run_name = _broadcast_from_main(name, training.world_size)
    run_dir = Path(training.output_dir.format(task=args.run.task, run_name=training.run_name))
    training.output_dir = str(run_dir)

    finished = (run_dir / "results.json").exists()
    checkpoints = list(run_dir.glob("checkpoint-*")) if run_dir.is_dir() else []
    if not (args.run.overwrite_output_dir or args.run.resume):
        if finished:
            raise UsageError(
                f"--output_dir {run_dir} already holds a finished run (results.json); choose another folder "
                "or pass --overwrite_output_dir"
            )
        if checkpoints:
            raise UsageError(
                f"--output_dir {run_dir} holds checkpoints of an unfinished run; pass --resume to continue it "
                "or --overwrite_output_dir to start over"
            )
    return run_dir


def _checkpoints(run_dir: Path) -> list[Path]:
    """checkpoint-N folders, oldest first."""
    found = [p for p in run_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def latest_complete_checkpoint(run_dir: Path) -> str | None:
    complete = [p for p in _checkpoints(run_dir) if (p / COMPLETE_MARKER).exists()]
    return str(complete[-1]) if complete else None


def resume_checkpoint(args: Any, run_dir: Path) -> str | None:
    """With --resume: the newest complete checkpoint (half-written ones are removed), else None."""
    if not args.run.resume or not run_dir.is_dir():
        return None
    main_process = args.training.process_index == 0
    last = latest_complete_checkpoint(run_dir)
    for folder in _checkpoints(run_dir):
        if not (folder / COMPLETE_MARKER).exists() and main_process:
            print(f"resume: removing {folder.name}, left incomplete by an interrupted save")
            shutil.rmtree(folder, ignore_errors=True)
    if main_process:
        print(f"resume: continuing from {last}" if last else f"resume: no complete checkpoint in {run_dir}, starting")
    return last


def save_model_atomically(trainer: Any, run_dir: Path) -> None:
    """Save into a temporary folder, then move each file into place with an atomic rename.

    A kill mid-save leaves every file either the previous version or the new one, never torn.
    """
    staging = run_dir / ".saving-model"
    trainer.save_model(str(staging))  # main process writes; others return
    if trainer.args.process_index != 0:
        return
    for item in staging.iterdir():
        item.replace(run_dir / item.name)
    staging.rmdir()
