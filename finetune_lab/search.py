"""Hyperparameter search with Optuna: every trial a normal run.py run, the study on disk.

    python search.py --task ner [--space experiments/search/ner.yaml] [--n_trials 20] [--workers 2] [run options]

Optuna samples (TPE, seeded) and prunes (median or successive halving on the per-epoch dev main
metric); this module turns a trial into run.py's `main(argv)` with its own run folder under the
study's folder, reports each evaluation to the pruner, and keeps the study resumable:

- storage: Optuna's journal file (`<study_dir>/journal.log`) by default, or an RDB URL (`--storage`);
- a worker holds a lock file (flock, dropped by the kernel however the process dies) while it runs;
  a RUNNING trial whose worker's lock is free was interrupted (kill -9, crash): it is marked FAIL and
  queued again with the same parameters (RDB storage: Optuna's own heartbeat does the same);
- `--workers k` runs k processes on one storage; Optuna's MaxTrialsCallback, counting finished,
  pruned and running trials, stops them all at --n_trials;
- at the end: a table of trials, the importance / history / intermediate-value plots and the best
  parameters as an experiment file (`experiments/<study>-best.yaml`).

A cheap first stage (`--stage1_fraction`, `--stage1_epochs`, `--top_k`) runs every trial on a part of
the training data, then re-runs the top k on all of it (a second study, `<study>-full`).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from transformers import HfArgumentParser, TrainerCallback

from finetune_lab import tables
from finetune_lab.errors import OneLineErrors, TrainingError, UsageError
from finetune_lab.metrics import greater_is_better
from finetune_lab.results import atomic_write_text, write_json
from finetune_lab.search_space import SearchSpace, as_cli, cli_options, parse_space, suggest

# The W&B run of each trial: group = the study, job type "trial" (read by wandb_logging.start_wandb).
WANDB_GROUP_ENV, WANDB_JOB_TYPE_ENV = "FINETUNE_LAB_WANDB_GROUP", "FINETUNE_LAB_WANDB_JOB_TYPE"
# A trial re-run this many times after its worker died (kill -9, out of memory) is not queued again.
MAX_RETRIES = 2
# A RUNNING trial with no worker recorded is only possible in the instant between Optuna creating it
# and the objective's first line; one that old was left by a worker that died in that instant.
NO_WORKER_GRACE_S = 300
# RDB storage: Optuna's heartbeat marks a trial whose worker stopped beating for GRACE seconds as FAIL.
HEARTBEAT_S, HEARTBEAT_GRACE_S = 60, 180
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


@dataclass
class SearchArguments:
    task: str | None = field(default=None, metadata={"help": "Task to search (run.py --help lists them)."})
    space: str | None = field(
        default=None, metadata={"help": "Search-space file (default: experiments/search/<task>.yaml)."}
    )
    n_trials: int = field(
        default=20,
        metadata={"help": "Finished trials (complete or pruned) the study should have; a rerun continues up to it."},
    )
    workers: int = field(default=1, metadata={"help": "Worker processes on this machine sharing the study."})
    study_name: str | None = field(default=None, metadata={"help": "Study name (default: <task>-search)."})
    study_dir: str | None = field(
        default=None, metadata={"help": "Study folder: journal, trial runs, report (default: outputs/search/<study>)."}
    )
    storage: str | None = field(
        default=None,
        metadata={
            "help": "Optuna RDB URL shared by several machines (postgresql://..., mysql+pymysql://...); "
            "default: the journal file <study_dir>/journal.log."
        },
    )
    sampler_seed: int = field(default=42, metadata={"help": "Seed of the TPE sampler (trials use --seed)."})
    startup_trials: int = field(
        default=10, metadata={"help": "Random trials before TPE models the results (Optuna's n_startup_trials)."}
    )
    pruner: str = field(
        default="median",
        metadata={
            "help": "Stop bad trials after an evaluation: median (below the median of earlier trials), "
            "halving (successive halving) or none.",
            "choices": ["median", "halving", "none"],
        },
    )
    pruner_startup_trials: int = field(
        default=5, metadata={"help": "Median pruner: finished trials before it prunes anything."}
    )
    pruner_warmup_epochs: int = field(
        default=0, metadata={"help": "Median pruner: evaluations a trial always gets (0: prune after the first)."}
    )
    stage1_fraction: float | None = field(
        default=None,
        metadata={"help": "Two stages: stage-1 trials train on this fraction of the training data (e.g. 0.25)."},
    )
    stage1_epochs: float | None = field(
        default=None, metadata={"help": "Two stages: epochs of every stage-1 trial (e.g. 1)."}
    )
    top_k: int = field(default=3, metadata={"help": "Two stages: the best k stage-1 trials re-run on all the data."})
    baseline: bool = field(
        default=False,
        metadata={
            "help": "Run the task's default values of the searched options as the first trial (two stages: "
            "re-run on all the data beside the top k, so the search's best is measured against them)."
        },
    )
    best_file: str | None = field(
        default=None, metadata={"help": "Where the best parameters go (default: experiments/<study>-best.yaml)."}
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata={"help": "Keep each finished trial's checkpoints (default: removed; the best model stays)."},
    )
    report_only: bool = field(
        default=False, metadata={"help": "Run no trial: print the table, write the plots and the best file."}
    )
    worker_index: int | None = field(default=None, metadata={"help": "Internal: set for the worker processes."})
    stage: int = field(default=1, metadata={"help": "Internal: the stage a worker process runs (1, or 2: all data)."})


class _Parser(OneLineErrors, HfArgumentParser):
    pass


@dataclass
class Settings:
    """Everything a worker needs; the same in every worker (they get the same command line)."""

    args: SearchArguments
    task: str
    study_name: str
    study_dir: Path
    space: SearchSpace
    run_args: list[str]  # run.py options from the search's command line, passed to every trial
    metric: str  # the dev main metric (metric_for_best_model), the objective
    maximize: bool
    stage1_args: list[str]  # the extra options of a stage-1 trial (two stages), else []
    baseline: dict[str, Any] | None = None  # --baseline: the searched options' values without the search

    @property
    def two_stage(self) -> bool:
        return bool(self.stage1_args)

    @property
    def full_study_name(self) -> str:
        return f"{self.study_name}-full"


# Parsing and checking -----------------------------------------------------------------------------


def parse_search_arguments(argv: list[str]) -> tuple[SearchArguments, list[str]]:
    """The search's own options, and the rest: run.py options for every trial."""
    parser = _Parser([SearchArguments], prog="search.py", allow_abbrev=False)
    args, rest = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    if not args.task:
        from tasks import available_tasks

        raise UsageError(f"--task is required; available tasks: {', '.join(available_tasks())}")
    if args.n_trials < 1:
        raise UsageError(f"--n_trials {args.n_trials}: must be at least 1")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: must be at least 1")
    if args.stage1_fraction is not None and not 0 < args.stage1_fraction < 1:
        raise UsageError(f"--stage1_fraction {args.stage1_fraction:g}: must be between 0 and 1 (e.g. 0.25)")
    if args.stage1_epochs is not None and not (math.isfinite(args.stage1_epochs) and args.stage1_epochs > 0):
        raise UsageError(f"--stage1_epochs {args.stage1_epochs:g}: must be a positive number")
    if args.top_k < 1:
        raise UsageError(f"--top_k {args.top_k}: must be at least 1")
    two_stage = args.stage1_fraction is not None or args.stage1_epochs is not None
    if two_stage and args.top_k > args.n_trials:
        raise UsageError(f"--top_k {args.top_k}: more than the {args.n_trials} trials of stage 1 (--n_trials)")
    return args, rest


