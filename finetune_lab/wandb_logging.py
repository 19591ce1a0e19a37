"""Weights & Biases: one run per training job, never a prompt, never a failed job because of W&B.

Trainer's own WandbCallback logs the curves (train/loss, eval/* once per evaluation during
training); this module opens the run first (so it gets our project, entity, name, group, tags and
sanitized config), falls back to offline mode when there is no API key or W&B cannot start, and adds
what the curves do not hold, in the summary: the common main-metric key with its best value and
step, the final evaluation of the kept model (`eval/best_*`, never one more point on the curves),
test metrics, the mean train loss (`train/mean_loss`, beside the curve's `train/loss`), per-class
tables, the confusion matrix, data counts after --max_*_samples, speed and peak memory, and (with
--wandb_log_model or WANDB_LOG_MODEL=end) the best model as one artifact, uploaded once, by us.
"""

from __future__ import annotations

import contextlib
import netrc
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from transformers import TrainerCallback
from transformers.integrations import WandbCallback

from finetune_lab.errors import UsageError
from finetune_lab.hardware import peak_memory_mb
from finetune_lab.metrics import greater_is_better, per_class_rows
from finetune_lab.results import redact_argv

# Every task's main metric (f1 for NER, accuracy for sentiment, ...) also under one key, so one
# dashboard panel compares runs of all tasks; config.main_metric says which metric it is.
MAIN_EVAL, MAIN_TEST = "eval/main", "test/main"


def has_wandb_credentials() -> bool:
    """An API key in the environment or in ~/.netrc (where `wandb login` stores it)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        path = os.environ.get("NETRC") or Path.home() / ".netrc"
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def choose_wandb_mode() -> str:
    """WANDB_MODE as the user set it, else online with a key and offline (said once) without."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if has_wandb_credentials():
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    print("W&B: no API key found, logging offline to ./wandb (upload later with `wandb sync wandb/offline-run-*`)")
    return "offline"


def experiment_notes(path: str | None) -> str | None:
    """The leading comment block of an experiment file (what the variation is for), or None."""
    if not path:
        return None
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    comment = []
    for line in lines:
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    return " ".join(c for c in comment if c) or None


def wandb_tags(config: dict[str, Any]) -> list[str]:
    """results.json's tags (task, model, precision, seed) plus the fine-tuning method (PEFT or full)."""
    run_options = (config.get("options") or {}).get("run") or {}
    peft = run_options.get("peft") or run_options.get("peft_method")  # none in this repo yet
    return [*config.get("tags", []), f"peft-{peft}" if peft else "full-finetune"]


def run_name(config: dict[str, Any]) -> str:
    """The W&B run's name: the run folder's name, the experiment file's name and the data source."""
    return " · ".join(
        str(p) for p in (config.get("run_name"), config.get("experiment_name"), config.get("data_source")) if p
    )


def run_group(config: dict[str, Any]) -> str:
    """The W&B group: one per seed group (the leaderboard's row), readable: task, experiment, data, seed group."""
    parts = (config.get("task"), config.get("experiment_name"), config.get("data_source"), config.get("seed_group"))
    return " · ".join(str(p) for p in parts if p)


def start_wandb(config: dict[str, Any], project: str, entity: str | None = None):
    """Open the W&B run on the main process; offline if it cannot start online. None if W&B fails.

    Dashboard conventions: project from --project (default: WANDB_PROJECT, else finetune-lab),
    entity from --wandb_entity (default: WANDB_ENTITY, else your W&B default), group = seed group
    (see run_group: seeds of one experiment together, different experiments apart), job type
    "train", tags for task / model / precision / seed / experiment / data / PEFT, notes from --notes
    or else the experiment file's leading comment, and one common key `eval/main` (every task's
    main metric) whose summary is the best dev value.
    """
    import wandb

    mode = choose_wandb_mode()
    init = dict(
        project=project,
        entity=entity or None,
        name=run_name(config),
        # search.py sets these for its trials: group = the study, job type "trial"
        group=os.environ.get("FINETUNE_LAB_WANDB_GROUP") or run_group(config),
        tags=list(dict.fromkeys(wandb_tags(config))),
        config=config,
        notes=config.get("notes") or experiment_notes(config.get("experiment_file")),
        job_type=os.environ.get("FINETUNE_LAB_WANDB_JOB_TYPE") or "train",
        reinit="finish_previous",
    )
    argv = redact_sys_argv()  # W&B records the command line as the run starts
    try:
        run = wandb.init(mode=mode, **init)
    except Exception as err:  # bad key, no network, server error: keep training, log offline
        if mode == "offline":
            print(f"W&B: cannot start even offline ({type(err).__name__}: {err}); continuing without W&B")
            return None
        print(f"W&B: cannot start online ({type(err).__name__}); falling back to offline logging")
        os.environ["WANDB_MODE"] = "offline"
        try:
            run = wandb.init(mode="offline", **init)
        except Exception as err2:
            print(f"W&B: cannot start offline either ({type(err2).__name__}: {err2}); continuing without W&B")
            return None
    finally:
        sys.argv = argv
    define_metrics(run, _greater_is_better(config))
    return run


