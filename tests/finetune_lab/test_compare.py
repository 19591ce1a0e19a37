"""The leaderboard and plots on hand-made results.json files (numbers checked by hand)."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from finetune_lab.compare import group_runs, load_runs, main, sort_groups
from finetune_lab.errors import UsageError


def write_run(
    root: Path,
    task: str,
    name: str,
    seed: int,
    dev: float,
    test: float | None,
    lr: float = 1e-4,
    model: str = "bert-tiny",
    tags: tuple[str, ...] = (),
    seconds: float = 10.0,
) -> Path:
    metric = "f1" if task == "ner" else "accuracy"
    data = {
        "task": task,
        "run_name": name,
        "model": model,
        "precision": "fp32",
        "seed": seed,
        "processes": 1,
        "main_metric": metric,
        "tags": [task, model, "fp32", f"seed{seed}", *tags],
        "options": {
            "run": {"task": task, "notes": f"note {name}"},
            "data": {"max_seq_length": 128},
            "training": {
                "learning_rate": lr,
                "per_device_train_batch_size": 32,
                "num_train_epochs": 2,
                "seed": seed,
                "run_name": name,
                "output_dir": f"outputs/{task}/{name}",
            },
        },
        "dev": {metric: dev, "loss": 0.5},
        "test": {} if test is None else {metric: test},
        "dev_history": [
            {"epoch": 1.0, f"eval_{metric}": dev - 0.1, "eval_loss": 0.7},
            {"epoch": 2.0, f"eval_{metric}": dev, "eval_loss": 0.5},
        ],
        "train_history": [{"epoch": 0.5, "loss": 1.0, "step": 5}, {"epoch": 1.5, "loss": 0.6, "step": 15}],
        "train": {"seconds": seconds, "samples_per_second": 100.0 / seconds},
    }
    path = root / task / name / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    root = tmp_path / "outputs"
    # ner: lr 1e-4 over three seeds, lr 3e-5 one seed, lr 5e-5 with no test metric
    write_run(root, "ner", "a-s1", 1, dev=0.80, test=0.70, tags=("sweep",), seconds=10)
    write_run(root, "ner", "a-s2", 2, dev=0.84, test=0.74, seconds=20)
    write_run(root, "ner", "a-s3", 3, dev=0.82, test=0.78, seconds=30)
    write_run(root, "ner", "b-s1", 1, dev=0.83, test=0.80, lr=3e-5, tags=("sweep",))
    write_run(root, "ner", "c-s1", 1, dev=0.90, test=None, lr=5e-5)
    write_run(root, "sentiment", "s-s1", 1, dev=0.60, test=0.65, model="bert-small")
    write_run(root, "sentiment", "s-s2", 2, dev=0.70, test=0.55, model="bert-small")
    return root


def set_option(results: Path, dotted: str, value: Any) -> None:
    """Change one value of a results.json, e.g. set_option(path, "options.data.max_seq_length", 256)."""
    data = json.loads(results.read_text())
    *sections, key = dotted.split(".")
    target = data
    for section in sections:
        target = target.setdefault(section, {})
    target[key] = value
    results.write_text(json.dumps(data))


def groups_for(root: Path, sort: str = "dev", by_seed: bool = True) -> pd.DataFrame:
    """The ranked seed groups of every task (one row per leaderboard line)."""
    runs, problems = load_runs(root)
    assert problems == []
    return sort_groups(group_runs(runs, by_seed), sort)


def board(groups: pd.DataFrame, task: str) -> list:
    """One task's leaderboard lines, best first, as rows with attribute access."""
    return list(groups[groups["task"] == task].itertuples())


def first_names(rows: list) -> list[str]:
    return [row.runs[0] for row in rows]


