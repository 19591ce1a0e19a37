"""Leaderboards and plots from finished runs: `python -m finetune_lab.compare [RUNS_DIR]`.

Reads every `results.json` under RUNS_DIR (and, with --wandb_dir, offline W&B runs) into a pandas
DataFrame of runs (one row per run, RUN_COLUMNS), groups the runs that differ only by seed into a
DataFrame of seed groups (one row per leaderboard line: mean ± sample std over seeds, and n), and
prints one leaderboard per task as a terminal table, Markdown or CSV. Unless --no_plots, it also
writes the leaderboards and PNG plots into RUNS_DIR/compare/ (see finetune_lab/plots.py). Works
offline, with no W&B account.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finetune_lab import tables
from finetune_lab.errors import ArgumentParser, UsageError, run_cli
from finetune_lab.metrics import greater_is_better

# The options that define an experiment, as dotted paths into results.json (W&B stores the same
# mapping as its run config). Runs of one task that agree on all of them are seeds of one
# experiment and share a leaderboard row. A list of what counts, not of what to ignore: a folder,
# cache or logging option, or an option added to the project later, never splits a seed group.
# Left out on purpose: seeds, run names, folders, caches, notes, logging, and what changes speed
# rather than what is learned (eval batch size, loader workers, attention kernel, padding multiple).
EXPERIMENT_OPTIONS = (
    # What was trained and how it is scored. `model` names what was really trained (the
    # from-scratch fallback included); with `processes` the global batch size is known.
    "task",
    "model",
    "precision",
    "processes",
    "main_metric",
    # A task's own options all change its data or model (label set, regression, from-scratch size).
    "options.task",
    # Which weights.
    "options.model.model_name_or_path",
    "options.model.revision",
    "options.model.student_layers",
    # Distilled from which teachers, how (alpha, temperature).
    "options.distill.teacher",
    "options.distill.distill_alpha",
    "options.distill.distill_temperature",
    # Which weights train (--peft) and on what input (--adversarial).
    "options.peft.peft",
    "options.peft.lora_r",
    "options.peft.lora_alpha",
    "options.peft.lora_dropout",
    "options.peft.lora_target_modules",
    "options.adversarial.adversarial",
    "options.adversarial.adv_epsilon",
    "options.adversarial.adv_steps",
    "options.adversarial.adv_alpha",
    # Which examples, cut and labelled how. Dev and test subsets count too: means over different
    # dev or test examples are not comparable.
    "options.data.dataset_name",
    "options.data.dataset_config_name",
    "options.data.train_file",
    "options.data.validation_file",
    "options.data.test_file",
    "options.data.text_column_name",
    "options.data.text_column_delimiter",
    "options.data.label_column_name",
    "options.data.train_split_name",
    "options.data.validation_split_name",
    "options.data.test_split_name",
    "options.data.labels",
    "options.data.max_seq_length",
    "options.data.label_all_tokens",
    "options.data.max_train_samples",
    "options.data.max_eval_samples",
    "options.data.max_predict_samples",
    "options.data.shuffle_train_dataset",
    "options.data.shuffle_seed",
    "options.model.config_name",
    "options.model.tokenizer_name",
    # More training examples made from the training split (--augment; their draws follow the seed).
    "options.data.augment",
    "options.data.augment_copies",
    "options.data.augment_rate",
    # How long training goes on.
    "options.run.early_stopping_patience",
    # The optimisation itself.
    "options.training.do_train",
    "options.training.learning_rate",
    "options.training.lr_scheduler_type",
    "options.training.lr_scheduler_kwargs",
    "options.training.warmup_steps",
    "options.training.num_train_epochs",
    "options.training.max_steps",
    "options.training.per_device_train_batch_size",
    "options.training.gradient_accumulation_steps",
    "options.training.optim",
    "options.training.optim_args",
    "options.training.weight_decay",
    "options.training.adam_beta1",
    "options.training.adam_beta2",
    "options.training.adam_epsilon",
    "options.training.max_grad_norm",
    "options.training.label_smoothing_factor",
    "options.training.neftune_noise_alpha",
    "options.training.train_sampling_strategy",
    "options.data.group_by_length_pool",
    "options.data.loss_denominator",
    "options.training.bf16",
    "options.training.fp16",
    # Which checkpoint is the result: the best by the main metric, judged at each evaluation.
    "options.training.load_best_model_at_end",
    "options.training.metric_for_best_model",
    "options.training.greater_is_better",
    "options.training.eval_strategy",
    "options.training.eval_steps",
)
ADDED_DEFAULTS = {
    "options.data.text_column_delimiter": " ",
    "options.data.shuffle_train_dataset": False,
    # runs from before these options trained with transformers' grouping and denominator
    "options.data.group_by_length_pool": 0,
    "options.data.loss_denominator": "update",
}
# The hyperparameters a leaderboard shows: short column name -> dotted path in results.json.
SHOWN = {
    "lr": "options.training.learning_rate",
    "batch": "options.training.per_device_train_batch_size",
    "epochs": "options.training.num_train_epochs",
    "max_len": "options.data.max_seq_length",
}
# Per-run numbers that a seed group reports as mean and sample std.
MEASURED = ("dev", "test", "train_seconds", "samples_per_second")
# Scores on the --extra_eval and --perturbed_eval sets (results.json sections): one more measured column
# per set name, ROBUST + name ('robust:typos:0.1'), shown after test where a leaderboard's runs have it.
ROBUST_SECTIONS, ROBUST = ("extra_eval", "perturbed_eval"), "robust:"
RUN_INFO = (
    "path", "source", "task", "name", "model", "seed", "main_metric", "greater_is_better", "tags", "data",
    "experiment_name",
)  # fmt: skip
RUN_COLUMNS = (*RUN_INFO, *MEASURED, *SHOWN, "dev_history", "train_history", "experiment")
SORT_COLUMNS = {
    "dev": "dev_mean",
    "test": "test_mean",
    "time": "train_seconds_mean",
    "speed": "samples_per_second_mean",
    "name": "runs",
}
SORT_KEYS = tuple(SORT_COLUMNS)
FORMATS = ("table", "markdown", "csv")
CSV_NUMBERS = ("dev_mean", "dev_std", "test_mean", "test_std", "train_seconds_mean", "samples_per_second_mean")
CSV_COLUMNS = [
    "task", "rank", "runs", "experiment", "data", "model", *SHOWN, "seeds", "n", "main_metric", *CSV_NUMBERS,
]  # fmt: skip
EMBEDDED = "embedded"
# Under a leaderboard whose runs used different data: why the ranks restart.
PER_DATA_NOTE = "ranks restart per data source: scores on different data are not comparable"


def _option(data: Any, *keys: str) -> Any:
    """data[key1][key2]...; None where a level is missing or not a mapping."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _canonical(value: Any) -> Any:
    """One spelling per value: W&B drops empty dicts and reads 2.0 back as 2, results.json does not.

    So missing, None and {} all read as None, and whole floats as ints.
    """
    if isinstance(value, dict):
        pruned = {key: _canonical(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item is not None} or None
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def experiment_key(data: dict[str, Any]) -> str:
    """A run's EXPERIMENT_OPTIONS as canonical JSON: one hashable group key, alike from results.json and W&B."""
    options = {path: _canonical(_option(data, *path.split("."))) for path in EXPERIMENT_OPTIONS}
    from finetune_lab.arguments import RENAMED

    for old, new in RENAMED.items():  # runs saved before the HF names: their value under the new name
        old_value = _canonical(_option(data, "options", "data", old))
        if old_value is not None and options.get(f"options.data.{new}") is None:
            options[f"options.data.{new}"] = old_value
    # Options added later read as missing at their default, so older runs group with newer ones.
    for path, default in ADDED_DEFAULTS.items():
        if options.get(path) == default:
            options[path] = None
    if not options.get("options.data.shuffle_train_dataset"):
        options["options.data.shuffle_seed"] = None  # the seed of a shuffle that did not happen
    if options.get("options.training.train_sampling_strategy") not in (None, "group_by_length"):
        options["options.data.group_by_length_pool"] = None  # the pool of a grouping that did not happen
    return json.dumps(options, sort_keys=True, default=str)


def _short_path(path: str) -> str:
    """The file name with its folder (`reviews/train.csv`): enough to tell two data sets apart."""
    parts = Path(path).parts
    return "/".join(parts[-2:])


def data_label(data: dict[str, Any]) -> str:
    """Where a run's examples came from, short: 'embedded', 'files: mydata/train.csv', 'hub: imdb'.

    Read from the options (what results.json and W&B both hold); the data report's `source`
    sentence is the fallback for records without them.
    """
    train_file = _option(data, "options", "data", "train_file")
    if train_file:
        return f"files: {_short_path(str(train_file))}"
    hub = _option(data, "options", "data", "dataset_name")
    if hub:
        config = _option(data, "options", "data", "dataset_config_name")
        return f"hub: {hub}" + (f" ({config})" if config else "")
    source = _option(data, "data", "source")
    if isinstance(source, str) and source and not source.startswith(EMBEDDED):
        return source.split(",")[0].split(";")[0]
    return EMBEDDED


def experiment_name(data: dict[str, Any]) -> str:
    """The experiment file's name without folder and suffix ('ner-quick'); '-' for a run without one."""
    path = data.get("experiment_file") or _option(data, "options", "run", "experiment")
    return Path(str(path)).stem if path else "-"


def run_from_results(data: dict[str, Any], path: str, source: str = "results.json") -> dict[str, Any]:
    """One run's row (RUN_COLUMNS) from a results.json mapping; ValueError when a required key is missing."""
    missing = [key for key in ("task", "main_metric") if not data.get(key)]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    metric = data["main_metric"]
    return {
        "path": path,
        "source": source,
        "task": str(data["task"]),
        "name": str(data.get("run_name") or Path(path).parent.name),
        "model": Path(str(data.get("model") or "?").replace(" (embedded)", "")).name,
        "seed": data.get("seed"),
        "main_metric": metric,
        "greater_is_better": greater_is_better(metric, _option(data, "options", "training", "greater_is_better")),
        "tags": [str(tag) for tag in data.get("tags") or []],
        "data": data_label(data),
        "experiment_name": experiment_name(data),
        "dev": _number(_option(data, "dev", metric)),
        "test": _number(_option(data, "test", metric)),
        "train_seconds": _number(_option(data, "train", "seconds")),
        "samples_per_second": _number(_option(data, "train", "samples_per_second")),
        **{
            f"{ROBUST}{name}": _number(_option(scores, metric))
            for section in ROBUST_SECTIONS
            for name, scores in (data.get(section) or {}).items()
        },
        **{short: _option(data, *path.split(".")) for short, path in SHOWN.items()},
        "dev_history": list(data.get("dev_history") or []),
        "train_history": list(data.get("train_history") or []),
        "experiment": experiment_key(data),
    }


def robust_columns(frame: pd.DataFrame, grouped: bool = False) -> list[str]:
    """The --extra_eval / --perturbed_eval score columns of a runs frame, or of seed groups (<column>_mean/_std)."""
    columns = [c for c in frame.columns if c.startswith(ROBUST)]
    return sorted(c.removesuffix("_mean") for c in columns if c.endswith("_mean")) if grouped else sorted(columns)


def _runs_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run. Object columns keep option values as written (batch 32 stays 32, not 32.0)."""
    robust = sorted({key for row in rows for key in row if key.startswith(ROBUST)})
    frame = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *robust], dtype=object)
    return frame.astype(dict.fromkeys([*MEASURED, *robust], float))


def load_runs(root: Path) -> tuple[pd.DataFrame, list[str]]:
    """Every results.json under root, and one line per file that could not be used (not dropped silently)."""
    rows, problems = [], []
    for path in sorted(root.rglob("results.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            rows.append(run_from_results(data, str(path)))
        except (OSError, UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
            problems.append(f"{path}: {err}")
    return _runs_frame(rows), problems


def load_wandb_runs(wandb_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Offline W&B runs under wandb_dir, read with wandb's own reader (`wandb leet inspect`).

    Their config is the run's results.json config; the summary holds the final dev and test
    metrics (see wandb_logging.log_final). No per-epoch history: they appear in leaderboards and the
    test bar chart, not in the curves.
    """
    folders = sorted(p for p in wandb_dir.glob("offline-run-*") if p.is_dir())
    if not folders and (wandb_dir / "wandb").is_dir():
        folders = sorted(p for p in (wandb_dir / "wandb").glob("offline-run-*") if p.is_dir())
    wandb_cli = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    rows, problems = [], []
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
            robust: dict[str, dict[str, Any]] = {}
            for key, value in summary.items():  # log_final's extra_eval/NAME/<metric>, perturbed_eval/KIND:RATE/...
                section, _, rest = str(key).partition("/")
                name, _, score = rest.rpartition("/")
                if section in ROBUST_SECTIONS and name and "/" not in name and score == metric:  # not per_class/...
                    robust.setdefault(section, {})[name] = {metric: value}
            data = {
                **config,
                **robust,
                # the kept model's final dev score; eval/<metric> is the last curve point (older runs: both)
                "dev": {metric: summary.get(f"eval/best_{metric}", summary.get(f"eval/{metric}"))},
                "test": {metric: summary.get(f"test/{metric}")},
                "train": {  # wandb_logging.log_final's keys; Trainer's own summary keys as a fallback
                    "seconds": summary.get("train/seconds", summary.get("train_runtime")),
                    "samples_per_second": summary.get(
                        "train/samples_per_second", summary.get("train_samples_per_second")
                    ),
                },
            }
            rows.append(run_from_results(data, str(folder), source="wandb"))
        except (OSError, ValueError, subprocess.TimeoutExpired) as err:
            problems.append(f"{folder}: {err}")
    return _runs_frame(rows), problems


def merge_runs(primary: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """primary plus the runs of extra that primary does not already hold (same task and run name)."""
    seen = set(zip(primary["task"], primary["name"], strict=True))
    new = [key not in seen for key in zip(extra["task"], extra["name"], strict=True)]
    return pd.concat([primary, extra.loc[new]], ignore_index=True)


def filter_runs(runs: pd.DataFrame, task: str | None = None, tags: Sequence[str] = ()) -> pd.DataFrame:
    """Runs of `task` (if given) that carry every tag in `tags`."""
    if task is not None:
        tasks = sorted(runs["task"].unique())
        if task not in tasks:
            raise UsageError(f"--task {task}: no runs of that task; tasks found: {', '.join(tasks) or 'none'}")
        runs = runs[runs["task"] == task]
    for tag in tags:
        runs = runs.loc[[tag in run_tags for run_tags in runs["tags"]]]
    return runs


def group_runs(runs: pd.DataFrame, by_seed: bool = True) -> pd.DataFrame:
    """One row per seed group: the runs of a task with equal EXPERIMENT_OPTIONS (each run alone if not by_seed).

    Columns: task, runs (run names), seeds, n, the first run's model, data source, main metric
    and shown hyperparameters, the experiment file names of its runs (one path may be spelled
    several ways), and <measure>_mean / <measure>_std (sample std, n - 1; NaN for one seed).
    """
    keys = ["task", "experiment" if by_seed else "path"]
    measured = [*MEASURED, *robust_columns(runs)]
    return (
        runs.groupby(keys, sort=False)
        .agg(
            runs=("name", list),
            seeds=("seed", lambda seeds: " ".join(sorted(str(seed) for seed in seeds))),
            n=("name", "size"),
            experiment_name=("experiment_name", lambda names: ", ".join(sorted(set(names)))),
            **{column: (column, "first") for column in ("model", "data", "main_metric", "greater_is_better", *SHOWN)},
            **{f"{column}_{stat}": (column, stat) for column in measured for stat in ("mean", "std")},
        )
        .reset_index()
    )


def sort_groups(groups: pd.DataFrame, key: str = "dev") -> pd.DataFrame:
    """Per task (tasks alphabetical) and data source (embedded first), best first by the dev or test
    main metric (mean over seeds), fastest first by time or speed, or by run names; missing values
    last. Adds `rank` (1 = first), which restarts per data source: a score on the user's own CSV
    and one on the embedded test set are not comparable, so neither outranks the other."""
    if key not in SORT_KEYS:
        raise UsageError(f"--sort {key}: choose one of {', '.join(SORT_KEYS)}")
    if key == "name":
        order = groups["runs"].str.join(", ")
    else:
        higher_first = groups["greater_is_better"].astype(bool) if key in ("dev", "test") else key == "speed"
        order = groups[SORT_COLUMNS[key]] * np.where(higher_first, -1, 1)
    data_order = groups["data"].map(lambda data: (data != EMBEDDED, data))
    ranked = groups.assign(order=order, data_order=data_order).sort_values(
        ["task", "data_order", "order"], na_position="last", kind="stable"
    )
    ranked["rank"] = ranked.groupby(["task", "data"]).cumcount() + 1
    return ranked.drop(columns=["order", "data_order"]).reset_index(drop=True)


# --- rendering -------------------------------------------------------------------------------


def _mean_std(groups: pd.DataFrame, measure: str, digits: int = 4) -> list[str]:
    """'mean ± std' cells; the mean alone for one seed, '-' where no run has the number."""
    cells = []
    for mean, std in zip(groups[f"{measure}_mean"], groups[f"{measure}_std"], strict=True):
        text = "-" if pd.isna(mean) else f"{mean:.{digits}f}"
        cells.append(text if pd.isna(std) else f"{text} ± {std:.{digits}f}")
    return cells


def _hyper(value: Any) -> str:
    if value is None or pd.isna(value):
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def leaderboard_rows(groups: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and display rows of one task's leaderboard (already sorted)."""
    metric = groups["main_metric"].iloc[0]
    columns = {
        "#": groups["rank"].astype(str),
        "run": groups["runs"].str.join(", "),
        "experiment": groups["experiment_name"],
        "data": groups["data"],
        "model": groups["model"],
        **{short: groups[short].map(_hyper) for short in SHOWN},
        "seeds": groups["seeds"],
        "n": groups["n"].astype(str),
        f"dev {metric}": _mean_std(groups, "dev"),
        f"test {metric}": _mean_std(groups, "test"),
        **{  # --extra_eval / --perturbed_eval sets some run of this board was scored on
            f"{column.removeprefix(ROBUST)} {metric}": _mean_std(groups, column)
            for column in robust_columns(groups, grouped=True)
            if groups[f"{column}_mean"].notna().any()
        },
        "train s": _mean_std(groups, "train_seconds", 1),
        "samples/s": _mean_std(groups, "samples_per_second", 1),
    }
    return list(columns), [list(row) for row in zip(*columns.values(), strict=True)]


def render(groups: pd.DataFrame, fmt: str) -> str:
    """All leaderboards in one format: table / markdown (one section per task) or csv (one file).

    CSV numbers are unformatted, with mean and std in their own columns.
    """
    if fmt == "csv":
        with_names = groups.assign(runs=groups["runs"].str.join(";"), experiment=groups["experiment_name"])
        robust = [f"{column}_{stat}" for column in robust_columns(groups, grouped=True) for stat in ("mean", "std")]
        return with_names[[*CSV_COLUMNS, *robust]].to_csv(index=False, lineterminator="\n")
    parts = []
    for task, board in groups.groupby("task", sort=False):
        header, rows = leaderboard_rows(board)
        metric = board["main_metric"].iloc[0]
        note = f"\n{PER_DATA_NOTE}" if board["data"].nunique() > 1 else ""
        if fmt == "markdown":
            table = tables.render(header, rows, "markdown")
            parts.append(f"### {task} (main metric: {metric})\n\n{table}" + (f"\n\n{PER_DATA_NOTE}" if note else ""))
        else:
            table = tables.render(header, rows, max_width=48)  # cut long cells (many run names)
            parts.append(f"{task} (main metric: {metric}; mean ± std over seeds)\n{table}{note}")
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


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Print the leaderboards (and write files unless --no_plots); the ranked seed groups of every task."""
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
    if runs.empty:
        raise UsageError(f"no results.json under {root}" + (f" ({len(problems)} unreadable)" if problems else ""))
    runs = filter_runs(runs, args.task, args.tag)
    if runs.empty:
        raise UsageError(f"no run matches --tag {' --tag '.join(args.tag)}")
    groups = sort_groups(group_runs(runs, not args.per_run), args.sort)
    sys.stdout.write(render(groups, args.format))
    if not args.no_plots:
        from finetune_lab.plots import write_plots

        out_dir = Path(args.out_dir) if args.out_dir else root / "compare"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "leaderboard.md").write_text(render(groups, "markdown"), encoding="utf-8")
        (out_dir / "leaderboard.csv").write_text(render(groups, "csv"), encoding="utf-8")
        written = [out_dir / "leaderboard.md", out_dir / "leaderboard.csv", *write_plots(runs, groups, out_dir)]
        print(f"\nwrote {len(written)} files to {out_dir}/: {', '.join(p.name for p in written)}", file=sys.stderr)
    return groups


def cli() -> None:
    run_cli(main, "compare")


if __name__ == "__main__":
    cli()
