"""What a run leaves behind: results.json (its config, scores, timings and environment), written atomically."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from finetune_lab.hardware import precision_name

PACKAGES = ("torch", "transformers", "datasets", "accelerate", "seqeval", "wandb", "scikit-learn")
# Names that end in a secret word (hub_token, HF_TOKEN, WANDB_API_KEY), not token_accuracy.
SECRET_NAME = re.compile(r"(^|_)(token|api_?key|secret|password|passwd|credentials?)$", re.IGNORECASE)
REDACTED = "<redacted>"
# Secret values no longer in the environment under a secret name (an HF_TOKEN that --hub_token replaced).
_withheld: set[str] = set()


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a kill leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Strict JSON (no NaN or Infinity, which most JSON readers refuse): a non-finite number is written as null."""
    text = json.dumps(finite(data)[0], indent=2, sort_keys=False, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


# Why a score can be undefined, by its name (the last part of a metric key).
UNDEFINED_WHY = {
    "roc_auc": "undefined: ROC-AUC needs both classes among the labels, and this split has one class",
    "pearson": "undefined: a correlation needs labels and predictions that are not constant",
    "spearman": "undefined: a correlation needs labels and predictions that are not constant",
}


def finite(value: Any, where: str = "") -> tuple[Any, dict[str, str]]:
    """A copy with every NaN or infinite number replaced by None, and {where: why} for each one replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        name = where.rsplit(".", 1)[-1].removeprefix("eval_").removeprefix("test_")
        return None, {where: UNDEFINED_WHY.get(name, f"not a finite number ({value}) in the run")}
    undefined: dict[str, str] = {}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key], found = finite(item, f"{where}.{key}" if where else str(key))
            undefined.update(found)
        return out, undefined
    if isinstance(value, list | tuple):
        out_list = []
        for i, item in enumerate(value):
            clean, found = finite(item, f"{where}.{i}")
            out_list.append(clean)
            undefined.update(found)
        return out_list, undefined
    return value, undefined


def _secret_values() -> set[str]:
    """Values of environment variables whose names look secret (W&B key, Hub token, ...)."""
    return {v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 8} | _withheld


def redact(value: Any, secrets: set[str] | None = None) -> Any:
    """A copy with secret-looking keys and any environment secret's value replaced."""
    secrets = _secret_values() if secrets is None else secrets
    if isinstance(value, dict):
        return {
            k: (REDACTED if SECRET_NAME.search(str(k)) and v not in (None, "") else redact(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
    return value


def redact_argv(argv: list[str], secrets: set[str] | None = None) -> list[str]:
    """A command line with the value of every secret-named option (`--hub_token X`, `--hub-token=X`)
    and every environment secret's value replaced: what W&B may record as the run's arguments."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name.startswith("-") and SECRET_NAME.search(name.lstrip("-").replace("-", "_")):
            out.append(f"{name}={REDACTED}" if eq else arg)
            hide_next = not eq
            continue
        out.append(redact(arg, secrets))
    return out


def move_hub_token_to_environment(training: Any) -> None:
    """Take --hub_token out of TrainingArguments, which Trainer pickles into training_args.bin in the
    run folder and every checkpoint, and put it in this process's HF_TOKEN, where huggingface_hub
    finds it for --push_to_hub (and where redact() knows it as a secret)."""
    token = getattr(training, "hub_token", None)
    if token:
        _withheld.update(v for v in (os.environ.get("HF_TOKEN"), token) if v and len(v) >= 8)
        os.environ["HF_TOKEN"] = token
        training.hub_token = None


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the code that ran (None when not in a git checkout)."""
    cwd = cwd or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git": git_state(),
    }


def run_config(
    args: Any, task: Any, model: Any, data_report: Any, truncation: dict, distillation: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything that defines the run: what results.json and W&B store as its config.

    `task` is the task with its final label set, `model` what modeling.build_model built,
    `distillation` what --teacher added (distillation.Distillation.record(); None without it).
    """
    from finetune_lab.modeling import model_label

    training = args.training
    precision = precision_name(training.bf16, training.fp16)
    return {
        "task": args.run.task,
        "run_name": training.run_name,
        "output_dir": training.output_dir,
        "model": model.description,  # names what was really trained (the from-scratch fallback too)
        "model_from_scratch": model.from_scratch,
        "parameters": model.model.num_parameters(),
        "precision": precision,
        "seed": training.seed,
        "processes": training.world_size,
        "main_metric": training.metric_for_best_model,
        "tags": [args.run.task, model_label(args.model.model_name_or_path), precision, f"seed{training.seed}"],
        "experiment_file": args.run.experiment,
        "notes": args.run.notes,
        "labels": list(task.label_names),
        "options": {
            "run": dataclasses.asdict(args.run),
            "model": dataclasses.asdict(args.model),
            "data": dataclasses.asdict(args.data),
            "task": dataclasses.asdict(args.task_options) if args.task_options is not None else {},
            "distill": dataclasses.asdict(args.distill),
            "training": training.to_dict(),
        },
        "data": {**data_report.to_dict(), "truncation": truncation},
        "distillation": distillation,
    }


def run_results(
    config: dict[str, Any],
    trainer: Any,
    dev: dict[str, float],
    test: dict[str, float],
    train: dict[str, Any],
    history: list[dict],
    code_state: dict[str, Any],
) -> dict[str, Any]:
    """The finished run's record: its config, final dev and test scores, histories and timings.

    Strict JSON: an undefined score (NaN, e.g. ROC-AUC of a one-class test set) is None, and
    `undefined` says why, keyed by where it is ("test.roc_auc").
    """
    results = {
        **config,
        "dev": {k.removeprefix("eval_"): v for k, v in dev.items()},
        "test": {k.removeprefix("test_"): v for k, v in test.items()},
        "dev_history": [e for e in history if "eval_loss" in e],
        "train_history": [e for e in history if "loss" in e],
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "train": train,
        "environment": code_state,
    }
    results, undefined = finite(results)
    return {**results, "undefined": undefined}
