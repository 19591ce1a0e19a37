"""PNG plots for `make compare`: dev curves, train loss curves, test bars with error bars over seeds.

They read compare's DataFrames: runs (one row per run, with its per-epoch histories) and seed
groups (one row per leaderboard line). Matplotlib with the Agg backend (no display needed).
Files are `<task>-dev.png`, `<task>-loss.png`, `<task>-test.png`.

Runs are named by short labels, not by their timestamped folder names: each leaderboard line's
label is its rank plus what sets it apart from the other lines of its task (experiment file,
data source, model, the hyperparameters that differ), so every bar and legend entry is unique
and a run on the user's own data is marked as such. Axes of bounded metrics stay inside their
bounds (accuracy and F1 never run to 1.1).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# Metric name endings and the range their values live in (None: no bound on that side).
BOUNDS: tuple[tuple[tuple[str, ...], tuple[float | None, float | None]], ...] = (
    (("accuracy", "f1", "precision", "recall", "auc"), (0.0, 1.0)),
    (("pearson", "spearman", "matthews", "mcc"), (-1.0, 1.0)),
    (("r2",), (None, 1.0)),
    (("loss", "mse", "mae", "rmse", "perplexity"), (0.0, None)),
)
# The hyperparameters a label may name when they differ between a task's leaderboard lines.
LABEL_HYPERS = ("lr", "batch", "epochs", "max_len")  # compare.SHOWN's columns
WRAP = 18  # characters per tick-label line
SEP = " · "  # between a label's parts in a legend; a new line in a tick label
MAX_WIDTH_IN = 24.0  # a wider chart rotates its labels instead of growing further
TIMESTAMP = re.compile(r"-?\d{8}-\d{6}")  # the default run name's time stamp (rundir._run_dir)


def metric_bounds(metric: str) -> tuple[float | None, float | None]:
    """(lowest, highest) value a metric can take, by its name's ending; (None, None) when unbounded."""
    name = metric.lower().removeprefix("eval_").removeprefix("test_")
    for endings, bounds in BOUNDS:
        if name.endswith(endings):
            return bounds
    return None, None


def clamp_ylim(ax, metric: str) -> None:
    """Keep the y axis inside the metric's range (autoscale margins would show accuracy 1.1)."""
    low, high = metric_bounds(metric)
    bottom, top = ax.get_ylim()
    bottom = bottom if low is None else max(bottom, low)
    top = top if high is None else min(top, high)
    if top <= bottom:  # every value at the bound: show a sliver below it
        bottom = top - 0.05
    ax.set_ylim(bottom, top)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=120, bbox_inches="tight")  # tight: keeps the outside legend in the image
    plt.close(fig)
    return path


def _legend_outside(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)


def short_name(run_name: str) -> str:
    """A run name without its time stamp: `all-MiniLM-L6-v2-seed42-20250101-120000` -> `...-seed42`."""
    return TIMESTAMP.sub("", run_name) or run_name


