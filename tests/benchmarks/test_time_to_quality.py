"""Time-to-quality benchmark: the summary's medians and ratios, and a smoke run end to end on the tiny model."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import time_to_quality  # noqa: E402
from time_to_quality import combine, main, run_argv, summarize, summarize_equal_epochs, table  # noqa: E402


def record(variant: str, seed: int, seconds: float | None, test: float, step: int = 100) -> dict:
    reached = {"seconds": seconds, "step": step, "epoch": 1.0, "dev": 0.9} if seconds is not None else None
    return {"variant": variant, "seed": seed, "stop_at_dev_score": {"target": 0.9, "reached": reached},
            "test": {"f1": test}, "main_metric": "f1"}  # fmt: skip


def test_summary_takes_ratios_within_a_seed_and_counts_runs_that_never_reached_the_target():
    runs = [
        record("baseline", 1, 100.0, 0.80), record("default", 1, 20.0, 0.82, step=300),
        record("baseline", 2, 120.0, 0.81), record("default", 2, 60.0, 0.84, step=500),
        record("baseline", 3, 90.0, 0.79), record("default", 3, None, 0.70),
    ]  # fmt: skip
    rows = summarize(runs, ["baseline", "default"])
    default = rows["default"]
    assert (default["runs"], default["reached"]) == (3, 2)
    assert default["seconds"] == {"median": 40.0, "min": 20.0, "max": 60.0}
    assert default["x_baseline"] == 3.5  # median of 100/20 and 120/60; seed 3 has no ratio (not reached)
    assert default["steps"] == 400
    assert abs(default["test"]["mean"] - (0.82 + 0.84 + 0.70) / 3) < 1e-12  # test at the stop, reached or not
    assert rows["baseline"]["x_baseline"] == 1.0


def one_seed_report(seed: int, runs: list[dict], target: float = 0.9, machine: str = "m", run_args: str = "") -> dict:
    setting = {"target": target, "eval_steps": 10}
    block = {"setting": setting, "main_metric": "f1", "summary": summarize(runs, ["baseline", "default"]), "runs": runs}
    return {"mode": "full", "equal_epochs": False, "machine": machine, "run_args": run_args, "seeds": [seed],
            "tasks": {"ner": block}, "total_seconds": 60.0}  # fmt: skip


def test_reports_of_one_seed_each_combine_into_the_summary_of_all_seeds(tmp_path, capsys):
    seed1 = [record("baseline", 1, 100.0, 0.80), record("default", 1, 20.0, 0.82)]
    seed2 = [record("baseline", 2, 120.0, 0.81), record("default", 2, 60.0, 0.84)]
    combined = combine([one_seed_report(1, seed1), one_seed_report(2, seed2)])
    assert combined["seeds"] == [1, 2] and combined["total_seconds"] == 120.0
    tagged = [{**run, "report": 0} for run in seed1] + [{**run, "report": 1} for run in seed2]
    assert combined["tasks"]["ner"]["summary"] == summarize(tagged, ["baseline", "default"])
    assert combined["tasks"]["ner"]["summary"]["default"]["x_baseline"] == 3.5  # ratios still within a seed
    paths = []
    for seed, runs in ((1, seed1), (2, seed2)):
        paths.append(tmp_path / f"seed{seed}.json")
        paths[-1].write_text(json.dumps(one_seed_report(seed, runs)))
    assert main(["--markdown", *map(str, paths)]) == 0
    assert "| ner | default | f1 0.9 | 2/2 | 40 [20-60] | 3.50x |" in capsys.readouterr().out


def test_reports_that_do_not_belong_together_are_not_combined(tmp_path, capsys):
    seed1 = [record("baseline", 1, 100.0, 0.80)]
    with pytest.raises(ValueError, match=r"the same variant and seed in two reports: \[\('baseline', 1\)\]"):
        combine([one_seed_report(1, seed1), one_seed_report(1, seed1)])
    with pytest.raises(ValueError, match="differ in ner's setting"):
        combine([one_seed_report(1, seed1), one_seed_report(2, [record("baseline", 2, 1.0, 0.8)], target=0.8)])
    with pytest.raises(ValueError, match="differ in run_args: '' and '--bf16 false'"):
        combine(
            [one_seed_report(1, seed1), one_seed_report(2, [record("baseline", 2, 1.0, 0.8)], run_args="--bf16 false")]
        )
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        path.write_text(json.dumps(one_seed_report(1, seed1)))
    with pytest.raises(SystemExit) as stop:
        main(["--markdown", *map(str, paths)])
    assert stop.value.code == 2
    assert "--markdown: ner: the same variant and seed in two reports" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"ner": 0.9}')
    for path, reason in (("missing.json", "No such file"), ("other.json", "not a time_to_quality.py report")):
        with pytest.raises(SystemExit) as stop:
            main(["--markdown", str(tmp_path / path)])
        assert stop.value.code == 2 and reason in capsys.readouterr().err


def test_a_failed_run_gives_way_to_a_later_run_of_the_same_variant_and_seed_and_is_listed(tmp_path, capsys):
    killed = {"variant": "baseline", "seed": 1, "error": "exit -15", "wall_seconds": 1200.0}
    seed1 = [record("default", 1, 20.0, 0.82), killed]
    rerun = [record("baseline", 1, 100.0, 0.80)]
    combined = combine([one_seed_report(1, seed1), one_seed_report(1, rerun)])
    runs = combined["tasks"]["ner"]["runs"]
    assert sorted((r["variant"], "error" in r) for r in runs) == [("baseline", False), ("default", False)]
    summary = combined["tasks"]["ner"]["summary"]
    assert summary["baseline"]["errors"] == [] and summary["baseline"]["seconds"]["median"] == 100.0
    # the rerun ran in another session: its time counts, but no ratio pairs it with the first report's runs
    assert summary["default"]["x_baseline"] is None
    assert combined["replaced"] == ["ner/baseline seed 1: a failed run (exit -15) replaced by another"]
    assert "- ner/baseline seed 1: a failed run (exit -15) replaced by another" in table(combined)
    # in either order: the finished run is kept
    assert combine([one_seed_report(1, rerun), one_seed_report(1, seed1)])["tasks"]["ner"]["summary"] == summary


def test_reports_from_two_machines_name_each_machine_and_take_ratios_only_within_a_report():
    seed1 = [record("baseline", 1, 100.0, 0.80), record("default", 1, 20.0, 0.82)]
    seed2 = [record("baseline", 2, 120.0, 0.81), record("default", 2, 60.0, 0.84)]
    seed3 = [record("baseline", 3, 100.0, 0.82), record("default", 3, 25.0, 0.83, step=101)]
    combined = combine([one_seed_report(1, seed1, machine="AMD"), one_seed_report(2, seed2, machine="AMD"),
                        one_seed_report(3, seed3, machine="Intel")])  # fmt: skip
    assert combined["machine"] == "seeds 1, 2: AMD; seeds 3: Intel"
    default = combined["tasks"]["ner"]["summary"]["default"]
    assert default["x_baseline"] == 4.0  # median of 5, 2 and 4
    assert default["steps"] == 100
    text = table(combined)
    assert text.startswith("Machine: seeds 1, 2: AMD; seeds 3: Intel. Mode: full; seeds [1, 2, 3]")
    assert "| ner | default | f1 0.9 | 3/3 | 25 [20-60] | 4.00x | - | 100 |" in text  # steps as 100, not 100.0


def test_a_benchmark_killed_midway_keeps_its_finished_runs_in_a_partial_report(tmp_path, monkeypatch, capsys):
    def run_project(argv: list[str], log) -> dict:
        if argv[argv.index("--task") + 1] == "sentiment":
            raise KeyboardInterrupt  # killed during the second task's first run
        seed = int(argv[argv.index("--seed") + 1])
        return {**record("default", seed, 20.0 * seed, 0.8), "main_metric": "f1", "wall_seconds": 30.0}

    monkeypatch.setattr(time_to_quality, "run_project", run_project)
    with pytest.raises(KeyboardInterrupt):
        main(["--quick", "--tasks", "ner,sentiment", "--variants", "default", "--seeds", "1", "--out", str(tmp_path)])
    (partial,) = tmp_path.glob("ttq-*-quick.partial.json")
    assert not list(tmp_path.glob("ttq-latest*"))  # the report proper is written only at the end
    report = json.loads(partial.read_text())
    assert report["seeds"] == [1] and list(report["tasks"]) == ["ner"]
    assert [(r["variant"], r["seed"]) for r in report["tasks"]["ner"]["runs"]] == [("default", 1)]
    assert main(["--markdown", str(partial)]) == 0
    assert "| ner | default | f1 0.0 | 1/1 | 20 [20-20] |" in capsys.readouterr().out


def equal_epochs_record(variant: str, seed: int, devs: list[float], test: float, rate: float) -> dict:
    history = [{"step": 10 * (i + 1), "dev": d} for i, d in enumerate(devs)]
    return {"variant": variant, "seed": seed, "dev_history": history, "test": {"f1": test}, "samples_per_second": rate}


def test_equal_epochs_summary_averages_each_epoch_and_takes_speed_ratios_within_a_seed():
    runs = [
        equal_epochs_record("random_order", 1, [0.70, 0.80], 0.75, 40.0),
        equal_epochs_record("hf_grouping", 1, [0.66, 0.78], 0.74, 100.0),
        equal_epochs_record("random_order", 2, [0.72, 0.82], 0.77, 50.0),
        equal_epochs_record("hf_grouping", 2, [0.70, 0.80], 0.78, 75.0),
        {"variant": "hf_grouping", "seed": 3, "error": "run.py exit code 1"},
    ]  # fmt: skip
    rows = summarize_equal_epochs(runs, ["random_order", "hf_grouping"])
    pool = rows["hf_grouping"]
    assert pool["runs"] == 3 and pool["errors"] == ["run.py exit code 1"]
    assert [round(d["mean"], 6) for d in pool["dev_by_epoch"]] == [0.68, 0.79]
    assert abs(pool["dev_by_epoch"][0]["std"] - 0.0282843) < 1e-6
    assert abs(pool["test"]["mean"] - 0.76) < 1e-12
    assert pool["samples_per_second"] == 87.5
    assert pool["x_random_order"] == 2.0  # median of 100/40 and 75/50, each within its seed
    assert rows["random_order"]["x_random_order"] == 1.0
    text = table({"equal_epochs": True, "mode": "subset", "machine": "m", "seeds": [1, 2, 3],
                  "tasks": {"ner": {"summary": rows}}})  # fmt: skip
    assert "| ner | hf_grouping | 3 | 0.6800 ± 0.0283 / 0.7900 ± 0.0141 | 0.7600 ± 0.0283 | 87.5 | 2.00x |" in text
    assert "- ner/hf_grouping: run.py exit code 1" in text


def test_equal_epochs_runs_every_epoch_with_dev_per_epoch_and_no_target():
    setting = {"target": 0.8, "eval_steps": 25, "epochs": 3, "train": 4000, "eval": None, "test": None}
    argv = run_argv("ner", "hf_grouping", 1, setting, "out", [], equal_epochs=True)
    assert "--stop_at_dev_score" not in argv and "--eval_steps" not in argv
    assert argv[argv.index("--eval_strategy") + 1] == "epoch"
    assert argv[argv.index("--num_train_epochs") + 1] == "3"
    assert argv[-4:] == ["--group_by_length_pool", "0", "--loss_denominator", "update"]
    stopping = run_argv("ner", "hf_grouping", 1, setting, "out", [])
    assert stopping[stopping.index("--stop_at_dev_score") + 1] == "0.8"


def test_smoke_run_launches_each_variant_to_its_target_and_writes_the_table(tiny_model_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "time_to_quality.py"), "--quick", "--out", str(tmp_path),
         "--run_args", f"--model_name_or_path {tiny_model_dir}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "ttq-latest-quick.json").read_text())
    assert not list(tmp_path.glob("*.partial.json"))  # replaced by the report proper
    runs = report["tasks"]["ner"]["runs"]
    assert [r["variant"] for r in runs] == ["default", "baseline"]
    for run in runs:  # target 0.0: reached at the first dev evaluation, 2 optimizer steps in
        assert run["stop_at_dev_score"]["reached"]["step"] == 2 and run["steps"] == 2
        assert 0 < run["stop_at_dev_score"]["reached"]["seconds"] < run["wall_seconds"]
        assert run.get("samples_per_second") is None  # stopped inside its only epoch: no whole epoch to rate
    assert "| ner | default | f1 0.0 | 1/1 |" in table(report)


def test_equal_epochs_smoke_run_trains_every_epoch_and_rates_it(tiny_model_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "time_to_quality.py"), "--quick", "--equal_epochs",
         "--variants", "default", "--out", str(tmp_path), "--run_args", f"--model_name_or_path {tiny_model_dir}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "ttq-latest-quick-equal-epochs.json").read_text())
    (run,) = report["tasks"]["ner"]["runs"]
    assert run["steps"] == 4 and len(run["dev_history"]) == 1  # 32 examples / batch 8: the whole epoch, dev once
    assert run["samples_per_second"] == 32 / run["epoch_seconds"][0]
    assert report["tasks"]["ner"]["summary"]["default"]["samples_per_second"] == run["samples_per_second"]
