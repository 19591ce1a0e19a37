"""Leaderboards and plots from finished runs: `python -m finetune_lab.compare [RUNS_DIR]`.

Reads every `results.json` under RUNS_DIR (and, with --wandb_dir, offline W&B runs), groups runs
that differ only by seed (mean ± sample std over seeds, and n), and prints one leaderboard per
task as a terminal table, Markdown or CSV. Unless --no_plots, it also writes the leaderboards and
PNG plots into RUNS_DIR/compare/ (see finetune_lab/plots.py). Works offline, with no W&B account.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune_lab.errors import ArgumentParser, UsageError, run_cli

# Options that name, place or seed a run but do not change what it learns: runs that differ only
# in these belong to one seed group. Everything else in `options` (and the model, precision and
# process count) must be equal.
NOT_HYPERPARAMETERS = {
    "training": {
        "seed",
        "data_seed",
        "run_name",
        "output_dir",
        "logging_dir",
        "report_to",
        "disable_tqdm",
        "logging_steps",
        "logging_first_step",
        "save_total_limit",
        "overwrite_output_dir",
        "push_to_hub",
        "hub_model_id",
        "hub_token",
        "process_index",
        "local_rank",
    },
    "run": {"experiment", "notes", "overwrite_output_dir", "resume", "wandb_log_model"},
    "data": {"preprocessing_num_workers"},
}
# The hyperparameters a leaderboard shows (from options.training / options.data), short names.
SHOWN = (
    ("lr", "training", "learning_rate"),
    ("batch", "training", "per_device_train_batch_size"),
    ("epochs", "training", "num_train_epochs"),
    ("max_len", "data", "max_seq_length"),
)
SORT_KEYS = ("dev", "test", "time", "speed", "name")
FORMATS = ("table", "markdown", "csv")
LOWER_IS_BETTER = {"loss"}


@dataclass
class Run:
    """One finished run, as much of results.json as the leaderboard and plots need."""

    path: str
    task: str
    name: str
    model: str
    seed: Any
    main_metric: str
    tags: list[str]
    dev: float | None
    test: float | None
    train_seconds: float | None
    samples_per_second: float | None
    hyper: dict[str, Any]
    group_key: str
    greater_is_better: bool = True
    dev_history: list[dict] = field(default_factory=list)
    train_history: list[dict] = field(default_factory=list)
    source: str = "results.json"


@dataclass
class Group:
    """Runs of one task that differ only by seed."""

    runs: list[Run]

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def n(self) -> int:
        return len(self.runs)

    def values(self, attr: str) -> list[float]:
        return [v for v in (getattr(r, attr) for r in self.runs) if isinstance(v, int | float) and not math.isnan(v)]

    def mean(self, attr: str) -> float | None:
        values = self.values(attr)
        return statistics.fmean(values) if values else None

    def std(self, attr: str) -> float | None:
        """Sample standard deviation (n - 1): the spread a new seed would show. None for n < 2."""
        values = self.values(attr)
        return statistics.stdev(values) if len(values) >= 2 else None

    @property
    def label(self) -> str:
        return ", ".join(r.name for r in self.runs)

    @property
    def seeds(self) -> str:
        return " ".join(str(r.seed) for r in sorted(self.runs, key=lambda r: str(r.seed)))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _canonical(value: Any) -> Any:
    """One spelling per value: a W&B config drops empty dicts and reads 2.0 back as 2; results.json does not."""
    if isinstance(value, dict):
        pruned = {k: _canonical(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v != {}}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _group_key(data: dict[str, Any]) -> str:
    """What must be equal for two runs to be seeds of one experiment, as canonical JSON."""
    options = data.get("options") or {}
    kept = {
        section: {k: v for k, v in (values or {}).items() if k not in NOT_HYPERPARAMETERS.get(section, set())}
        for section, values in options.items()
        if isinstance(values, dict)
    }
    identity = {
        "task": data.get("task"),
        "model": data.get("model"),
        "precision": data.get("precision"),
        "processes": data.get("processes"),
        "options": kept,
    }
    return json.dumps(_canonical(identity), sort_keys=True, default=str)


def run_from_results(data: dict[str, Any], path: str, source: str = "results.json") -> Run:
    """A Run from a results.json mapping; ValueError when a required key is missing."""
    missing = [key for key in ("task", "main_metric") if not data.get(key)]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    metric = data["main_metric"]
    options = data.get("options") or {}
    training = options.get("training") or {}
    hyper = {short: (options.get(section) or {}).get(key) for short, section, key in SHOWN}
    train = data.get("train") or {}
    greater = training.get("greater_is_better")
    return Run(
        path=path,
        task=str(data["task"]),
        name=str(data.get("run_name") or Path(path).parent.name),
        model=Path(str(data.get("model") or "?").replace(" (embedded)", "")).name,
        seed=data.get("seed"),
        main_metric=metric,
        tags=[str(t) for t in data.get("tags") or []],
        dev=_number((data.get("dev") or {}).get(metric)),
        test=_number((data.get("test") or {}).get(metric)),
        train_seconds=_number(train.get("seconds")),
        samples_per_second=_number(train.get("samples_per_second")),
        hyper=hyper,
        group_key=_group_key(data),
        greater_is_better=bool(greater) if greater is not None else metric not in LOWER_IS_BETTER,
        dev_history=list(data.get("dev_history") or []),
        train_history=list(data.get("train_history") or []),
        source=source,
    )


def load_runs(root: Path) -> tuple[list[Run], list[str]]:
    """Every results.json under root, and one line per file that could not be used (not dropped silently)."""
    runs, problems = [], []
    for path in sorted(root.rglob("results.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            runs.append(run_from_results(data, str(path)))
        except (OSError, UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
            problems.append(f"{path}: {err}")
    return runs, problems


def load_wandb_runs(wandb_dir: Path) -> tuple[list[Run], list[str]]:
    """Offline W&B runs under wandb_dir, read with wandb's own reader (`wandb leet inspect`).

    Their config is the run's results.json config; the summary holds the final dev and test
    metrics (see wandb_logging.log_final). No per-epoch history: they appear in leaderboards and the
    test bar chart, not in the curves.
    """
    import shutil
    import subprocess

    folders = sorted(p for p in wandb_dir.glob("offline-run-*") if p.is_dir())
    if not folders and (wandb_dir / "wandb").is_dir():
        folders = sorted(p for p in (wandb_dir / "wandb").glob("offline-run-*") if p.is_dir())
    wandb_cli = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    runs, problems = [], []
    for folder in folders:
        try:
            done = subprocess.run(
                [wandb_cli, "leet", "inspect", "--summary", "--json", str(folder)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if done.returncode != 0:
                raise ValueError(f"wandb leet inspect failed: {done.stderr.strip()[-200:]}")
            record = json.loads(done.stdout)
            config, summary = record.get("config") or {}, record.get("summary") or {}
            metric = config.get("main_metric")
            data = {
                **config,
                "dev": {metric: summary.get(f"eval/{metric}")},
                "test": {metric: summary.get(f"test/{metric}")},
                "train": {  # wandb_logging.log_final's keys; Trainer's own summary keys as a fallback
                    "seconds": summary.get("train/seconds", summary.get("train_runtime")),
                    "samples_per_second": summary.get(
                        "train/samples_per_second", summary.get("train_samples_per_second")
                    ),
                },
            }
            runs.append(run_from_results(data, str(folder), source="wandb"))
        except (OSError, ValueError, subprocess.TimeoutExpired) as err:
            problems.append(f"{folder}: {err}")
    return runs, problems


def merge_runs(primary: list[Run], extra: list[Run]) -> list[Run]:
    """primary plus the runs of extra that primary does not already hold (same task and run name)."""
    seen = {(r.task, r.name) for r in primary}
    return [*primary, *(r for r in extra if (r.task, r.name) not in seen)]


def filter_runs(runs: Iterable[Run], task: str | None = None, tags: Sequence[str] = ()) -> list[Run]:
    """Runs of `task` (if given) that carry every tag in `tags`."""
    runs = list(runs)
    if task is not None:
        tasks = sorted({r.task for r in runs})
        if task not in tasks:
            raise UsageError(f"--task {task}: no runs of that task; tasks found: {', '.join(tasks) or 'none'}")
        runs = [r for r in runs if r.task == task]
    for tag in tags:
        runs = [r for r in runs if tag in r.tags]
    return runs


def group_runs(runs: Iterable[Run], by_seed: bool = True) -> dict[str, list[Group]]:
    """{task: [Group]}: runs that differ only by seed share a group (each run alone if not by_seed)."""
    tasks: dict[str, dict[str, list[Run]]] = {}
    for index, run in enumerate(runs):
        key = run.group_key if by_seed else f"{run.group_key}#{index}"
        tasks.setdefault(run.task, {}).setdefault(key, []).append(run)
    return {task: [Group(members) for members in groups.values()] for task, groups in sorted(tasks.items())}


def sort_groups(groups: list[Group], key: str = "dev") -> list[Group]:
    """Best first by dev or test main metric (mean over seeds), fastest first by time; missing values last."""
    if key not in SORT_KEYS:
        raise UsageError(f"--sort {key}: choose one of {', '.join(SORT_KEYS)}")
    if key == "name":
        return sorted(groups, key=lambda g: g.label)
    attr = {"dev": "dev", "test": "test", "time": "train_seconds", "speed": "samples_per_second"}[key]

    def order(group: Group) -> tuple[int, float]:
        value = group.mean(attr)
        if value is None:
            return (1, 0.0)
        if key in ("dev", "test"):
            return (0, -value if group.first.greater_is_better else value)
        return (0, value if key == "time" else -value)

    return sorted(groups, key=order)


# --- rendering -------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _mean_std(group: Group, attr: str, digits: int = 4) -> str:
    mean, std = group.mean(attr), group.std(attr)
    if mean is None:
        return "-"
    return _fmt(mean, digits) if std is None else f"{_fmt(mean, digits)} ± {_fmt(std, digits)}"


def _hyper(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def leaderboard_rows(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    """Header and display rows of one task's leaderboard (already sorted)."""
    metric = groups[0].first.main_metric if groups else "metric"
    header = [
        "#",
        "run",
        "model",
        *(short for short, _, _ in SHOWN),
        "seeds",
        "n",
        f"dev {metric}",
        f"test {metric}",
        "train s",
        "samples/s",
    ]
    rows = []
    for rank, group in enumerate(groups, 1):
        first = group.first
        rows.append(
            [
                str(rank),
                group.label,
                first.model,
                *(_hyper(first.hyper.get(short)) for short, _, _ in SHOWN),
                group.seeds,
                str(group.n),
                _mean_std(group, "dev"),
                _mean_std(group, "test"),
                _mean_std(group, "train_seconds", 1),
                _mean_std(group, "samples_per_second", 1),
            ]
        )
    return header, rows


