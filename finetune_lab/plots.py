"""PNG plots for `make compare`: dev curves, train loss curves, test bars with error bars over seeds.

Matplotlib with the Agg backend (no display needed). Legends sit outside the axes so they never
cover data; files are `<task>-dev.png`, `<task>-loss.png`, `<task>-test.png`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

if TYPE_CHECKING:
    from finetune_lab.compare import Group, Run


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=120, bbox_inches="tight")  # tight: keeps the outside legend in the image
    plt.close(fig)
    return path


def _legend_outside(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)


def dev_curve(run: Run) -> tuple[list[float], list[float]]:
    """(epochs, dev main metric) from the run's per-epoch evaluations."""
    key = f"eval_{run.main_metric}"
    points = [(e["epoch"], e[key]) for e in run.dev_history if "epoch" in e and key in e]
    return [p[0] for p in points], [p[1] for p in points]


def loss_curve(run: Run) -> tuple[list[float], list[float]]:
    """(epochs, training loss) from the Trainer's periodic train logs."""
    points = [(e["epoch"], e["loss"]) for e in run.train_history if "epoch" in e and "loss" in e]
    return [p[0] for p in points], [p[1] for p in points]


def plot_dev_curves(task: str, runs: list[Run], path: Path) -> Path | None:
    """Dev main metric per epoch, one line per run; None when no run has a dev history."""
    curves = [(run, *dev_curve(run)) for run in runs]
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


def plot_loss_curves(task: str, runs: list[Run], path: Path) -> Path | None:
    """Training loss against epoch, one line per run; None when no run logged a loss."""
    curves = [(run, *loss_curve(run)) for run in runs]
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


def plot_test_bars(task: str, groups: list[Group], path: Path) -> Path | None:
    """Test main metric per seed group: bar = mean, error bar = sample std over seeds (none for n = 1)."""
    bars = [g for g in groups if g.mean("test") is not None]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(bars) + 3), 4.5))
    positions = range(len(bars))
    means = [g.mean("test") for g in bars]
    errors = [g.std("test") or 0.0 for g in bars]
    labels = [f"{g.first.model}\n{_group_name(g)} (n={g.n})" for g in bars]
    colors = [f"C{i % 10}" for i in positions]
    ax.bar(positions, means, yerr=errors, capsize=6, color=colors, label=[_group_name(g) for g in bars])
    ax.set_xticks(list(positions), labels, fontsize="small")
    metric = bars[0].first.main_metric
    low = min(m - e for m, e in zip(means, errors, strict=True))
    high = max(m + e for m, e in zip(means, errors, strict=True))
    margin = max((high - low) * 0.5, 0.01)
    ax.set_ylim(max(0.0, low - margin), high + margin)  # zoom in: differences of a point are visible
    ax.set(title=f"{task}: test {metric} (mean ± std over seeds)", ylabel=f"test {metric}")
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(ax)
    return _save(fig, path)


def _group_name(group: Group) -> str:
    name = group.first.name
    return name if group.n == 1 else f"{name} +{group.n - 1}"


def write_plots(boards: dict[str, list[Group]], out_dir: Path) -> list[Path]:
    """All plots for all tasks into out_dir; the paths written."""
    written = []
    for task, groups in boards.items():
        runs = [run for group in groups for run in group.runs]
        for made in (
            plot_dev_curves(task, runs, out_dir / f"{task}-dev.png"),
            plot_loss_curves(task, runs, out_dir / f"{task}-loss.png"),
            plot_test_bars(task, groups, out_dir / f"{task}-test.png"),
        ):
            if made is not None:
                written.append(made)
    return written