def test_seed_groups_have_mean_std_and_n(runs_dir):
    groups = groups_for(runs_dir)
    assert list(groups["task"].unique()) == ["ner", "sentiment"]
    ner = board(groups, "ner")
    # dev means: c 0.90, b 0.83, a (0.80 + 0.84 + 0.82) / 3 = 0.82: best first
    assert first_names(ner) == ["c-s1", "b-s1", "a-s1"]
    assert [row.rank for row in ner] == [1, 2, 3]
    a = ner[2]
    assert a.n == 3 and a.seeds == "1 2 3" and a.runs == ["a-s1", "a-s2", "a-s3"]
    assert a.dev_mean == pytest.approx(0.82)
    assert a.dev_std == pytest.approx(0.02)  # sample std of 0.80, 0.84, 0.82
    assert a.test_mean == pytest.approx(0.74)
    assert a.test_std == pytest.approx(0.04)
    assert a.train_seconds_mean == pytest.approx(20.0)
    assert pd.isna(ner[0].dev_std)  # one seed: no spread to report
    (sentiment,) = board(groups, "sentiment")
    assert sentiment.n == 2 and sentiment.test_mean == pytest.approx(0.60)
    assert sentiment.test_std == pytest.approx(statistics.stdev([0.65, 0.55]))


def test_sort_by_test_puts_missing_values_last(runs_dir):
    ner = board(groups_for(runs_dir, sort="test"), "ner")
    assert first_names(ner) == ["b-s1", "a-s1", "c-s1"]  # 0.80, 0.74, none
    fastest = first_names(board(groups_for(runs_dir, sort="time"), "ner"))
    assert fastest[0] in ("b-s1", "c-s1") and fastest[-1] == "a-s1"  # 10 s vs mean 20 s


def test_per_run_rows_do_not_group(runs_dir):
    ner = board(groups_for(runs_dir, by_seed=False), "ner")
    assert first_names(ner) == ["c-s1", "a-s2", "b-s1", "a-s3", "a-s1"]
    assert all(row.n == 1 for row in ner)


def test_a_loss_like_main_metric_ranks_lowest_first(tmp_path):
    root = tmp_path / "outputs"
    for name, dev in (("high", 0.9), ("low", 0.2)):
        path = write_run(root, "ner", name, 1, dev=dev, test=None, lr=dev)  # lr: two experiments
        set_option(path, "main_metric", "mse")
        set_option(path, "dev", {"mse": dev})
    assert first_names(board(groups_for(root), "ner")) == ["low", "high"]
    for name in ("high", "low"):  # the run's own greater_is_better wins over the metric's name
        set_option(root / "ner" / name / "results.json", "options.training.greater_is_better", True)
    assert first_names(board(groups_for(root), "ner")) == ["high", "low"]


@pytest.mark.parametrize(
    "option, first, second",
    [
        ("options.data.tokenized_cache_dir", "/cache/tokenized", "/scratch/other-cache"),
        ("options.training.output_dir", "outputs/ner/a", "/elsewhere/ner/a"),
        ("output_dir", "outputs/ner/a", "/elsewhere/ner/a"),
        ("options.training.logging_dir", "outputs/ner/a/logs", "/tmp/tensorboard"),
        ("options.model.cache_dir", None, "/hub-cache"),
        ("options.data.preprocessing_num_workers", None, 4),
        ("options.training.per_device_eval_batch_size", 32, 256),
        ("experiment_file", "experiments/ner.yaml", "/copies/ner.yaml"),
        ("options.training.num_train_epochs", 2, 2.0),  # W&B reads 2.0 back as 2
        ("options.task", {}, None),  # W&B drops an empty section
        ("options.data.group_by_length_pool", None, 0),  # older runs: transformers' grouping, as 0 says
        ("options.data.loss_denominator", None, "update"),
    ],
)
def test_folders_caches_and_spellings_do_not_split_a_seed_group(tmp_path, option, first, second):
    root = tmp_path / "outputs"
    for seed, value in ((1, first), (2, second)):
        set_option(write_run(root, "ner", f"a-s{seed}", seed, dev=0.8, test=0.7), option, value)
    (group,) = board(groups_for(root), "ner")
    assert group.n == 2 and group.seeds == "1 2"