def settle(argv: list[str]) -> Settings:
    """Parse and check everything a search needs, before any trial trains: one line per mistake."""
    from finetune_lab.arguments import build_parser, parse_arguments
    from tasks import get_task_class

    args, run_args = parse_search_arguments(argv)
    task_class = get_task_class(args.task)
    space_path = args.space or f"experiments/search/{args.task}.yaml"
    if not Path(space_path).is_file():
        raise UsageError(f"--space {space_path}: no such file (search spaces live in experiments/search/)")
    parser = build_parser(task_class)
    space = parse_space(space_path, args.task, parser)
    for word in run_args:
        if word in ("--task", "--output_dir", "--run_name", "--resume", "--overwrite_output_dir") or word.startswith(
            ("--task=", "--output_dir=", "--run_name=", "--resume=", "--overwrite_output_dir=")
        ):
            raise UsageError(f"{word.split('=')[0]}: set by the search for each trial; leave it out")
    given = cli_options(run_args, parser)  # checked and typed (and an unknown option named) now
    for key in given:
        if key in space.params or key in space.fixed:
            raise UsageError(f"--{key} on the command line and in {space_path} ({key}): give it in one place only")

    study_name = args.study_name or f"{args.task}-search"
    if not study_name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(f"--study_name {study_name!r}: letters, digits, '-', '_' and '.' only (it names folders)")
    study_dir = Path(args.study_dir or f"outputs/search/{study_name}")

    # One trial's command line, parsed for real: a contradiction among the options fails now, not
    # after the first trial. Its settled metric is the objective.
    sample = {name: _first_value(dist) for name, dist in space.params.items()}
    probe = parse_arguments(["--task", args.task, *run_args, *as_cli({**space.fixed, **sample})])
    metric = probe.training.metric_for_best_model
    if not metric:
        raise UsageError(f"task {args.task}: no metric_for_best_model, so a search has nothing to maximise")
    maximize = greater_is_better(metric, probe.training.greater_is_better)
    baseline = baseline_values(args.task, run_args, space, space_path) if args.baseline else None

    stage1_args: list[str] = []
    if args.stage1_fraction is not None or args.stage1_epochs is not None:
        if args.stage1_epochs is not None:
            if "num_train_epochs" in space.params:
                raise UsageError(
                    f"{space_path}: num_train_epochs: searched, but --stage1_epochs fixes stage 1's epochs; "
                    "drop one of them"
                )
            stage1_args += ["--num_train_epochs", repr(args.stage1_epochs)]
        if args.stage1_fraction is not None:
            if "max_train_samples" in space.params:
                raise UsageError(
                    f"{space_path}: max_train_samples: searched, but --stage1_fraction sets stage 1's; drop one"
                )
            total = len(probe.task.load(probe.data).splits["train"])
            cap = probe.data.max_train_samples
            used = min(total, cap) if cap else total
            stage1_args += ["--max_train_samples", str(max(1, round(used * args.stage1_fraction)))]
    return Settings(args, args.task, study_name, study_dir, space, run_args, metric, maximize, stage1_args, baseline)