def _hyper(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _experiment_text(names: str) -> str:
    """compare's experiment cell ('-, ner-quick') in words: a run without a file says so."""
    return ", ".join("no exp. file" if name == "-" else name for name in names.split(", "))


def _label_parts(board: pd.DataFrame) -> list[tuple[str | None, list[str]]]:
    """Per leaderboard line: (its experiment part or None when not shown, its other parts).

    Parts are what differs between the lines: experiment file, data source (a non-embedded source
    always), model, shown hyperparameters; the run name without its time stamp only when those do
    not tell lines apart.
    """
    rows = list(board.itertuples())

    def differs(column: str) -> bool:
        return len({str(getattr(row, column)) for row in rows}) > 1

    parts: list[tuple[str | None, list[str]]] = []
    for row in rows:
        show_experiment = differs("experiment_name") or row.experiment_name != "-"
        rest = [row.data] if differs("data") or row.data != "embedded" else []
        rest += [row.model] if differs("model") else []
        rest += [f"{name} {_hyper(getattr(row, name))}" for name in LABEL_HYPERS if differs(name)]
        parts.append((_experiment_text(row.experiment_name) if show_experiment else None, rest))
    if len({(e, tuple(r)) for e, r in parts}) < len(rows):  # lines differ in an option not shown: name a run
        parts = [(e, [*r, short_name(row.runs[0])]) for (e, r), row in zip(parts, rows, strict=True)]
    return parts


def group_labels(board: pd.DataFrame) -> list[str]:
    """One short, unique label per leaderboard line of a task (rows of compare's seed groups):
    `#rank` and what sets the line apart (_label_parts), parts joined by SEP, `n=` for several seeds.

    The rank keeps labels unique even where the parts do not (ranks restart per data source, and
    the data source is named whenever there is more than one).
    """
    labels = []
    for row, (experiment, rest) in zip(board.itertuples(), _label_parts(board), strict=True):
        text = SEP.join([p for p in (experiment, *rest) if p]) or row.model
        labels.append(f"#{row.rank} {text}" + (f"{SEP}n={row.n}" if row.n > 1 else ""))
    return labels


def tick_text(label: str) -> str:
    """A label on a few short lines: one per part, each wrapped at WRAP characters."""
    parts = label.split(SEP)
    return "\n".join(textwrap.fill(part, WRAP, break_on_hyphens=False) for part in parts)


def run_labels(runs: pd.DataFrame, board: pd.DataFrame) -> dict[str, str]:
    """{run path: label} for the curves' legends: its leaderboard line's label with the run's own
    experiment file (a line may hold runs with and without one) and its seed; the run's start time
    only where two runs would read alike (the same seed run twice)."""
    line_of: dict[str, tuple[int, str | None, list[str]]] = {}
    for row, (experiment, rest) in zip(board.itertuples(), _label_parts(board), strict=True):
        for name in row.runs:
            line_of[name] = (row.rank, experiment, rest)
    base: dict[str, str] = {}
    for run in runs.itertuples():
        if run.name in line_of:
            rank, experiment, rest = line_of[run.name]
            own = _experiment_text(run.experiment_name) if experiment is not None else None
            text = f"#{rank} " + (SEP.join([p for p in (own, *rest) if p]) or run.model)
        else:
            text = short_name(run.name)
        if run.seed is not None and not pd.isna(run.seed):
            text += f"{SEP}seed {run.seed}"
        base[run.path] = text
    repeated = {text for text in base.values() if list(base.values()).count(text) > 1}
    labels: dict[str, str] = {}
    for run in runs.itertuples():
        text = base[run.path]
        if text in repeated:
            stamp = TIMESTAMP.search(run.name)
            text += f"{SEP}{stamp.group().strip('-')}" if stamp else ""
        while text in labels.values():  # no time stamp to tell them apart
            text += "'"
        labels[run.path] = text
    return labels


def dev_curve(run: Any) -> tuple[list[float], list[float]]:
    """(epochs, dev main metric) from the per-epoch evaluations of a run (a row of compare's runs)."""
    key = f"eval_{run.main_metric}"
    points = [(e["epoch"], e[key]) for e in run.dev_history if "epoch" in e and key in e]
    return [p[0] for p in points], [p[1] for p in points]


def loss_curve(run: Any) -> tuple[list[float], list[float]]:
    """(epochs, training loss) from the Trainer's periodic train logs."""
    points = [(e["epoch"], e["loss"]) for e in run.train_history if "epoch" in e and "loss" in e]
    return [p[0] for p in points], [p[1] for p in points]


def _styles(runs: pd.DataFrame, board: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    """Per run path: one colour per leaderboard line (as its bar), one line style per seed within it."""
    styles: dict[str, dict[str, Any]] = {}
    line_of = {} if board is None else {name: i for i, names in enumerate(board["runs"]) for name in names}
    seen: dict[int, int] = {}
    for i, run in enumerate(runs.itertuples()):
        line = line_of.get(run.name, i)
        nth = seen[line] = seen.get(line, -1) + 1
        styles[run.path] = {"color": f"C{line % 10}", "linestyle": ("-", "--", ":", "-.")[nth % 4]}
    return styles


def _labels(runs: pd.DataFrame, board: pd.DataFrame | None) -> dict[str, str]:
    if board is None:
        return {run.path: short_name(run.name) for run in runs.itertuples()}
    return run_labels(runs, board)


def plot_dev_curves(task: str, runs: pd.DataFrame, path: Path, board: pd.DataFrame | None = None) -> Path | None:
    """Dev main metric per epoch, one line per run; None when no run has a dev history."""
    curves = [(run, *dev_curve(run)) for run in runs.itertuples()]
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    labels, styles = _labels(runs, board), _styles(runs, board)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run, epochs, values in curves:
        ax.plot(epochs, values, marker="o", label=labels[run.path], **styles[run.path])
    metric = curves[0][0].main_metric
    ax.set(title=f"{task}: dev {metric} per epoch", xlabel="epoch", ylabel=f"dev {metric}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # evaluations happen at whole epochs
    clamp_ylim(ax, metric)
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return _save(fig, path)


def plot_loss_curves(task: str, runs: pd.DataFrame, path: Path, board: pd.DataFrame | None = None) -> Path | None:
    """Training loss against epoch, one line per run; None when no run logged a loss."""
    curves = [(run, *loss_curve(run)) for run in runs.itertuples()]
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    labels, styles = _labels(runs, board), _styles(runs, board)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run, epochs, values in curves:
        ax.plot(epochs, values, label=labels[run.path], **styles[run.path])
    ax.set(title=f"{task}: training loss", xlabel="epoch", ylabel="training loss")
    clamp_ylim(ax, "loss")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return _save(fig, path)


def plot_test_bars(task: str, groups: pd.DataFrame, path: Path) -> Path | None:
    """Test main metric per seed group: bar = mean, error bar = sample std over seeds (none for n = 1).

    Each bar is named on the x axis by its short label (group_labels), wrapped onto a few lines;
    the chart widens with the number of bars, and past MAX_WIDTH_IN the labels turn vertical, so
    they never overlap. Colours match the curves'; no legend (the tick labels name the bars).
    Bars on other data than the embedded set are hatched.
    """
    labels = dict(zip(groups.index, group_labels(groups), strict=True))
    colors = {index: f"C{i % 10}" for i, index in enumerate(groups.index)}
    bars = groups[groups["test_mean"].notna()]
    if bars.empty:
        return None
    wanted = 1.5 * len(bars) + 2
    rotate = wanted > MAX_WIDTH_IN
    fig, ax = plt.subplots(figsize=(max(5.0, min(wanted, MAX_WIDTH_IN)), 4.5))
    positions = list(range(len(bars)))
    means = bars["test_mean"].tolist()
    errors = bars["test_std"].fillna(0.0).tolist()
    spread = [e if n > 1 else float("nan") for e, n in zip(errors, bars["n"], strict=True)]  # no cap for one seed
    drawn = ax.bar(positions, means, yerr=spread, capsize=6, color=[colors[i] for i in bars.index])
    other_data = [data != "embedded" for data in bars["data"]]
    for patch, other in zip(drawn.patches, other_data, strict=True):
        if other:  # the user's own or a Hub data set: a different test set, visibly so
            patch.set_hatch("//")
    if any(other_data):
        ax.set_xlabel("hatched: not the embedded data (ranked separately; scores not comparable)", fontsize="small")
    ticks = [tick_text(labels[i]) for i in bars.index]
    if rotate:  # too many bars for wrapped labels side by side: one vertical line each
        ax.set_xticks(positions, [labels[i] for i in bars.index], fontsize="small", rotation=90)
    else:
        ax.set_xticks(positions, ticks, fontsize="small")
    metric = bars["main_metric"].iloc[0]
    low = min(m - e for m, e in zip(means, errors, strict=True))
    high = max(m + e for m, e in zip(means, errors, strict=True))
    margin = max((high - low) * 0.5, 0.01)
    ax.set_ylim(low - margin, high + margin)  # zoom in: differences of a point are visible
    clamp_ylim(ax, metric)  # ...but never past what the metric can be
    ax.set(title=f"{task}: test {metric} (mean ± std over seeds)", ylabel=f"test {metric}")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def write_plots(runs: pd.DataFrame, groups: pd.DataFrame, out_dir: Path) -> list[Path]:
    """All plots for every task of `groups` (compare.group_runs, ranked) into out_dir; the paths written."""
    written = []
    for task, board in groups.groupby("task", sort=False):
        # Curves in leaderboard order, so the best run gets the first colour and legend line.
        position = {name: i for i, name in enumerate(name for names in board["runs"] for name in names)}
        task_runs = runs[runs["task"] == task].sort_values("name", key=lambda names: names.map(position), kind="stable")
        for made in (
            plot_dev_curves(task, task_runs, out_dir / f"{task}-dev.png", board),
            plot_loss_curves(task, task_runs, out_dir / f"{task}-loss.png", board),
            plot_test_bars(task, board, out_dir / f"{task}-test.png"),
        ):
            if made is not None:
                written.append(made)
    return written