@pytest.mark.parametrize(
    "option, first, second",
    [
        ("options.training.learning_rate", 1e-4, 3e-5),
        ("options.data.max_seq_length", 128, 256),
        ("options.model.model_name_or_path", "bert-tiny", "bert-small"),
        ("model", "bert-tiny", "bert-small"),
        ("options.task.label_granularity", "coarse", "fine"),
        ("options.training.gradient_accumulation_steps", 1, 4),
        ("options.data.max_train_samples", None, 1000),
        ("processes", 1, 2),
        ("options.data.group_by_length_pool", None, 8),  # an older run against today's default batching
        ("options.data.loss_denominator", None, "expected"),
    ],
)
def test_experiment_options_split_a_seed_group(tmp_path, option, first, second):
    root = tmp_path / "outputs"
    for seed, value in ((1, first), (2, second)):
        set_option(write_run(root, "ner", f"a-s{seed}", seed, dev=0.8, test=0.7), option, value)
    assert [row.n for row in board(groups_for(root), "ner")] == [1, 1]


@pytest.mark.parametrize(
    "switch, idle, acting, option, first, second",
    [
        ("options.data.shuffle_train_dataset", False, True, "options.data.shuffle_seed", 1, 2),
        (
            "options.training.train_sampling_strategy",
            "random",
            "group_by_length",
            "options.data.group_by_length_pool",
            0,
            8,
        ),
    ],
)
def test_an_option_splits_a_seed_group_only_where_it_acted(tmp_path, switch, idle, acting, option, first, second):
    for state, sizes in ((idle, [2]), (acting, [1, 1])):
        root = tmp_path / str(state) / "outputs"
        for seed, value in ((1, first), (2, second)):
            path = write_run(root, "ner", f"a-s{seed}", seed, dev=0.8, test=0.7)
            set_option(path, switch, state)
            set_option(path, option, value)
        assert [row.n for row in board(groups_for(root), "ner")] == sizes, state