def baseline_values(task: str, run_args: list[str], space: SearchSpace, space_path: str) -> dict[str, Any]:
    """The value each searched option has in a run without the search (task defaults, the search's run
    options, the space's fixed values); each must lie in the space, or Optuna could not replay it."""
    from finetune_lab.arguments import parse_arguments

    parsed = parse_arguments(["--task", task, *run_args, *as_cli(space.fixed)])
    groups = [parsed.run, parsed.model, parsed.data, parsed.task_options, parsed.training]
    values = {}
    for name, dist in space.params.items():
        value = next(getattr(group, name) for group in groups if group is not None and hasattr(group, name))
        inside = value in dist.choices if hasattr(dist, "choices") else dist.low <= value <= dist.high
        if not inside:
            where = f"choices {list(dist.choices)}" if hasattr(dist, "choices") else f"{dist.low:g} to {dist.high:g}"
            raise UsageError(
                f"--baseline: {name} is {value!r} without the search, outside {space_path} ({where}); "
                "widen the space or leave --baseline out"
            )
        values[name] = value
    return values


def queue_baseline(study: optuna.Study, settings: Settings) -> None:
    """--baseline: the defaults, queued once as a trial of stage 1 (whichever worker comes first)."""
    with study_lock(settings.study_dir):
        if study.user_attrs.get("baseline_queued") is None:
            study.enqueue_trial(settings.baseline, user_attrs={"baseline": True})
            study.set_user_attr("baseline_queued", True)


def _first_value(dist: Any) -> Any:
    return dist.choices[0] if hasattr(dist, "choices") else dist.low


# Storage, workers and interrupted trials ------------------------------------------------------------


def journal_path(study_dir: Path) -> Path:
    return study_dir / "journal.log"