def render_table(header: list[str], rows: list[list[str]], max_width: int = 48) -> str:
    """Fixed-width columns for a terminal; long cells (many run names) are cut with '...'."""
    cut = [[cell if len(cell) <= max_width else cell[: max_width - 3] + "..." for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cut)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cut]
    return "\n".join(lines)


def render_markdown(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|", *(line(r) for r in rows)])


CSV_COLUMNS = [
    "task",
    "rank",
    "runs",
    "model",
    *(short for short, _, _ in SHOWN),
    "seeds",
    "n",
    "main_metric",
    "dev_mean",
    "dev_std",
    "test_mean",
    "test_std",
    "train_seconds_mean",
    "samples_per_second_mean",
]


def render_csv(boards: dict[str, list[Group]]) -> str:
    """One CSV for every task, numbers unformatted (mean and std in their own columns)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for task, groups in boards.items():
        for rank, group in enumerate(groups, 1):
            first = group.first
            writer.writerow(
                [
                    task,
                    rank,
                    ";".join(r.name for r in group.runs),
                    first.model,
                    *(first.hyper.get(short) for short, _, _ in SHOWN),
                    group.seeds,
                    group.n,
                    first.main_metric,
                    *(_csv_number(v) for v in (group.mean("dev"), group.std("dev"))),
                    *(_csv_number(v) for v in (group.mean("test"), group.std("test"))),
                    _csv_number(group.mean("train_seconds")),
                    _csv_number(group.mean("samples_per_second")),
                ]
            )
    return out.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(value)


def render(boards: dict[str, list[Group]], fmt: str) -> str:
    """All leaderboards in one format: table / markdown (one section per task) or csv (one file)."""
    if fmt == "csv":
        return render_csv(boards)
    parts = []
    for task, groups in boards.items():
        header, rows = leaderboard_rows(groups)
        metric = groups[0].first.main_metric
        if fmt == "markdown":
            parts.append(f"### {task} (main metric: {metric})\n\n{render_markdown(header, rows)}")
        else:
            parts.append(f"{task} (main metric: {metric}; mean ± std over seeds)\n{render_table(header, rows)}")
    return "\n\n".join(parts) + "\n"


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m finetune_lab.compare",
        description="Leaderboards (one per task) and plots from the runs under RUNS_DIR.",
        allow_abbrev=False,
    )
    parser.add_argument("runs_dir", nargs="?", default="outputs", help="folder searched for results.json")
    parser.add_argument("--task", help="only this task")
    parser.add_argument("--tag", action="append", default=[], help="only runs with this tag (repeatable: all)")
    parser.add_argument("--sort", default="dev", help=f"one of {', '.join(SORT_KEYS)} (default dev)")
    parser.add_argument("--format", default="table", help=f"one of {', '.join(FORMATS)} (default table)")
    parser.add_argument("--per_run", action="store_true", help="one row per run instead of one per seed group")
    parser.add_argument("--wandb_dir", help="also read offline W&B runs (offline-run-* folders) under this folder")
    parser.add_argument("--out_dir", help="where leaderboard.md/.csv and the PNG plots go (default RUNS_DIR/compare)")
    parser.add_argument("--no_plots", action="store_true", help="print only; write no files")
    return parser


def main(argv: list[str] | None = None) -> dict[str, list[Group]]:
    args = build_parser().parse_args(argv)
    if args.format not in FORMATS:
        raise UsageError(f"--format {args.format}: choose one of {', '.join(FORMATS)}")
    root = Path(args.runs_dir)
    if not root.is_dir():
        raise UsageError(f"RUNS_DIR {root} is not a folder")
    runs, problems = load_runs(root)
    if args.wandb_dir:
        if not Path(args.wandb_dir).is_dir():
            raise UsageError(f"--wandb_dir {args.wandb_dir} is not a folder")
        wandb_runs, wandb_problems = load_wandb_runs(Path(args.wandb_dir))
        runs, problems = merge_runs(runs, wandb_runs), problems + wandb_problems
    for problem in problems:
        print(f"compare: skipped {problem}", file=sys.stderr)
    if problems:
        print(f"compare: {len(problems)} run(s) could not be read (listed above)", file=sys.stderr)
    if not runs:
        raise UsageError(f"no results.json under {root}" + (f" ({len(problems)} unreadable)" if problems else ""))
    runs = filter_runs(runs, args.task, args.tag)
    if not runs:
        raise UsageError(f"no run matches --tag {' --tag '.join(args.tag)}")
    boards = {task: sort_groups(groups, args.sort) for task, groups in group_runs(runs, not args.per_run).items()}
    sys.stdout.write(render(boards, args.format))
    if not args.no_plots:
        from finetune_lab.plots import write_plots

        out_dir = Path(args.out_dir) if args.out_dir else root / "compare"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "leaderboard.md").write_text(render(boards, "markdown"), encoding="utf-8")
        (out_dir / "leaderboard.csv").write_text(render(boards, "csv"), encoding="utf-8")
        written = [out_dir / "leaderboard.md", out_dir / "leaderboard.csv", *write_plots(boards, out_dir)]
        print(f"\nwrote {len(written)} files to {out_dir}/: {', '.join(p.name for p in written)}", file=sys.stderr)
    return boards


def cli() -> None:
    run_cli(main, "compare")


if __name__ == "__main__":
    cli()