def test_markdown_output(runs_dir, capsys):
    main([str(runs_dir), "--format", "markdown", "--no_plots", "--task", "ner"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "### ner (main metric: f1)"
    header = "| # | run | experiment | data | model | lr | batch | epochs | max_len | seeds | n | dev f1 | test f1 |"
    assert lines[2].startswith(header)
    assert lines[3].startswith("|---|---|")
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3
    expected = (
        "| a-s1, a-s2, a-s3 | - | embedded | bert-tiny | 0.0001 | 32 | 2 | 128 | 1 2 3 | 3 | 0.8200 ± 0.0200 "
        "| 0.7400 ± 0.0400 |"
    )
    assert expected in rows[2]
    assert "| c-s1 |" in rows[0] and "| 0.9000 | - |" in rows[0]
    assert "sentiment" not in out


def test_csv_output_and_tag_filter(runs_dir, capsys):
    main([str(runs_dir), "--format", "csv", "--no_plots", "--tag", "sweep"])
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    # only a-s1 and b-s1 carry 'sweep': two one-run groups, sorted by dev (0.83 > 0.80)
    assert [(r["task"], r["rank"], r["runs"], r["n"]) for r in table] == [
        ("ner", "1", "b-s1", "1"),
        ("ner", "2", "a-s1", "1"),
    ]
    assert float(table[1]["dev_mean"]) == pytest.approx(0.80) and table[1]["dev_std"] == ""
    assert float(table[0]["lr"]) == 3e-5


def test_csv_has_numbers_for_groups(runs_dir, capsys):
    main([str(runs_dir), "--format", "csv", "--no_plots", "--task", "sentiment"])
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert row["runs"] == "s-s1;s-s2" and row["n"] == "2" and row["main_metric"] == "accuracy"
    assert float(row["dev_mean"]) == pytest.approx(0.65)
    assert float(row["dev_std"]) == pytest.approx(statistics.stdev([0.60, 0.70]))


def test_terminal_table_and_files(runs_dir, capsys):
    (runs_dir / "ner" / "broken").mkdir()
    (runs_dir / "ner" / "broken" / "results.json").write_text("{not json")
    (runs_dir / "ner" / "old").mkdir()
    (runs_dir / "ner" / "old" / "results.json").write_text(json.dumps({"task": "ner"}))  # no main_metric
    main([str(runs_dir)])
    captured = capsys.readouterr()
    assert "ner (main metric: f1; mean ± std over seeds)" in captured.out
    assert "0.8200 ± 0.0200" in captured.out
    assert "broken/results.json" in captured.err and "missing main_metric" in captured.err
    assert "2 run(s) could not be read" in captured.err
    out = runs_dir / "compare"
    for name in ("ner-dev.png", "ner-loss.png", "ner-test.png", "sentiment-dev.png", "sentiment-test.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, name
    assert (out / "leaderboard.md").read_text().startswith("### ner")
    assert (out / "leaderboard.csv").read_text().startswith("task,rank,runs")


def test_plot_contents(runs_dir):
    import matplotlib.pyplot as plt

    from finetune_lab import plots

    runs, _ = load_runs(runs_dir)
    captured = {}
    original = plots._save
    plots._save = lambda fig, path: captured.setdefault(path.name, fig) and path
    try:
        plots.write_plots(runs, sort_groups(group_runs(runs)), runs_dir)
    finally:
        plots._save = original
    dev = captured["ner-dev.png"].axes[0]
    assert dev.get_title() == "ner: dev f1 per epoch" and dev.get_xlabel() == "epoch"
    assert len(dev.get_lines()) == 5  # one line per run
    lines = {line.get_label(): line for line in dev.get_lines()}
    # a-s1..3 are the third leaderboard line (lr 1e-4); the labels name what differs: the lr
    assert list(lines["#3 lr 0.0001 · seed 1"].get_ydata()) == pytest.approx([0.70, 0.80])
    assert list(lines["#3 lr 0.0001 · seed 1"].get_xdata()) == [1.0, 2.0]
    assert dev.get_legend() is not None
    bars = captured["ner-test.png"].axes[0]
    heights = sorted(p.get_height() for p in bars.patches)
    assert heights == pytest.approx([0.74, 0.80])  # the group without a test metric gets no bar
    for fig in captured.values():
        plt.close(fig)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing-dir"], "RUNS_DIR missing-dir is not a folder"),
        (["{root}", "--task", "pos"], "--task pos: no runs of that task; tasks found: ner, sentiment"),
        (["{root}", "--tag", "nope"], "no run matches --tag nope"),
        (["{root}", "--sort", "speedy"], "--sort speedy: choose one of"),
        (["{root}", "--format", "html"], "--format html: choose one of table, markdown, csv"),
        (["{root}", "--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_input_is_a_usage_error(runs_dir, argv, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        main([a.format(root=runs_dir) for a in argv] + ["--no_plots"])


def test_empty_folder_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no results.json under"):
        main([str(tmp_path / "empty"), "--no_plots"])


def test_real_runs_and_their_offline_wandb_runs(tiny_runs, capsys):
    """The shared tiny runs: results.json read as-is, and the same runs read back from offline W&B."""
    from finetune_lab.compare import load_wandb_runs

    outputs = tiny_runs["wandb_dir"] / "outputs"
    groups = main([str(outputs), "--out_dir", "plots"])
    assert set(groups["task"]) == {"ner", "sentiment"}
    for name in ("ner-dev.png", "ner-loss.png", "ner-test.png", "sentiment-dev.png"):
        assert Path("plots", name).stat().st_size > 5000

    saved_runs, _ = load_runs(outputs)
    wandb_runs, problems = load_wandb_runs(tiny_runs["wandb_dir"])
    assert problems == []
    assert sorted(wandb_runs["task"]) == ["ner", "sentiment"]
    for run in wandb_runs.itertuples():
        (saved,) = saved_runs[saved_runs["task"] == run.task].itertuples()
        assert (run.name, run.source, saved.source) == (saved.name, "wandb", "results.json")
        assert run.dev == pytest.approx(saved.dev) and run.test == pytest.approx(saved.test)
        assert run.samples_per_second == pytest.approx(saved.samples_per_second)
        assert run.experiment == saved.experiment  # a W&B run and its results.json group together
        expected = ("embedded", "tiny-ner" if run.task == "ner" else "-")  # conftest: NER from tiny-ner.yaml
        assert (run.data, run.experiment_name) == (saved.data, saved.experiment_name) == expected
    capsys.readouterr()
    merged = main([str(outputs), "--wandb_dir", str(tiny_runs["wandb_dir"]), "--no_plots", "--format", "csv"])
    assert [row.n for row in board(merged, "ner")] == [1]  # the same run from both sources counts once


def test_cli_exit_code_2_with_one_line(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    command = [sys.executable, "-m", "finetune_lab.compare", str(tmp_path / "nope")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    assert done.stderr == f"compare: error: RUNS_DIR {tmp_path / 'nope'} is not a folder\n"


# --- data and experiment columns, plot labels and axes ------------------------------------------


def custom_data(path: Path, folder: str = "/data/mine") -> None:
    """Make a run's results.json look like run.py on the user's own CSV files (run_config's keys)."""
    for split, name in (("train", "train.csv"), ("validation", "dev.csv"), ("test", "test.csv")):
        set_option(path, f"options.data.{split}_file", f"{folder}/{name}")
    set_option(path, "data.source", f"files: train={folder}/train.csv, validation={folder}/dev.csv")


@pytest.fixture
def mixed_dir(tmp_path) -> Path:
    """sentiment: an experiment file over two seeds on the embedded data, a run on the user's own CSV
    (the best dev score, on other data), a Hub data set; timestamped default run names."""
    root = tmp_path / "outputs"
    for seed, dev in ((1, 0.80), (2, 0.82)):
        path = write_run(root, "sentiment", f"all-MiniLM-L6-v2-seed{seed}-20250101-12000{seed}", seed, dev, dev - 0.05)
        set_option(path, "experiment_file", "experiments/sentiment-quick.yaml")
        set_option(path, "data.source", "embedded movie-review sentences (/x/y.txt); stratified 80/10/10 split")
    write_run(root, "sentiment", "all-MiniLM-L6-v2-seed1-20250101-130000", 1, 0.78, 0.77, lr=3e-5)
    custom_data(write_run(root, "sentiment", "all-MiniLM-L6-v2-seed1-20250101-140000", 1, 0.95, 0.93))
    hub = write_run(root, "sentiment", "all-MiniLM-L6-v2-seed1-20250101-150000", 1, 0.90, 0.88)
    set_option(hub, "options.data.dataset_name", "stanfordnlp/sst2")
    return root


def test_data_and_experiment_columns(mixed_dir, capsys):
    groups = main([str(mixed_dir), "--no_plots", "--format", "csv"])
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    # embedded lines first (ranked among themselves), then each other data source with its own rank 1,
    # although the CSV run's dev score (0.95) is the best of all: other data, not comparable
    assert [(r["rank"], r["data"], r["experiment"], r["n"]) for r in table] == [
        ("1", "embedded", "sentiment-quick", "2"),
        ("2", "embedded", "-", "1"),
        ("1", "files: mine/train.csv", "-", "1"),
        ("1", "hub: stanfordnlp/sst2", "-", "1"),
    ]
    assert list(groups["data"]) == [r["data"] for r in table]

    main([str(mixed_dir), "--no_plots"])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("#"))
    assert header.split()[:5] == ["#", "run", "experiment", "data", "model"]
    custom_line = next(line for line in out.splitlines() if "140000" in line)
    assert "files: mine/train.csv" in custom_line and "embedded" not in custom_line
    assert "ranks restart per data source" in out


def test_a_custom_csv_run_is_never_in_the_embedded_seed_group(tmp_path):
    root = tmp_path / "outputs"
    write_run(root, "sentiment", "a-s1", 1, dev=0.8, test=0.7)
    custom_data(write_run(root, "sentiment", "a-s2", 2, dev=0.8, test=0.7))
    rows = board(groups_for(root), "sentiment")
    assert [(row.data, row.n, row.rank) for row in rows] == [("embedded", 1, 1), ("files: mine/train.csv", 1, 1)]


def test_data_label_from_the_source_sentence_of_older_records():
    from finetune_lab.compare import data_label, experiment_name

    assert data_label({"data": {"source": "embedded CoNLL-2003 (/x)"}}) == "embedded"
    assert data_label({"data": {"source": "files: train=a.csv, validation=b.csv"}}) == "files: train=a.csv"
    assert data_label({}) == "embedded"
    assert experiment_name({"options": {"run": {"experiment": "/abs/ner-quick.yml"}}}) == "ner-quick"


@pytest.fixture(autouse=True)
def close_figures():
    """Figures captured before saving are never closed by plots._save: close them after each test."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def captured_figures(monkeypatch, root: Path) -> dict[str, Any]:
    """Every figure write_plots makes for the runs under root, by file name, before it is saved."""
    from finetune_lab import plots

    runs, problems = load_runs(root)
    assert problems == []
    figures: dict[str, Any] = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.setdefault(path.name, fig) and path)
    plots.write_plots(runs, sort_groups(group_runs(runs)), root)
    return figures


def assert_no_overlap(texts: list) -> None:
    """The drawn text boxes (display coordinates) pairwise apart."""
    boxes = [t.get_window_extent() for t in texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a.x1 <= b.x0 or b.x1 <= a.x0, (a, b)


def test_tick_labels_and_legends_are_short_unique_and_apart(mixed_dir, monkeypatch):
    import re

    from finetune_lab import plots

    figures = captured_figures(monkeypatch, mixed_dir)
    bars = figures["sentiment-test.png"]
    ax = bars.axes[0]
    bars.canvas.draw()
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    assert labels == [  # rank + what differs (experiment, data, lr), one part a line; no time stamps
        "#1 sentiment-quick\nembedded\nlr 0.0001\nn=2",
        "#2 no exp. file\nembedded\nlr 3e-05",
        "#1 no exp. file\nfiles:\nmine/train.csv\nlr 0.0001",
        "#1 no exp. file\nhub:\nstanfordnlp/sst2\nlr 0.0001",
    ]
    assert all(len(line) <= plots.WRAP for label in labels for line in label.splitlines())
    assert_no_overlap(ax.get_xticklabels())
    assert ax.get_legend() is None  # the ticks name the bars
    assert [bar.get_hatch() for bar in ax.patches] == [None, None, "//", "//"]  # other data: hatched
    assert "not the embedded data" in ax.get_xlabel()

    for name in ("sentiment-dev.png", "sentiment-loss.png"):
        legend = [text.get_text() for text in figures[name].axes[0].get_legend().get_texts()]
        assert len(legend) == 5 and len(set(legend)) == 5, legend
        assert not any(re.search(r"\d{8}-\d{6}", text) for text in legend), legend
        assert "#1 sentiment-quick · embedded · lr 0.0001 · seed 2" in legend
        assert "#1 no exp. file · files: mine/train.csv · lr 0.0001 · seed 1" in legend


def test_many_bars_turn_their_labels_and_never_overlap(tmp_path, monkeypatch):
    root = tmp_path / "outputs"
    for i in range(30):  # thirty learning rates: wider than MAX_WIDTH_IN at 1.5 inches a bar
        write_run(root, "ner", f"all-MiniLM-L6-v2-seed1-20250101-1200{i:02d}", 1, 0.5 + i / 100, 0.5, lr=(i + 1) * 1e-5)
    fig = captured_figures(monkeypatch, root)["ner-test.png"]
    fig.canvas.draw()
    ticks = fig.axes[0].get_xticklabels()
    assert len({t.get_text() for t in ticks}) == 30
    assert all(t.get_rotation() == 90 for t in ticks)
    assert fig.get_figwidth() <= 24
    assert_no_overlap(ticks)


def test_runs_differing_in_an_unshown_option_are_named(tmp_path):
    from finetune_lab import plots

    root = tmp_path / "outputs"
    for name, warmup in (("warm-a-20250101-120000", 0.1), ("warm-b-20250101-120001", 0.2)):
        set_option(write_run(root, "ner", name, 1, 0.8, 0.7), "options.training.warmup_steps", warmup)
    groups = groups_for(root)
    assert plots.group_labels(groups) == ["#1 warm-a", "#2 warm-b"]


@pytest.mark.parametrize(
    "metric, values, low, high",
    [
        ("accuracy", (0.99, 1.0, 0.995), 0.0, 1.0),  # near 1 with a spread: the axis stops at 1
        ("macro_f1", (0.97, 1.0, 1.0), 0.0, 1.0),
        ("pearson", (-0.6, -0.2, 0.3), -1.0, 1.0),  # a correlation can be negative: shown, floored at -1
        ("mse", (3.5, 4.0, 5.5), 0.0, None),  # a loss: no cap at 1
    ],
)
def test_metric_axes_stay_inside_the_metric_bounds(tmp_path, monkeypatch, metric, values, low, high):
    root = tmp_path / "outputs"
    for seed, value in enumerate(values, start=1):
        path = write_run(root, "sentiment", f"s{seed}", seed, value, value)  # one group, three seeds
        set_option(path, "main_metric", metric)
        set_option(path, "dev", {metric: value})
        set_option(path, "test", {metric: value})
        set_option(
            path,
            "dev_history",
            [{"epoch": 1.0, f"eval_{metric}": value - 0.01}, {"epoch": 2.0, f"eval_{metric}": value}],
        )
    figures = captured_figures(monkeypatch, root)
    shown = {  # what each plot must keep in view: the bar's mean, every point of the curves
        "sentiment-test.png": (statistics.mean(values), statistics.mean(values)),
        "sentiment-dev.png": (min(values) - 0.01, max(values)),
    }
    for name, (lowest, highest) in shown.items():
        bottom, top = figures[name].axes[0].get_ylim()
        assert bottom >= low and (high is None or top <= high), (name, bottom, top)
        assert bottom < lowest and top >= highest, (name, bottom, top)
    loss_bottom, _ = figures["sentiment-loss.png"].axes[0].get_ylim()
    assert loss_bottom >= 0.0


def test_legend_names_each_runs_own_experiment_and_stamps_only_repeats(tmp_path, monkeypatch):
    """One seed group holding runs with and without an experiment file (same options), one seed twice."""
    root = tmp_path / "outputs"
    names = ["m-seed1-20250101-120000", "m-seed1-20250102-090000", "m-seed2-20250101-130000"]
    for name, seed, experiment in zip(names, (1, 1, 2), ("experiments/ner-quick.yaml", None, None), strict=True):
        path = write_run(root, "ner", name, seed, 0.8, 0.7)
        if experiment:
            set_option(path, "experiment_file", experiment)
    (group,) = board(groups_for(root), "ner")
    assert group.experiment_name == "-, ner-quick" and group.n == 3
    legend = figure_legend(captured_figures(monkeypatch, root)["ner-dev.png"])
    assert sorted(legend) == [
        "#1 ner-quick · seed 1",
        "#1 no exp. file · seed 1",
        "#1 no exp. file · seed 2",
    ]
    for name in names[1:]:  # now the same seed and experiment twice: their start times tell them apart
        set_option(root / "ner" / name / "results.json", "experiment_file", "experiments/ner-quick.yaml")
    legend = figure_legend(captured_figures(monkeypatch, root)["ner-dev.png"])
    assert sorted(legend) == [
        "#1 ner-quick · seed 1 · 20250101-120000",
        "#1 ner-quick · seed 1 · 20250102-090000",
        "#1 ner-quick · seed 2",
    ]


def figure_legend(fig: Any) -> list[str]:
    return [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