# WANDB_LOG_MODEL values and what run.py does with each (Trainer's callback itself never uploads).
LOG_MODEL_VALUES = {"": False, "false": False, "end": True}


def model_upload(wandb_log_model: bool, report_to: list[str]) -> bool:
    """Whether to upload the best model at the end: --wandb_log_model true or WANDB_LOG_MODEL=end
    (Trainer's own switch, same meaning). Either way it is uploaded once, by log_final.

    WANDB_LOG_MODEL=checkpoint (an artifact per checkpoint) and values Trainer would ignore with a
    warning are errors, and so is --wandb_log_model without W&B: nothing asked for is dropped silently.
    """
    value = os.environ.get("WANDB_LOG_MODEL", "").strip().lower()
    if value not in LOG_MODEL_VALUES:
        raise UsageError(
            f"WANDB_LOG_MODEL={os.environ['WANDB_LOG_MODEL']}: run.py uploads the best model once, at the end; "
            "set WANDB_LOG_MODEL=end (or --wandb_log_model true) for that, or unset it"
        )
    wanted = wandb_log_model or LOG_MODEL_VALUES[value]
    if wandb_log_model and "wandb" not in report_to:
        raise UsageError(
            "--wandb_log_model true uploads to W&B, but --report_to has no wandb; add it or drop the option"
        )
    return wanted and "wandb" in report_to


@contextlib.contextmanager
def trainer_uploads_no_model() -> Iterator[None]:
    """Build the Trainer inside this: its WandbCallback reads WANDB_LOG_MODEL when it is created, and would
    upload the model (and its architecture at the start) a second time; log_final does the one upload."""
    saved = os.environ.get("WANDB_LOG_MODEL")
    os.environ["WANDB_LOG_MODEL"] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WANDB_LOG_MODEL", None)
        else:
            os.environ["WANDB_LOG_MODEL"] = saved


@contextlib.contextmanager
def off_the_curves(trainer: Any) -> Iterator[None]:
    """Run the final evaluations (the kept model on dev, then test) inside this: Trainer's WandbCallback
    and our MainMetricLogger are taken off meanwhile, so they add no point to the eval/* curves (whose
    last point stays the last epoch); log_final puts these scores in the summary as eval/best_*, test/*."""
    handler = trainer.callback_handler
    removed = [cb for cb in handler.callbacks if isinstance(cb, WandbCallback | MainMetricLogger)]
    for callback in removed:
        trainer.remove_callback(callback)
    try:
        yield
    finally:
        for callback in removed:
            trainer.add_callback(callback)


def redact_sys_argv() -> list[str]:
    """Replace sys.argv by a copy without secrets, for wandb.init; return the original to put back.

    W&B records the command line (wandb-metadata.json's `args`, uploaded by `wandb sync`) from
    sys.argv when the run starts, and has no setting to leave it out short of dropping all system
    metadata (x_disable_meta). The command line stays recorded, with `--hub_token X` as
    `--hub_token <redacted>` and any environment secret's value replaced.
    """
    saved = sys.argv
    sys.argv = [*saved[:1], *redact_argv(saved[1:])]
    return saved


def _greater_is_better(config: dict[str, Any]) -> bool:
    explicit = ((config.get("options") or {}).get("training") or {}).get("greater_is_better")
    return greater_is_better(config.get("main_metric") or "", explicit)


def define_metrics(run, greater_is_better: bool = True) -> None:
    """Curves against the Trainer's step; the summary of `eval/main` keeps the best dev value."""
    run.define_metric("train/global_step")
    run.define_metric("train/epoch", step_metric="train/global_step")
    run.define_metric(MAIN_EVAL, step_metric="train/global_step", summary="max" if greater_is_better else "min")
    run.define_metric(MAIN_TEST, summary="last")


class MainMetricLogger(TrainerCallback):
    """After each evaluation: the task's main metric under the common key `eval/main` (with the
    epoch, for an x = epoch chart), and the best value so far with its step and epoch in the summary."""

    def __init__(self, run, main_metric: str, greater_is_better: bool = True) -> None:
        self.run, self.key, self.greater = run, f"eval_{main_metric}", greater_is_better
        self.best: float | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics or self.key not in metrics:
            return
        value = float(metrics[self.key])
        self.run.log({MAIN_EVAL: value, "train/epoch": state.epoch, "train/global_step": state.global_step})
        if self.best is None or (value > self.best if self.greater else value < self.best):
            self.best = value
            self.run.summary.update(
                {
                    f"{MAIN_EVAL}_best": value,
                    f"{MAIN_EVAL}_best_step": state.global_step,
                    f"{MAIN_EVAL}_best_epoch": state.epoch,
                }
            )


def callbacks(run, config: dict[str, Any]) -> list[TrainerCallback]:
    """Trainer callbacks for our W&B conventions (none without a W&B run)."""
    if run is None:
        return []
    return [MainMetricLogger(run, config["main_metric"], _greater_is_better(config))]


