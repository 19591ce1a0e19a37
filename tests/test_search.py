"""search.py: Optuna studies of tiny runs (tiny model, a few dozen examples): complete, resumed after
kill -9, shared by two workers, pruned, two stages; bad search-space files; the W&B sweep files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from finetune_lab import search
from finetune_lab.errors import UsageError
from tests.conftest import ROOT, wandb_inspect

TABLE_SETTINGS = SimpleNamespace(space=SimpleNamespace(params={}), metric="accuracy", maximize=True)

SPACE = """\
learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}
warmup_steps: {low: 0.0, high: 0.2}
"""


def tiny(model: Path, train: int = 32, dev: int = 16, test: int = 8, epochs: int = 1) -> list[str]:
    """run.py options for a run of seconds."""
    return [
        *("--model_name_or_path", str(model), "--max_train_samples", str(train), "--max_eval_samples", str(dev)),
        *("--max_predict_samples", str(test), "--num_train_epochs", str(epochs), "--per_device_train_batch_size", "16"),
        *("--report_to", "none", "--disable_tqdm", "true", "--logging_steps", "4"),
    ]


def space_file(text: str = SPACE, name: str = "space.yaml") -> str:
    Path(name).write_text(text)
    return name


def load(study_dir: Path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


def check_trial_runs(study: optuna.Study, metric: str) -> None:
    """Every complete trial is a normal run: its own folder, results.json with the trial's parameters,
    the objective its dev main metric (not test), and its checkpoints removed (the model stays)."""
    folders = set()
    for trial in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
        run_dir = Path(trial.user_attrs["run_dir"])
        assert run_dir not in folders
        folders.add(run_dir)
        results = json.loads((run_dir / "results.json").read_text())
        assert results["search"]["trial"] == trial.number and results["search"]["params"] == trial.params
        assert results["options"]["training"]["learning_rate"] == trial.params["learning_rate"]
        if trial.state == TrialState.COMPLETE:
            assert trial.value == results["dev"][metric]
            assert trial.user_attrs["test"] == results["test"][metric]
        assert (run_dir / "model.safetensors").exists() and not list(run_dir.glob("checkpoint-*"))


# --- a study, start to end -------------------------------------------------------------------------


def test_a_four_trial_study_completes_with_table_plots_and_a_runnable_best_file(tiny_model_dir, capsys):
    from run import main as run_main

    # loss as the main metric: distinct values per trial (a tiny model's accuracy is the majority class)
    space = space_file(SPACE + "metric_for_best_model: loss\n")
    best = search.main(
        ["--task", "sentiment", "--space", space, "--n_trials", "4", "--study_name", "s4"] + tiny(tiny_model_dir)
    )
    out = capsys.readouterr().out

    study_dir = Path("outputs/search/s4")
    study = load(study_dir, "s4")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # loss: lower is better
    assert len({t.params["learning_rate"] for t in study.trials}) == 4
    check_trial_runs(study, "loss")

    # the table: every trial, best (lowest loss) first; the plots; trials.md
    best_trial = min(study.trials, key=lambda t: t.value)
    table = out[out.index("s4, trials:") :].splitlines()
    assert [line.split()[0] for line in table[3:7]] == [
        str(t.number) for t in sorted(study.trials, key=lambda t: t.value)
    ]
    assert "importances.png" not in out  # no note: drawn
    for name in ("history.png", "importances.png", "intermediate.png", "trials.md"):
        assert (study_dir / name).stat().st_size > 0

    # the best file: the best trial's parameters with the search's run options; run as it is, it
    # reproduces the trial's dev score exactly (same seed, CPU)
    assert best == Path("experiments/s4-best.yaml")
    options = yaml.safe_load(best.read_text())
    assert options["task"] == "sentiment" and options["learning_rate"] == best_trial.params["learning_rate"]
    assert options["warmup_steps"] == best_trial.params["warmup_steps"] and options["max_train_samples"] == 32
    rerun = run_main(["--experiment", str(best), "--output_dir", "rerun"])
    assert rerun["dev"]["loss"] == pytest.approx(best_trial.value, abs=1e-6)


def test_a_second_run_of_the_same_command_adds_nothing_and_a_changed_space_is_refused(tiny_model_dir):
    args = ["--task", "sentiment", "--n_trials", "1", "--study_name", "again", *tiny(tiny_model_dir)]
    search.main(["--space", space_file(), *args])
    search.main(["--space", space_file(), *args])  # already has its trial: only the report
    assert len(load(Path("outputs/search/again"), "again").trials) == 1
    with pytest.raises(UsageError, match="study again .* was started with other settings \\(space differ"):
        search.main(["--space", space_file(SPACE.replace("0.2", "0.3")), *args])


# --- kill -9 and resume ------------------------------------------------------------------------------


def test_a_study_killed_after_its_second_trial_continues_and_keeps_its_finished_trials(tiny_model_dir, tmp_path):
    command = [sys.executable, str(ROOT / "search.py"), "--task", "sentiment", "--space", space_file()]
    command += ["--n_trials", "4", "--study_name", "killed", *tiny(tiny_model_dir)]
    study_dir = tmp_path / "outputs/search/killed"
    with open("first.log", "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while True:  # until trial 2 is training: two trials finished, the third interrupted
            assert first.poll() is None and time.monotonic() < deadline, Path("first.log").read_text()[-3000:]
            time.sleep(0.3)
            if (study_dir / "trials/trial-0002").is_dir():
                break
        first.send_signal(signal.SIGKILL)
        first.wait()
    before = load(study_dir, "killed").trials
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "trial 2: interrupted (its worker stopped); queued again with the same parameters" in again.stdout

    after = load(study_dir, "killed").trials
    for old in before[:2]:  # finished trials kept as they were, not re-run
        kept = after[old.number]
        assert (kept.state, kept.value, kept.params, kept.datetime_complete) == (
            old.state,
            old.value,
            old.params,
            old.datetime_complete,
        )
    assert after[2].state == TrialState.FAIL and "interrupted" in after[2].user_attrs["error"]
    (rerun,) = [t for t in after if t.user_attrs.get("retry_of") == 2]
    assert rerun.params == after[2].params and rerun.state == TrialState.COMPLETE
    assert [t.state for t in after].count(TrialState.COMPLETE) == 4 and len(after) == 5
    header, rows = search.trial_rows(load(study_dir, "killed"), TABLE_SETTINGS)
    minutes = {row[0]: row[header.index("min")] for row in rows}
    assert minutes["2"] == "" and all(minutes[n] for n in "0134")  # no duration for the interrupted trial
    # the fresh sampler did not draw trial 0's values again
    assert len({t.params["learning_rate"] for t in after}) == 4
    check_trial_runs(load(study_dir, "killed"), "accuracy")


def test_an_rdb_storage_url_holds_the_study_with_optunas_heartbeat(tiny_model_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"  # the RDB path (PostgreSQL, MySQL) with SQLite
    args = ["--task", "sentiment", "--space", space_file(), "--n_trials", "1", "--study_name", "rdb"]
    search.main([*args, "--storage", url, *tiny(tiny_model_dir)])
    storage = optuna.storages.RDBStorage(url)
    (trial,) = optuna.load_study(study_name="rdb", storage=storage).trials
    assert trial.state == TrialState.COMPLETE and trial.value is not None
    assert not Path("outputs/search/rdb/journal.log").exists()
    assert search.open_storage(search.settle([*args, "--storage", url])).heartbeat_interval == search.HEARTBEAT_S


def test_a_record_cut_short_by_a_kill_is_removed_from_the_journal(tmp_path, capsys):
    path = tmp_path / "journal.log"
    path.write_bytes(b'{"op_code": 0}\n{"op_code": 1, "stu')
    search.repair_journal(path)
    assert path.read_bytes() == b'{"op_code": 0}\n'
    assert "removed a last record cut short by an interrupted write (19 bytes)" in capsys.readouterr().out


def test_a_worker_lock_is_held_while_its_worker_lives(tmp_path):
    lock = search.WorkerLock(tmp_path)
    assert search.worker_alive(tmp_path / "workers", lock.id)
    os.close(lock.fd)  # what the kernel does when the worker dies
    assert not search.worker_alive(tmp_path / "workers", lock.id)
    assert not (tmp_path / "workers" / f"{lock.id}.lock").exists()


# --- two workers -------------------------------------------------------------------------------------


def test_two_workers_share_one_study_without_losing_or_repeating_trials(tiny_model_dir, tmp_path):
    command = [sys.executable, str(ROOT / "search.py"), "--task", "sentiment", "--space", space_file()]
    command += ["--n_trials", "4", "--workers", "2", "--study_name", "pair", *tiny(tiny_model_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    study_dir = tmp_path / "outputs/search/pair"
    study = load(study_dir, "pair")
    trials = study.trials
    # Optuna's MaxTrialsCallback stops each worker once the study has 4 (at most one more when both
    # finish at the same instant); nothing failed, nothing left running
    assert 4 <= len(trials) <= 5 and {t.state for t in trials} == {TrialState.COMPLETE}
    assert [t.number for t in trials] == list(range(len(trials)))
    assert len({t.params["learning_rate"] for t in trials}) == len(trials)  # no trial drawn twice
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    folders = sorted(p.name for p in (study_dir / "trials").iterdir())
    assert folders == [f"trial-{t.number:04d}" for t in trials]  # one run per trial, no other
    check_trial_runs(study, "accuracy")
    assert not list((study_dir / "workers").glob("*.lock"))  # both workers ended and let go


# --- pruning -----------------------------------------------------------------------------------------


def test_a_bad_trial_is_pruned_after_its_first_epoch_and_marked(tiny_model_dir, capsys):
    space = space_file("learning_rate: {low: 1.0e-9, high: 1.0e-2, log: true}\nmetric_for_best_model: loss\n")
    # the two trials fixed in advance: a learning rate that learns, then one that cannot (dev loss stays put)
    Path("outputs/search/pr").mkdir(parents=True)
    storage = JournalStorage(JournalFileBackend("outputs/search/pr/journal.log"))
    study = optuna.create_study(study_name="pr", storage=storage, direction="minimize")
    study.enqueue_trial({"learning_rate": 5e-3})
    study.enqueue_trial({"learning_rate": 1e-9})
    os.environ.pop("WANDB_MODE", None)
    args = ["--task", "sentiment", "--space", space, "--n_trials", "2", "--study_name", "pr"]
    args += ["--pruner_startup_trials", "1", *tiny(tiny_model_dir, train=128, dev=64, test=16, epochs=2)]
    args[args.index("--report_to") + 1] = "wandb"  # offline: each trial a W&B run of the study's group
    search.main(args)
    out = capsys.readouterr().out

    good, bad = load(Path("outputs/search/pr"), "pr").trials
    assert good.state == TrialState.COMPLETE and len(good.intermediate_values) == 2
    assert bad.state == TrialState.PRUNED and list(bad.intermediate_values) == [1]
    results = json.loads((Path(bad.user_attrs["run_dir"]) / "results.json").read_text())
    assert results["search"]["state"] == "pruned" and results["search"]["evaluations"] == 1
    assert len(results["dev_history"]) == 1  # training stopped after the first epoch
    assert "trial 1: pruned after evaluation 1" in out
    (row,) = [line for line in out[out.index("pr, trials:") :].splitlines()[3:5] if line.split()[0] == "1"]
    assert "PRUNED" in row and "pruned after evaluation 1" in row

    runs = sorted(Path("wandb").glob("offline-run-*"))
    assert len(runs) == 2
    for run_dir in runs:
        records = [json.loads(line) for line in wandb_inspect(run_dir, "--json").splitlines() if line.strip()]
        (header,) = [r["run"] for r in records if r.get("type") == "run"]
        assert header["run_group"] == "pr" and header["job_type"] == "trial"
        config = json.loads(wandb_inspect(run_dir, "--summary", "--json"))["config"]
        assert config["search"]["study"] == "pr"
        assert config["search"]["params"]["learning_rate"] in (5e-3, 1e-9)


# --- two stages --------------------------------------------------------------------------------------


def test_two_stages_run_every_trial_on_a_part_then_the_best_on_all_the_data(tiny_model_dir):
    space = space_file(SPACE + "metric_for_best_model: loss\n")  # distinct values: a real ranking
    args = ["--task", "sentiment", "--space", space, "--n_trials", "3", "--study_name", "two"]
    args += ["--stage1_fraction", "0.5", "--stage1_epochs", "1", "--top_k", "2", *tiny(tiny_model_dir, epochs=2)]
    best = search.main(args)

    stage1, stage2 = load(Path("outputs/search/two"), "two"), load(Path("outputs/search/two"), "two-full")
    assert len(stage1.trials) == 3 and len(stage2.trials) == 2
    for trial in stage1.trials:
        options = json.loads((Path(trial.user_attrs["run_dir"]) / "results.json").read_text())["options"]
        assert options["data"]["max_train_samples"] == 16 and options["training"]["num_train_epochs"] == 1
    top = sorted(stage1.trials, key=lambda t: t.value)[:2]  # the lowest dev loss
    assert [t.params for t in stage2.trials] == [t.params for t in top]
    for trial in stage2.trials:
        options = json.loads((Path(trial.user_attrs["run_dir"]) / "results.json").read_text())["options"]
        assert options["data"]["max_train_samples"] == 32 and options["training"]["num_train_epochs"] == 2
    chosen = min(stage2.trials, key=lambda t: t.value)
    assert yaml.safe_load(best.read_text())["learning_rate"] == chosen.params["learning_rate"]


def test_baseline_runs_the_defaults_first_and_again_on_all_the_data_beside_the_top_k(tiny_model_dir, capsys):
    """--baseline: trial 0 is the task's defaults (sentiment: lr 1e-4, warmup 0.1), and stage 2 re-runs it
    beside the top k even when its stage-1 rank would leave it out, so the best is measured against it."""
    # the highest dev loss wins here: a larger learning rate than the defaults' 1e-4 outranks them in stage 1
    space = space_file(SPACE + "metric_for_best_model: loss\ngreater_is_better: true\n")
    args = ["--task", "sentiment", "--space", space, "--n_trials", "3", "--study_name", "base", "--baseline"]
    args += ["--stage1_fraction", "0.5", "--stage1_epochs", "1", "--top_k", "1"]
    args += tiny(tiny_model_dir, train=128, epochs=2)
    search.main(args)
    out = capsys.readouterr().out

    stage1, stage2 = load(Path("outputs/search/base"), "base"), load(Path("outputs/search/base"), "base-full")
    assert len(stage1.trials) == 3
    assert stage1.trials[0].params == {"learning_rate": 1e-4, "warmup_steps": 0.1}
    assert stage1.trials[0].user_attrs["baseline"] and not any(t.user_attrs.get("baseline") for t in stage1.trials[1:])
    best = max(stage1.trials, key=lambda t: t.value)
    assert best.number != 0, "the scenario needs a baseline outside the top 1"
    assert [t.params for t in stage2.trials] == [best.params, stage1.trials[0].params]
    assert [t.user_attrs.get("baseline", False) for t in stage2.trials] == [False, True]
    assert "baseline: no search" in out
    winner = max(stage2.trials, key=lambda t: t.value)
    marked = "This is the baseline" in Path("experiments/base-best.yaml").read_text()
    assert marked == bool(winner.user_attrs.get("baseline")), "the best file says whether the baseline won"


def test_a_best_file_that_is_the_baseline_says_so(tiny_model_dir):
    """When no trial beats the defaults, the best file must not read like a found recipe."""
    args = ["--task", "sentiment", "--space", space_file(SPACE), "--n_trials", "1", "--study_name", "only"]
    search.main(args + ["--baseline"] + tiny(tiny_model_dir, train=32, epochs=1))
    text = Path("experiments/only-best.yaml").read_text()
    assert "This is the baseline" in text and yaml.safe_load(text)["learning_rate"] == 1e-4


# --- bad input ---------------------------------------------------------------------------------------

BAD_SPACES = [
    (
        "learnig_rate: {low: 1.0e-5, high: 1.0e-3}\n",
        "learnig_rate: not a run.py option (did you mean 'learning_rate'?)",
    ),
    ("learning_rate: {low: 1.0e-3, high: 1.0e-5}\n", "learning_rate: low 0.001 must be below high 1e-05"),
    ("weight_decay: {low: 0.0, high: 0.1, log: true}\n", "weight_decay: a log range needs low > 0"),
    ("learning_rate: {low: 1.0e-5}\n", "learning_rate: a range needs low and high (missing high)"),
    ("learning_rate: {low: 1.0e-5, hi: 1.0e-3}\n", "learning_rate: unknown key 'hi' (did you mean 'high'?)"),
    ("learning_rate: {low: -1.0, high: 1.0e-3}\n", "learning_rate: -1 must be a positive number"),
    ("per_device_train_batch_size: {choices: [16, big]}\n", "per_device_train_batch_size: expected an integer"),
    ("per_device_train_batch_size: {low: 8, high: 32, step: 0.5}\n", "per_device_train_batch_size: step"),
    ("label_all_tokens: {low: 0, high: 1}\n", "label_all_tokens: a range needs a numeric option"),
    ("num_train_epochs: {choices: []}\n", "num_train_epochs: choices: expected a non-empty list"),
    ("lr_scheduler_type: {choices: [linear, cosine, wavy]}\n", "lr_scheduler_type: expected one of"),
    ("output_dir: elsewhere\nlearning_rate: {low: 1.0e-5, high: 1.0e-3}\n", "output_dir: set by the search itself"),
    ("metric_for_best_model: {choices: [accuracy, loss]}\n", "metric_for_best_model: the objective cannot be searched"),
    ("learning_rate: 1.0e-4\n", "nothing to search"),
    ("learning_rate: {low: 1.0e-5, high: 1.0e-3\n", "space.yaml:2: not valid YAML"),
    ("task: ner\nlearning_rate: {low: 1.0e-5, high: 1.0e-3}\n", "task: 'ner', but the search is for --task sentiment"),
]


@pytest.mark.parametrize(("text", "message"), BAD_SPACES, ids=[m.split(":")[0] for _, m in BAD_SPACES])
def test_a_malformed_search_space_is_one_line_naming_the_file_and_key(text, message):
    with pytest.raises(UsageError) as caught:
        search.main(["--task", "sentiment", "--space", space_file(text), "--report_to", "none"])
    error = str(caught.value)
    assert error.startswith("space.yaml") and message in error and "\n" not in error
    assert not Path("outputs").exists()  # nothing ran


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learning_rate", "1e-4"], "--learning_rate on the command line and in space.yaml (learning_rate)"),
        (["--output_dir", "x"], "--output_dir: set by the search for each trial"),
        (["--learning_rat", "1e-4"], "unknown option --learning_rat (did you mean 'learning_rate'?)"),
        (["--stage1_fraction", "1.5"], "--stage1_fraction 1.5: must be between 0 and 1"),
        (["--top_k", "30"], "--top_k 30: more than the 20 trials of stage 1"),
    ],
)
def test_contradicting_search_options_are_one_line_errors(args, message):
    if args[0] == "--top_k":
        args = [*args, "--stage1_epochs", "1"]
    with pytest.raises(UsageError, match=re.escape(message)):
        search.main(["--task", "sentiment", "--space", space_file(), *args])


def test_a_baseline_outside_the_space_is_one_line_naming_the_option(tiny_model_dir):
    space = space_file("learning_rate: {low: 1.0e-3, high: 1.0e-2, log: true}\n")
    message = "--baseline: learning_rate is 0.0001 without the search, outside space.yaml (0.001 to 0.01)"
    with pytest.raises(UsageError, match=re.escape(message)):
        search.main(["--task", "sentiment", "--space", space, "--baseline", "--n_trials", "1", *tiny(tiny_model_dir)])
    assert not Path("outputs").exists()  # nothing ran


def test_the_command_line_error_is_one_line_and_exit_code_2(capsys):
    from finetune_lab.errors import run_cli

    space = space_file("learning_rate: {low: 1.0e-3, high: 1.0e-5}\n")
    with pytest.raises(SystemExit) as caught:
        run_cli(lambda: search.main(["--task", "sentiment", "--space", space]), "search.py")
    assert caught.value.code == 2
    assert (
        capsys.readouterr().err == "search.py: error: space.yaml: learning_rate: low 0.001 must be below high 1e-05 "
        "(for one value, write it without a range)\n"
    )


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_the_shipped_search_spaces_are_valid(task):
    from finetune_lab.arguments import build_parser
    from finetune_lab.search_space import parse_space
    from tasks import get_task_class

    space = parse_space(str(ROOT / f"experiments/search/{task}.yaml"), task, build_parser(get_task_class(task)))
    assert {"learning_rate", "num_train_epochs", "per_device_train_batch_size", "warmup_steps"} <= set(space.params)
    assert space.params["learning_rate"].log


# --- the W&B sweep -----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_the_sweep_mirrors_the_search_space(task):
    from finetune_lab.wandb_logging import MAIN_EVAL

    sweep = yaml.safe_load((ROOT / f"experiments/sweeps/{task}.yaml").read_text())
    space = yaml.safe_load((ROOT / f"experiments/search/{task}.yaml").read_text())
    assert sweep["program"] == "run.py" and sweep["method"] == "bayes"
    assert sweep["metric"] == {"name": f"{MAIN_EVAL}_best", "goal": "maximize"}  # the best dev main metric
    assert sweep["command"] == ["${env}", "${interpreter}", "${program}", "--task", task, "${args}"]
    assert set(sweep["parameters"]) == set(space)
    for key, spec in space.items():
        mirrored = sweep["parameters"][key]
        if "choices" in spec:
            assert mirrored == {"values": spec["choices"]}, key
        else:
            kind = "log_uniform_values" if spec.get("log") else "uniform"
            assert mirrored == {"distribution": kind, "min": spec["low"], "max": spec["high"]}, key


def test_run_py_accepts_the_command_line_a_wandb_agent_builds(tiny_model_dir):
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    from run import main as run_main

    sweep = yaml.safe_load((ROOT / "experiments/sweeps/sentiment.yaml").read_text())
    # one point of the space, as the sweep controller would send it
    values = {}
    for key, spec in sweep["parameters"].items():
        values[key] = spec["values"][-1] if "values" in spec else spec["max"]
    # what wandb_agent.Agent._command_run does with the sweep's command (wandb's own helpers)
    command = sweep_utils.create_sweep_command(list(sweep["command"]))
    sweep_vars = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    sweep_vars |= {"env": ["/usr/bin/env"], "interpreter": ["python"], "program": [sweep["program"]]}
    words = []
    for chunk in command:
        words += sweep_vars.get(chunk[2:-1]) or [] if chunk.startswith("${") else [chunk]
    assert words[:3] == ["/usr/bin/env", "python", "run.py"]
    assert f"--learning_rate={values['learning_rate']}" in words  # the agent's --key=value form

    # tiny model and slice on top (later options win), fewer epochs: the agent's command line runs
    overrides = tiny(tiny_model_dir, epochs=1)
    results = run_main(words[3:] + overrides)
    options = {**results["options"]["training"], **results["options"]["data"]}
    for key, value in values.items():
        if key not in ("num_train_epochs", "per_device_train_batch_size"):  # overridden for speed
            assert options[key] == value, key


def test_make_search_passes_its_variables():
    make = ["make", "--no-print-directory", "-s", "-n", "-o", ".venv/.installed", "search"]
    lines = subprocess.run(
        [*make, "TASK=ner", "SPACE=s.yaml", "TRIALS=5", "WORKERS=2", "ARGS=--report_to none"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert lines == [".venv/bin/python", "search.py", "--task", "ner", "--space", "s.yaml", "--n_trials", "5"] + [
        "--workers",
        "2",
        "--report_to",
        "none",
    ]
    default = subprocess.run([*make, "TASK=sentiment"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert default.split() == [
        ".venv/bin/python",
        "search.py",
        "--task",
        "sentiment",
        "--n_trials",
        "20",
        "--workers",
        "1",
    ]
