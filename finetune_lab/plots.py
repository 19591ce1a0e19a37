"""PNG plots for `make compare`: dev curves, train loss curves, test bars with error bars over seeds.

They read compare's DataFrames: runs (one row per run, with its per-epoch histories) and seed
groups (one row per leaderboard line). Matplotlib with the Agg backend (no display needed).
Legends sit outside the axes so they never cover data; files are `<task>-dev.png`,
`<task>-loss.png`, `<task>-test.png`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=120, bbox_inches="tight")  # tight: keeps the outside legend in the image
    plt.close(fig)
    return path


def _legend_outside(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)


def dev_curve(run: Any) -> tuple[list[float], list[float]]:
    """(epochs, dev main metric) from the per-epoch evaluations of a run (a row of compare's runs)."""
    key = f"eval_{run.main_metric}"
    points = [(e["epoch"], e[key]) for e in run.dev_history if "epoch" in e and key in e]
    return [p[0] for p in points], [p[1] for p in points]


def loss_curve(run: Any) -> tuple[list[float], list[float]]:
    """(epochs, training loss) from the Trainer's periodic train logs."""
    points = [(e["epoch"], e["loss"]) for e in run.train_history if "epoch" in e and "loss" in e]
    return [p[0] for p in points], [p[1] for p in points]


def plot_dev_curves(task: str, runs: pd.DataFrame, path: Path) -> Path | None:
    """Dev main metric per epoch, one line per run; None when no run has a dev history."""
    curves = [(run, *dev_curve(run)) for run in runs.itertuples()]
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run, epochs, values in curves:
        ax.plot(epochs, values, marker="o", label=run.name)
    metric = curves[0][0].main_metric
    ax.set(title=f"{task}: dev {metric} per epoch", xlabel="epoch", ylabel=f"dev {metric}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # evaluations happen at whole epochs
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return _save(fig, path)


def plot_loss_curves(task: str, runs: pd.DataFrame, path: Path) -> Path | None:
    """Training loss against epoch, one line per run; None when no run logged a loss."""
    curves = [(run, *loss_curve(run)) for run in runs.itertuples()]
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run, epochs, values in curves:
        ax.plot(epochs, values, label=run.name)
    ax.set(title=f"{task}: training loss", xlabel="epoch", ylabel="training loss")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return _save(fig, path)


def plot_test_bars(task: str, groups: pd.DataFrame, path: Path) -> Path | None:
    """Test main metric per seed group: bar = mean, error bar = sample std over seeds (none for n = 1)."""
    bars = groups[groups["test_mean"].notna()]
    if bars.empty:
        return None
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(bars) + 3), 4.5))
    positions = range(len(bars))
    means = bars["test_mean"].tolist()
    errors = bars["test_std"].fillna(0.0).tolist()
    names = [_group_name(runs) for runs in bars["runs"]]
    labels = [f"{model}\n{name} (n={n})" for model, name, n in zip(bars["model"], names, bars["n"], strict=True)]
    colors = [f"C{i % 10}" for i in positions]
    ax.bar(positions, means, yerr=errors, capsize=6, color=colors, label=names)
    ax.set_xticks(list(positions), labels, fontsize="small")
    metric = bars["main_metric"].iloc[0]
    low = min(m - e for m, e in zip(means, errors, strict=True))
    high = max(m + e for m, e in zip(means, errors, strict=True))
    margin = max((high - low) * 0.5, 0.01)
    ax.set_ylim(max(0.0, low - margin), high + margin)  # zoom in: differences of a point are visible
    ax.set(title=f"{task}: test {metric} (mean ± std over seeds)", ylabel=f"test {metric}")
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(ax)
    return _save(fig, path)


def _group_name(run_names: list[str]) -> str:
    """The first run's name, with how many more seeds the group holds."""
    return run_names[0] if len(run_names) == 1 else f"{run_names[0]} +{len(run_names) - 1}"


def write_plots(runs: pd.DataFrame, groups: pd.DataFrame, out_dir: Path) -> list[Path]:
    """All plots for every task of `groups` (compare.group_runs, ranked) into out_dir; the paths written."""
    written = []
    for task, board in groups.groupby("task", sort=False):
        # Curves in leaderboard order, so the best run gets the first colour and legend line.
        position = {name: i for i, name in enumerate(name for names in board["runs"] for name in names)}
        task_runs = runs[runs["task"] == task].sort_values("name", key=lambda names: names.map(position), kind="stable")
        for made in (
            plot_dev_curves(task, task_runs, out_dir / f"{task}-dev.png"),
            plot_loss_curves(task, task_runs, out_dir / f"{task}-loss.png"),
            plot_test_bars(task, board, out_dir / f"{task}-test.png"),
        ):
            if made is not None:
                written.append(made)
    return written