def data_summary(data: dict[str, Any]) -> dict[str, int]:
    """Dataset sizes, drop counts and truncations per split, as flat summary keys.

    `examples`: what was trained and scored on (after --max_*_samples); `loaded`: before those limits.
    """
    out: dict[str, int] = {}
    for split, count in (data.get("used") or data.get("kept") or {}).items():
        out[f"data/{split}/examples"] = count
    for split, count in (data.get("kept") or {}).items():
        out[f"data/{split}/loaded"] = count
    for split, reasons in (data.get("dropped") or {}).items():
        out[f"data/{split}/dropped"] = sum(reasons.values())
    for split, counts in (data.get("truncation") or {}).items():
        out[f"data/{split}/truncated"] = counts.get("truncated", 0)
    return out


# results.json's `train` keys whose W&B name differs: the curve `train/loss` (per logging step) keeps
# its own summary (the last logged value); the mean over all steps goes beside it.
TRAIN_KEYS = {"loss": "train/mean_loss"}


def log_final(run, results: dict[str, Any], test_output: Any = None, model_dir: Path | None = None) -> None:
    """At the end of a run, into the summary: the kept model's final dev scores (`eval/best_<metric>`),
    test scores (`test/<metric>`, `test/main`), the --extra_eval and --perturbed_eval scores
    (`extra_eval/NAME/<metric>`, `perturbed_eval/KIND:RATE/<metric>`), per-class tables, the test confusion matrix
    (classification), data counts, speed, mean train loss and peak memory; with model_dir, the saved
    best model as an artifact."""
    import wandb

    if run is None:
        return
    scored = [("eval/best_", results.get("dev") or {}), ("test/", results.get("test") or {})]
    for section in ("extra_eval", "perturbed_eval"):  # --extra_eval NAME / --perturbed_eval KIND:RATE, beside test
        scored += [(f"{section}/{name}/", metrics) for name, metrics in (results.get(section) or {}).items()]
    for prefix, metrics in scored:
        # `epoch` is when the final evaluation ran, not the best epoch (that is eval/main_best_epoch)
        run.summary.update({f"{prefix}{k}": v for k, v in metrics.items() if _is_number(v) and k != "epoch"})
        rows = per_class_rows(metrics) if prefix in ("eval/best_", "test/") else {}  # robust sets: numbers only
        if rows:
            table = wandb.Table(columns=["class", "precision", "recall", "f1", "support"])
            for name, row in rows.items():
                table.add_data(name, row.get("precision"), row.get("recall"), row.get("f1"), int(row.get("support", 0)))
            run.log({f"{prefix}per_class_report": table})
    main = results.get("main_metric")
    if main in (results.get("test") or {}):
        run.summary[MAIN_TEST] = results["test"][main]
    train = results.get("train") or {}
    run.summary.update({TRAIN_KEYS.get(k, f"train/{k}"): v for k, v in train.items() if _is_number(v)})
    run.summary.update(data_summary(results.get("data") or {}))
    run.summary["system/peak_memory_mb"] = train.get("peak_memory_mb") or peak_memory_mb()
    labels = results.get("labels") or []
    predictions = getattr(test_output, "predictions", None)
    label_ids = getattr(test_output, "label_ids", None)
    if predictions is not None and label_ids is not None and predictions.ndim == 2:  # one label per text
        run.log(
            {
                "test/confusion_matrix": wandb.plot.confusion_matrix(
                    y_true=label_ids.tolist(), preds=predictions.argmax(-1).tolist(), class_names=list(labels)
                )
            }
        )
    if model_dir is not None:
        metadata = {"main_metric": main, "dev": (results.get("dev") or {}).get(main)}
        metadata["test"] = (results.get("test") or {}).get(main)
        try:
            log_model_artifact(run, Path(model_dir), metadata, results.get("run_name"))
        except Exception as err:  # never fail a finished run over an upload
            print(f"W&B: cannot log the model artifact ({type(err).__name__}: {err})")


def log_model_artifact(run, model_dir: Path, metadata: dict[str, Any] | None = None, name: str | None = None):
    """The saved best model (top-level files of the run folder, no checkpoints) as a 'model' artifact
    named after the run folder (`name`, else the W&B run's name)."""
    import wandb

    name = re.sub(r"[^A-Za-z0-9._-]", "-", f"model-{name or run.name}")
    artifact = wandb.Artifact(name=name, type="model", metadata=metadata or {})
    for path in sorted(model_dir.iterdir()):
        # training_args.bin is a pickle, not part of the model; dot files (the run's lock) are not either
        if path.is_file() and path.suffix != ".bin" and not path.name.startswith("."):
            artifact.add_file(str(path), name=path.name)
    run.log_artifact(artifact, aliases=["best"])
    return artifact


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def finish(run, exit_code: int = 0) -> None:
    if run is not None:
        run.finish(exit_code=exit_code)