def open_storage(settings: Settings) -> optuna.storages.BaseStorage:
    """The study's storage: an RDB URL (with Optuna's heartbeat) or the journal file in the study folder."""
    if settings.args.storage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return RDBStorage(
                    settings.args.storage,
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=HEARTBEAT_GRACE_S,
                    heartbeat_stale_trial_callback=retry_trial,
                )
            except (ImportError, ValueError) as err:
                raise UsageError(f"--storage {settings.args.storage}: cannot open ({err})") from None
            except Exception as err:  # sqlalchemy's connection errors
                reason = f"{type(err).__name__}: {str(err).splitlines()[0]}"
                raise UsageError(f"--storage {settings.args.storage}: cannot connect ({reason})") from None
    settings.study_dir.mkdir(parents=True, exist_ok=True)
    path = journal_path(settings.study_dir)
    repair_journal(path)
    return JournalStorage(JournalFileBackend(str(path)))


def repair_journal(path: Path) -> None:
    """Drop a last journal record cut short by a kill mid-write (it would corrupt the next one), said.

    Done under the journal's own lock, so no live writer is mid-record.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
        print(f"{path}: removed a last record cut short by an interrupted write ({len(data) - keep} bytes)")
    finally:
        lock.release()


class WorkerLock:
    """A worker's lock file, `<study_dir>/workers/<id>.lock`, held (flock) for the worker's lifetime.

    The kernel drops the lock when the process dies, however it dies, so a trial whose worker's
    lock can be taken was interrupted. The file is locked before it gets its name (a rename of a
    locked temporary file), so no one ever sees it unlocked while its worker lives.
    """

    def __init__(self, study_dir: Path) -> None:
        self.folder = study_dir / "workers"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        temporary = self.folder / f".{self.id}.tmp"
        self.fd = os.open(temporary, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.path = self.folder / f"{self.id}.lock"
        os.replace(temporary, self.path)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)


def worker_alive(folder: Path, worker: str) -> bool:
    """Whether worker `worker`'s lock is still held. A lock taken here means it died; its file is removed."""
    path = folder / f"{worker}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a file system without flock: the process id tells, on this host
        host, pid = worker.rsplit("-", 2)[0], int(worker.rsplit("-", 2)[1])
        if host != socket.gethostname():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        path.unlink()
    return False


