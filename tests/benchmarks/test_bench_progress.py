"""The benchmark's orchestration without training: what --quick runs (one process, what it skips, said
up front) and the full bench's progress lines with the time left. Workers are replaced by fakes."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

CPU_FACTS = {"gpu": False, "cpu": True, "bf16_default": True, "fp32_default": False, "slow_bf16": False}


def fake_result(spec: dict, wall: float = 10.0) -> dict:
    """What a worker returns, with round numbers."""
    if spec["kind"] == "prep":
        return {"load_seconds": 1.0, "tokenize_seconds": 2.0, "wall_seconds": wall}
    if spec.get("fractions"):
        epochs = [{"seconds": 1.0, "rss_mib": 500.0, "peak_rss": {"self": 500.0}}]
        return {"scaling": [{"fraction": f, "set_size": 10, "epochs": epochs} for f in spec["fractions"]]}
    return {
        "train_seconds": 8.0, "samples": 400, "tokens": 4000, "padded": 5000, "squares": 1e5,
        "flops_per_token_weights": 6e7, "flops_attention_coefficient": 3e4, "precision": "bf16",
        "peak_rss_mib": {"self": 900.0}, "eval_seconds": 1.0, "eval_samples": 100, "dev": {"f1": 0.5},
        "full_train_size": 14041, "wall_seconds": wall,
    }  # fmt: skip


@pytest.fixture
def fake_machine(monkeypatch):
    """No torch, no timing: a fixed 2-core CPU machine with fast bf16."""
    info = {"cpu": "EPYC", "cores": 2, "gpu": None, "default_precision": {"bf16": True}, "packages": {}, "git": {}}
    monkeypatch.setattr(bench, "machine", lambda: dict(info))
    monkeypatch.setattr(bench, "matmul_peak", lambda name, budget: {"dtype": name, "flops": 2e11, "sizes": []})
    calls: list[list[dict]] = []

    def run_workers(specs, log):
        calls.append(specs)
        return [fake_result(spec) for spec in specs]

    monkeypatch.setattr(bench, "run_workers", run_workers)
    return calls


def test_quick_runs_every_check_in_one_process_and_says_what_it_skips(fake_machine, tmp_path, capsys):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (specs,) = fake_machine  # one worker process for everything
    kinds = [(s["kind"], s["task"], s.get("variant"), bool(s.get("fractions"))) for s in specs]
    assert kinds == [
        ("prep", "ner", None, False), ("prep", "ner", None, False),  # first, then cached
        ("prep", "sentiment", None, False), ("prep", "sentiment", None, False),
        ("train", "ner", "baseline", False), ("train", "ner", "default", False),
        ("train", "ner", "eval_batch_256", False),
        ("train", "sentiment", "baseline", False), ("train", "sentiment", "default", False),
        ("train", "ner", "default", True),  # scaling
    ]  # fmt: skip
    for spec in specs:  # every check on a small slice with short training
        argv = " ".join(bench.project_argv({**spec, "cache_dir": "c"}, "out"))
        assert "--max_test_samples 8" in argv and "--max_eval_samples " in argv, argv
        if spec["kind"] == "train":
            assert "--max_steps 2" in argv and "--per_device_train_batch_size 8" in argv, argv
    notes = [line for line in out.splitlines() if line.startswith("quick:")]
    assert notes[0].startswith("quick: 10 checks in one process") and "not a measurement" in notes[0]
    assert notes[1].startswith("quick: 1 repetition (full: 3); 2 training steps of batch 8 after 1 warm-up step(s)")
    not_run = notes[2].removeprefix("quick: not run (full bench only): ").split(", ")
    # every switch the full bench would run on this machine, and nothing it skips here anyway
    assert not_run == [
        "ner/random_order",
        "ner/hf_grouping",
        "ner/rebalance",
        "ner/attn_dropout0",
        "ner/fp32",
        "ner/compile",
        "ner/adamw_torch",
        "ner/workers2",
        "ner/eval_batch_64",
        "sentiment/random_order",
        "sentiment/hf_grouping",
        "sentiment/rebalance",
    ]
    assert "starting;" not in out  # no per-process progress lines: there is one process
    summary = out[out.index("\nMachine: ") :]  # the closing summary never claims what quick did not do
    assert "one shared process (quick smoke run: these numbers are not a measurement)" in summary
    assert "(128 training examples, shared process)" in summary and "whole data set" not in summary
    report = json.loads((tmp_path / "latest-quick.json").read_text())
    assert set(report["variants"]) == {
        "ner/baseline",
        "ner/default",
        "ner/eval_batch_256",
        "sentiment/baseline",
        "sentiment/default",
    }


def test_full_bench_announces_each_run_with_the_time_left(fake_machine, tmp_path, capsys):
    argv = ["--tasks", "ner", "--variants", "baseline,default", "--reps", "2", "--no-prep", "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert [len(specs) for specs in fake_machine] == [1] * 5  # a fresh process per run: 2 variants x 2 reps + scaling
    starts = [line for line in out.splitlines() if "starting;" in line]
    assert [line.split(":")[0] for line in starts] == [
        "[1/5] rep 1 ner baseline", "[2/5] rep 1 ner default", "[3/5] rep 2 ner default", "[4/5] rep 2 ner baseline",
        "[5/5] scaling ner default (25/50/100%)",
    ]  # fmt: skip
    assert "time left: estimated once a run of its kind has finished" in starts[0]
    # rep 2's two runs at 10 s each + scaling: 1 s outside training + 8 s / 400 examples x 14041 x 2.0 = 583 s
    assert starts[2].endswith("about 9m43s left")
    assert starts[4].endswith("left") and "not yet estimated" not in starts[4]


def units(*keys: tuple) -> list[dict]:
    return [{"key": key, "label": "/".join(map(str, key)), "role": "variant", "spec": {}} for key in keys]


def test_progress_estimates_from_what_was_measured():
    now = [0.0]
    plan = units(
        ("train", "ner", "a"),
        ("train", "ner", "b"),
        ("train", "ner", "a"),
        ("train", "ner", "b"),
        ("prep", "ner", "first"),
    )
    progress = bench.Progress(plan, {"scaling": None}, clock=lambda: now[0])
    assert progress.starting(plan[0]) == (
        "[1/5] train/ner/a: starting; 0s elapsed, time left: estimated once a run of its kind has finished"
    )
    now[0] = 30.0
    progress.finished(plan[0], {"wall_seconds": 30.0})
    # b: not measured, so the mean of its kind (train: 30 s); a: 30 s; prep: nothing of its kind yet
    assert progress.starting(plan[1]).endswith("30s elapsed, about 1m30s left (+ 1 run not yet estimated)")
    now[0] = 120.0
    progress.finished(plan[1], {"wall_seconds": 90.0})
    assert progress.starting(plan[2]).endswith("2m00s elapsed, about 2m00s left (+ 1 run not yet estimated)")
    progress.finished(plan[2], {"wall_seconds": 40.0})  # a's median is now 35 s
    assert progress.estimate(plan[2]) == 35.0


def test_scaling_estimate_from_the_default_ner_rate():
    scaling = {"key": ("scaling",), "label": "scaling", "role": "scaling", "spec": {}}
    default = units(("train", "ner", "default"))[0]
    progress = bench.Progress([default, scaling], {"scaling": None})
    assert progress.estimate(scaling) is None
    progress.finished(default, fake_result({"kind": "train"}, wall=12.0))
    # outside training: 12 - 8 - 1 = 3 s; 8 s / 400 examples x 14041 x (0.25 + 0.5 + 1 + 0.25 for the 2nd epoch)
    assert progress.estimate(scaling) == pytest.approx(3 + 8 / 400 * 14041 * 2.0)


def test_quick_bench_fits_in_a_minute_of_work():
    """Budget of the quick plan, counted not timed: one process, few short steps (the timing is in docs)."""
    opts = SimpleNamespace(quick=True, variants=None, no_prep=False, no_scaling=False)
    config = dict(bench.QUICK)
    plan, _ = bench.plan_variants(["ner", "sentiment"], opts, config, CPU_FACTS, Path("/tmp/x"))
    work = bench.plan_units(["ner", "sentiment"], opts, config, plan, Path("/tmp/x"))
    trained = [u for u in work if u["spec"].get("kind") == "train" and not u["spec"].get("eval_only")]
    assert len(work) <= 10 and len(trained) <= 5
    assert config["max_steps"] <= 2 and config["warmup"] <= 1 and config["train"] <= 64 and config["reps"] == 1