@contextlib.contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """One process at a time fails stale trials and queues stage 2 (so nothing is queued twice)."""
    study_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(study_dir / ".search.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def retry_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue an interrupted trial again with its parameters (a new trial number), up to MAX_RETRIES times."""
    retries = int(trial.user_attrs.get("retries", 0))
    if retries >= MAX_RETRIES:
        print(f"trial {trial.number}: interrupted {retries + 1} times with these parameters; not queued again")
        return
    user_attrs = {"retry_of": trial.number, "retries": retries + 1}
    user_attrs |= {k: v for k, v in trial.user_attrs.items() if k in ("baseline", "stage1_trial", "stage1_value")}
    study.enqueue_trial(trial.params, user_attrs=user_attrs)
    print(f"trial {trial.number}: interrupted (its worker stopped); queued again with the same parameters")


def fail_stale_trials(study: optuna.Study, settings: Settings) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone and queue them again; their numbers.

    Journal storage only: RDB storage has Optuna's heartbeat, which does this by itself.
    """
    if settings.args.storage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return []
    failed = []
    folder = settings.study_dir / "workers"
    now = datetime.datetime.now()
    with study_lock(settings.study_dir):
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = trial.user_attrs.get("worker")
            if worker is None:
                started = trial.datetime_start or now
                if (now - started).total_seconds() < NO_WORKER_GRACE_S:
                    continue
            elif worker_alive(folder, worker):
                continue
            storage, trial_id = study._storage, trial._trial_id  # what optuna's own fail_stale_trials uses
            storage.set_trial_user_attr(trial_id, "error", f"interrupted: its worker {worker} stopped")
            try:
                storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # it finished after all
            failed.append(trial.number)
            retry_trial(study, storage.get_trial(trial_id))
    return failed


def load_study(settings: Settings, name: str, worker_index: int = 0, pruning: bool = True) -> optuna.Study:
    """The study `name`, created on first use; its search settings must match the ones it was created with."""
    storage = open_storage(settings)
    try:
        n_existing = len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:
        n_existing = 0
    # A fresh sampler continues where the earlier ones left off, not from their first draw again:
    # the seed moves with the study's size (and differs per worker, so no two draw the same values).
    seed = settings.args.sampler_seed + 10007 * worker_index + n_existing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.args.startup_trials)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=make_pruner(settings) if pruning else optuna.pruners.NopPruner(),
        direction="maximize" if settings.maximize else "minimize",
        load_if_exists=True,
    )
    fingerprint = {
        "task": settings.task,
        "space": settings.space.to_json(),
        "run_args": settings.run_args,
        "stage1_args": settings.stage1_args,
        "metric": settings.metric,
    }
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", fingerprint)
    elif stored != fingerprint:
        changed = [key for key in fingerprint if stored.get(key) != fingerprint[key]]
        raise UsageError(
            f"study {name} in {settings.args.storage or journal_path(settings.study_dir)} was started with other "
            f"settings ({', '.join(changed)} differ); rerun it as it was, or pass a new --study_name"
        )
    return study


def make_pruner(settings: Settings) -> optuna.pruners.BasePruner:
    """Median or successive halving on the per-evaluation (per-epoch) dev metric."""
    args = settings.args
    if args.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=args.pruner_startup_trials, n_warmup_steps=args.pruner_warmup_epochs
        )
    if args.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


# One trial ----------------------------------------------------------------------------------------


class ReportToPruner(TrainerCallback):
    """After each evaluation during training: the dev main metric to Optuna; stop the run when it prunes.

    A pruned run ends as a normal run (best model, results.json): training stops after the
    evaluation, and the search marks its results.json and the trial as pruned. Steps are counted in
    evaluations (one per epoch by default), so trials with other batch sizes line up.
    """

    def __init__(self, trial: optuna.Trial, metric: str, context: dict[str, Any]) -> None:
        self.trial, self.key, self.context = trial, f"eval_{metric}", context
        self.evaluations, self.pruned_at, self.training = 0, None, False

    def on_train_begin(self, args, state, control, **kwargs):
        self.training = True
        wandb = sys.modules.get("wandb")
        run = getattr(wandb, "run", None) if wandb else None
        if run is not None and state.is_world_process_zero:  # the trial's W&B run, opened by run.py
            run.config.update({"search": self.context}, allow_val_change=True)

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False  # run.py's final evaluation of the best model is not a training step

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not self.training or not metrics or self.key not in metrics:
            return
        self.evaluations += 1
        value = float(metrics[self.key])
        if not math.isfinite(value):
            return
        self.trial.report(value, step=self.evaluations)
        if self.trial.should_prune():
            self.pruned_at = self.evaluations
            print(
                f"trial {self.trial.number}: pruned after evaluation {self.evaluations} "
                f"({self.key.removeprefix('eval_')} {value:.4f})",
                flush=True,
            )
            control.should_training_stop = True


class Objective:
    """The objective Optuna calls: one run.py run; its value is the dev main metric (never test)."""

    def __init__(self, settings: Settings, worker: WorkerLock, stage: int, study_name: str) -> None:
        self.settings, self.worker, self.stage, self.study_name = settings, worker, stage, study_name
        self.fatal: UsageError | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        from run import main as run_main

        settings = self.settings
        trial.set_user_attr("worker", self.worker.id)  # first: so an interrupted trial is recognised
        params = suggest(trial, settings.space)
        name = f"{self.study_name}-trial-{trial.number:04d}"
        run_dir = settings.study_dir / ("trials" if self.stage == 1 else "trials-full") / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        stage_args = settings.stage1_args if self.stage == 1 else []
        argv = ["--task", settings.task, *settings.run_args, *as_cli({**settings.space.fixed, **params}), *stage_args]
        argv += ["--output_dir", str(run_dir), "--run_name", name]
        context = {"study": self.study_name, "trial": trial.number, "stage": self.stage, "params": params}
        pruner = ReportToPruner(trial, settings.metric, context)
        saved = {key: os.environ.get(key) for key in (WANDB_GROUP_ENV, WANDB_JOB_TYPE_ENV)}
        os.environ[WANDB_GROUP_ENV], os.environ[WANDB_JOB_TYPE_ENV] = self.study_name, "trial"
        print(f"\n=== {name}: " + " ".join(as_cli(params)), flush=True)
        try:
            results = run_main(argv, callbacks=[pruner])
        except TrainingError as err:  # e.g. NaN loss at a too-high learning rate: this trial fails, the search goes on
            return self._fail(trial, str(err))
        except UsageError as err:  # the same for every trial: stop the search with this one line
            self.fatal = err
            trial.study.stop()
            return self._fail(trial, str(err))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        value = (results.get("dev") or {}).get(settings.metric)
        state = "pruned" if pruner.pruned_at else "complete"
        if value is None:
            state = "failed"
        record = {**context, "state": state, "evaluations": pruner.evaluations, "objective": f"dev {settings.metric}"}
        write_json(run_dir / "results.json", {**results, "search": record})
        if not settings.args.keep_checkpoints:
            remove_checkpoints(run_dir)
        if value is None:
            return self._fail(trial, f"dev {settings.metric} is undefined in {run_dir / 'results.json'}")
        trial.set_user_attr("test", (results.get("test") or {}).get(settings.metric))  # shown, never optimised
        trial.set_user_attr("seconds", (results.get("train") or {}).get("seconds"))
        if pruner.pruned_at:
            raise optuna.TrialPruned(f"after evaluation {pruner.pruned_at}")
        return float(value)

    def _fail(self, trial: optuna.Trial, message: str) -> float:
        trial.set_user_attr("error", message)
        print(f"trial {trial.number} failed: {message}", flush=True)
        return float("nan")  # Optuna marks the trial FAIL (without a traceback in the log)


def remove_checkpoints(run_dir: Path) -> None:
    """A finished trial's checkpoints (optimizer state: about 3x the model) are removed; its best model stays."""
    import shutil

    for folder in sorted(run_dir.glob("checkpoint-*")):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def counted(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def waiting(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def work(settings: Settings, stage: int, worker_index: int) -> None:
    """One worker: run trials of the stage until the study has enough (or, in stage 2, none is waiting)."""
    name = settings.study_name if stage == 1 else settings.full_study_name
    study = load_study(settings, name, worker_index, pruning=stage == 1)
    worker = WorkerLock(settings.study_dir)
    objective = Objective(settings, worker, stage, name)
    try:
        fail_stale_trials(study, settings)
        if stage == 1:
            if settings.baseline is not None:
                queue_baseline(study, settings)
            if counted(study) >= settings.args.n_trials:
                return
            # Finished + pruned + running trials, over every worker: each stops once the study has n_trials.
            limit = optuna.study.MaxTrialsCallback(settings.args.n_trials, states=COUNTED)
        else:
            if not waiting(study):
                return

            def limit(study: optuna.Study, trial: FrozenTrial) -> None:  # stage 2 only runs what is queued
                if not waiting(study):
                    study.stop()

        def stale(study: optuna.Study, trial: FrozenTrial) -> None:
            fail_stale_trials(study, settings)

        study.optimize(objective, callbacks=[stale, limit], gc_after_trial=True)
    finally:
        worker.release()
    if objective.fatal is not None:
        raise objective.fatal


def run_workers(settings: Settings, stage: int, argv: list[str]) -> None:
    """`--workers 1`: trials in this process. More: that many processes of this command, then wait."""
    if settings.args.workers == 1:
        work(settings, stage, 0)
        return
    # created here, once, before the workers load it
    load_study(settings, settings.study_name if stage == 1 else settings.full_study_name, pruning=stage == 1)
    threads = max((os.cpu_count() or 1) // settings.args.workers, 1)
    processes = []
    for index in range(settings.args.workers):
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(threads))  # the cores shared out; the user's choice wins
        command = [sys.executable, str(Path(__file__).resolve().parent.parent / "search.py"), *argv]
        command += ["--worker_index", str(index), "--stage", str(stage)]
        processes.append(subprocess.Popen(command, env=env, preexec_fn=_die_with_parent))
    codes = [process.wait() for process in processes]
    bad = [f"worker {i} exited with {code}" for i, code in enumerate(codes) if code]
    if any(code == 2 for code in codes):
        raise UsageError("; ".join(bad) + " (its error is above)")
    if bad:
        raise TrainingError("; ".join(bad) + " (see above)")


def _die_with_parent() -> None:
    """Linux: a worker process dies with the search (kill -9 of `make search` stops its workers too)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# Two stages ------------------------------------------------------------------------------------------


def queue_stage2(settings: Settings) -> optuna.Study:
    """The top k stage-1 trials, queued once into the full-data study (waits for running stage-1 trials)."""
    stage1 = load_study(settings, settings.study_name)
    while True:
        fail_stale_trials(stage1, settings)
        running = stage1.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            break
        print(f"stage 2 waits for {len(running)} stage-1 trial(s) still running elsewhere")
        time.sleep(30)
    full = load_study(settings, settings.full_study_name, pruning=False)
    with study_lock(settings.study_dir):
        if full.user_attrs.get("queued") is None:
            top = ranked(stage1)[: settings.args.top_k]
            # --baseline: the defaults go to stage 2 too, whatever their stage-1 rank (pruned included)
            done = (TrialState.COMPLETE, TrialState.PRUNED)
            base = [t.number for t in stage1.get_trials(deepcopy=False, states=done) if t.user_attrs.get("baseline")]
            top += [stage1.trials[n] for n in base[:1] if n not in {t.number for t in top}]
            for trial in top:
                attrs = {"stage1_trial": trial.number, "stage1_value": trial.value}
                if trial.number in base:
                    attrs["baseline"] = True
                full.enqueue_trial(trial.params, user_attrs=attrs)
            full.set_user_attr("queued", [t.number for t in top])
            print(f"stage 2: stage-1 trials {[t.number for t in top]} re-run on all the training data")
    return full


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return sorted(complete, key=lambda t: (-t.value if maximize else t.value, t.number))


# Report -------------------------------------------------------------------------------------------


def trial_rows(study: optuna.Study, settings: Settings) -> tuple[list[str], list[list[str]]]:
    """The table of trials: complete ones best first, then pruned (by value), failed, running, waiting."""
    params = list(settings.space.params)
    header = ["trial", "state", f"dev {settings.metric}", f"test {settings.metric}", "evals", *params, "min", "note"]
    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.FAIL: 2, TrialState.RUNNING: 3}
    sign = -1 if settings.maximize else 1

    def key(trial: FrozenTrial) -> tuple:
        value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
        return (order.get(trial.state, 4), value is None, sign * value if value is not None else 0, trial.number)

    rows = []
    for trial in sorted(study.get_trials(deepcopy=False), key=key):
        state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "PRUNED", TrialState.FAIL: "FAILED"}.get(
            trial.state, trial.state.name.lower()
        )
        note = []
        if "retry_of" in trial.user_attrs:
            note.append(f"re-run of {trial.user_attrs['retry_of']}")
        if trial.user_attrs.get("baseline"):
            note.append("baseline: no search")
        if "stage1_trial" in trial.user_attrs:
            note.append(f"stage-1 trial {trial.user_attrs['stage1_trial']}")
        if trial.state == TrialState.PRUNED:
            note.append(f"pruned after evaluation {trial.last_step}")
        if "error" in trial.user_attrs:
            note.append(str(trial.user_attrs["error"])[:80])
        minutes = ""
        # an interrupted trial is completed (marked failed) when the next search finds it: no duration
        interrupted = str(trial.user_attrs.get("error", "")).startswith("interrupted")
        if trial.datetime_start and trial.datetime_complete and not interrupted:
            minutes = f"{(trial.datetime_complete - trial.datetime_start).total_seconds() / 60:.1f}"
        rows.append(
            [
                str(trial.number),
                state,
                _shown(trial.value),
                _shown(trial.user_attrs.get("test")),
                str(len(trial.intermediate_values)),
                *(_shown(trial.params.get(p)) for p in params),
                minutes,
                "; ".join(note),
            ]
        )
    return header, rows


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.4g}" if abs(value) < 1e-2 else f"{value:.4f}"
    return str(value)


def plots(study: optuna.Study, folder: Path, metric: str) -> list[str]:
    """history.png, importances.png, intermediate.png (Optuna's matplotlib plots); a note for each one skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as oplt

    notes = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    wanted = [("history.png", lambda: oplt.plot_optimization_history(study, target_name=f"dev {metric}"))]
    if len(complete) >= 2:
        wanted.append(("importances.png", lambda: oplt.plot_param_importances(study, target_name=f"dev {metric}")))
    else:
        notes.append(
            f"importances.png: parameter importances need at least 2 complete trials, this study has {len(complete)}"
        )
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        wanted.append(("intermediate.png", lambda: oplt.plot_intermediate_values(study)))
    for name, draw in wanted:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                axes = draw()
            except (ValueError, RuntimeError) as err:  # e.g. every trial with the same parameters
                notes.append(f"{name}: not drawn ({err})")
                continue
        # Optuna's own caveats (e.g. importances equal for want of spread): said, not swallowed
        caveats = {str(w.message) for w in caught if not issubclass(w.category, optuna.exceptions.ExperimentalWarning)}
        notes += [f"{name}: {caveat}" for caveat in sorted(caveats)]
        figure = axes.figure
        figure.savefig(folder / name, dpi=120, bbox_inches="tight")
        plt.close(figure)
    return notes


def write_best(settings: Settings, study: optuna.Study, trial: FrozenTrial) -> Path:
    """The best trial as an experiment file that `make <task> EXP=...` runs as it is."""
    from finetune_lab.arguments import build_parser, load_experiment
    from tasks import get_task_class

    parser = build_parser(get_task_class(settings.task))
    given = cli_options(settings.run_args, parser)
    base = load_experiment(given.pop("experiment")) if "experiment" in given else {}
    base.pop("task", None)
    options = {**base, **given, **settings.space.fixed, **trial.params}
    path = Path(settings.args.best_file or f"experiments/{settings.study_name}-best.yaml")
    stage = " (stage 2: all the training data)" if settings.two_stage else ""
    header = [
        f"# Best of search {settings.study_name}{stage}: trial {trial.number}, dev {settings.metric} "
        f"{trial.value:.4f} ({len(study.trials)} trials).",
        *(
            ["# This is the baseline (--baseline: the values without the search); no trial beat it."]
            if trial.user_attrs.get("baseline")
            else []
        ),
        f"# Written by search.py from {settings.space.path}; run it: make {settings.task} EXP={path}",
    ]
    import yaml

    body = yaml.safe_dump({"task": settings.task, **options}, sort_keys=False)
    atomic_write_text(path, "\n".join(header) + "\n" + body)
    return path


def report(settings: Settings) -> Path | None:
    """Print the table(s), write trials.md and the plots into the study folder and the best file; its path."""
    if settings.args.report_only:
        try:
            optuna.load_study(study_name=settings.study_name, storage=open_storage(settings))
        except KeyError:
            where = settings.args.storage or journal_path(settings.study_dir)
            raise UsageError(f"--report_only: no study {settings.study_name} in {where}") from None
    study = load_study(settings, settings.study_name)
    studies = [(study, "stage 1 (a part of the data)" if settings.two_stage else "trials")]
    if settings.two_stage:
        studies.append((load_study(settings, settings.full_study_name, pruning=False), "stage 2 (all the data)"))
    markdown = [f"# Search {settings.study_name}: task {settings.task}, objective dev {settings.metric}\n"]
    for current, title in studies:
        header, rows = trial_rows(current, settings)
        align = "rlrrr" + "r" * len(settings.space.params) + "rl"
        print(f"\n{settings.study_name}, {title}:\n" + tables.render(header, rows, align=align))
        markdown += [f"## {title}\n", tables.render(header, rows, fmt="markdown", align=align), ""]
    notes = plots(study, settings.study_dir, settings.metric)
    for note in notes:
        print(note)
    markdown += [f"- {note}" for note in notes]
    atomic_write_text(settings.study_dir / "trials.md", "\n".join(markdown) + "\n")
    final = studies[-1][0]
    best = ranked(final)
    if not best:
        print(f"no complete trial yet in {final.study_name}: no best file written")
        return None
    path = write_best(settings, final, best[0])
    print(
        f"\nbest: trial {best[0].number}, dev {settings.metric} {best[0].value:.4f}; parameters in {path}; "
        f"table and plots in {settings.study_dir}"
    )
    return path


# Command line ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> Path | None:
    """Run (or continue) the search; the best file's path (None when no trial has completed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = settle(argv)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    if settings.args.worker_index is not None:  # a worker process started by run_workers
        work(settings, settings.args.stage, settings.args.worker_index)
        return None
    if not settings.args.report_only:
        where = settings.args.storage or journal_path(settings.study_dir)
        print(
            f"search {settings.study_name}: {settings.args.n_trials} trials, {settings.args.workers} worker(s), "
            f"study in {where}"
        )
        run_workers(settings, 1, argv)
        if settings.two_stage:
            queue_stage2(settings)
            run_workers(settings, 2, argv)
    return report(settings)
