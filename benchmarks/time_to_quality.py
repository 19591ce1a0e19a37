#!/usr/bin/env python
"""Time-to-quality: wall time until the dev main metric first reaches a target, and test at that point.

    python benchmarks/time_to_quality.py            # full data: NER dev F1 0.90, sentiment accuracy 0.86; seeds 1-3
    python benchmarks/time_to_quality.py --subset   # cheap: a slice and a lower target, for quick checks
    python benchmarks/time_to_quality.py --quick    # smoke: a few steps, each code path once (make bench BENCH_QUICK=1)
    python benchmarks/time_to_quality.py --subset --equal_epochs   # no target: dev per epoch, test at the end
    python benchmarks/time_to_quality.py --markdown bench-results/ttq-latest.json
    python benchmarks/time_to_quality.py --markdown seed1.json seed2.json seed3.json   # runs split over sessions

Samples per second alone can hide a slower learner: a batching that trains 2x faster per sample but
needs 2x the steps wins nothing. Here every variant trains until its dev score reaches the target
(`--stop_at_dev_score`, dev scored every `eval_steps` optimizer steps, the same for all), and the clock
counts training plus those dev evaluations. Project variants run as users run them (`accelerate launch
--config_file accelerate_config.yaml run.py ...`, a fresh process each); the tutorial baseline
(benchmarks/baseline.py) is the same hand-written loop as `make bench`'s. Seeds are interleaved (seed 1:
every variant, then seed 2, ...), so drift on a shared machine hits all alike; ratios are taken within a
seed, then the median over seeds (and, for combined reports, within one report: another session or machine runs
at another speed).

`--equal_epochs` asks the other question (is a batching as good as random order at the same number of
epochs, and how much faster per sample?): every variant trains all the epochs with no target, dev scored
after each epoch and test at the end (the last epoch's model), and train samples/s (examples per epoch over
the median epoch's seconds, evaluation excluded) with its ratio to random order within a seed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

# The batchings compared (run.py options on top of the project's defaults); "baseline" is the tutorial loop.
# The default: batches sorted within random pools of 8, every token weighed the same (finetune_lab/batching.py).
VARIANTS: dict[str, list[str]] = {
    "default": [],
    # transformers' plain random order: random batches, each update divided by its own labelled tokens
    "random_order": ["--train_sampling_strategy", "random", "--loss_denominator", "update"],
    # transformers' group_by_length as it comes (the default before issue 12)
    "hf_grouping": ["--group_by_length_pool", "0", "--loss_denominator", "update"],
    # the default's batches with transformers' denominator: what weighing every token the same is worth
    "update": ["--loss_denominator", "update"],
    "rebalance": [
        "--train_sampling_strategy", "batch_rebalance", "--per_device_train_batch_size", "8",
        "--gradient_accumulation_steps", "4",
    ],
    "attn_dropout0": ["--attention_dropout", "0"],
    "baseline": [],
}  # fmt: skip
# Per mode and task: the target on the dev main metric, how often dev is scored (optimizer steps), the most
# epochs before giving up, and the slice (None: the whole split). The subset targets sit below what the
# quick experiment files reach in 2 epochs (NER 3,000 sentences: dev F1 0.824; sentiment 2,400: 0.820).
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "ner": {"target": 0.90, "eval_steps": 110, "epochs": 4, "train": None, "eval": None, "test": None},
        "sentiment": {"target": 0.86, "eval_steps": 66, "epochs": 4, "train": None, "eval": None, "test": None},
    },
    "subset": {
        "ner": {"target": 0.80, "eval_steps": 25, "epochs": 3, "train": 4000, "eval": 1000, "test": None},
        "sentiment": {"target": 0.80, "eval_steps": 19, "epochs": 3, "train": 2400, "eval": None, "test": None},
    },
    "quick": {
        "ner": {"target": 0.0, "eval_steps": 2, "epochs": 1, "train": 32, "eval": 16, "test": 16, "batch": 8},
        "sentiment": {"target": 0.0, "eval_steps": 2, "epochs": 1, "train": 32, "eval": 16, "test": 16, "batch": 8},
    },
}
QUICK_VARIANTS = ["default", "baseline"]
FULL_VARIANTS = ["default", "random_order", "baseline"]  # without --variants: the headline comparison


def run_argv(
    task: str, variant: str, seed: int, setting: dict[str, Any], out: str, extra: list[str], equal_epochs: bool = False
) -> list[str]:
    """run.py's options for one time-to-quality run: no checkpoints (the model at the stop is the one that
    reached the target), no early stopping, dev every eval_steps, stop at the target. With `equal_epochs`:
    dev after each epoch, no target, every epoch trained."""
    argv = [
        "--task", task, "--seed", str(seed), "--report_to", "none", "--output_dir", out,
        "--num_train_epochs", str(setting["epochs"]), "--save_strategy", "no", "--load_best_model_at_end", "false",
        "--early_stopping_patience", "0", "--disable_tqdm", "true",
    ]  # fmt: skip
    if equal_epochs:
        argv += ["--eval_strategy", "epoch"]
    else:
        argv += ["--eval_strategy", "steps", "--eval_steps", str(setting["eval_steps"])]
        argv += ["--stop_at_dev_score", str(setting["target"])]
    for key in ("train", "eval", "test"):
        if setting.get(key) is not None:
            argv += [f"--max_{key}_samples", str(setting[key])]
    if setting.get("batch"):
        argv += ["--per_device_train_batch_size", str(setting["batch"])]
    return argv + VARIANTS[variant] + extra


def launched(argv: list[str]) -> list[str]:
    """The command users run (`make <task>`): accelerate launch with the project's config."""
    accelerate = Path(sys.executable).parent / "accelerate"
    return [str(accelerate), "launch", "--config_file", str(ROOT / "accelerate_config.yaml"), "run.py", *argv]


def run_project(argv: list[str], log: Path) -> dict[str, Any]:
    """One launched run.py; its record from results.json (time to target, steps, test at the stop)."""
    out = Path(argv[argv.index("--output_dir") + 1])
    started = time.perf_counter()
    with log.open("a") as sink:
        sink.write(f"\n===== {' '.join(argv)}\n")
        sink.flush()
        done = subprocess.run(launched(argv), stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": f"run.py exit code {done.returncode}; see {log}", "wall_seconds": wall}
    return {**run_record(out / "results.json"), "wall_seconds": wall}


def run_record(results_json: Path) -> dict[str, Any]:
    """What the summaries need from one run's results.json: the stop, steps, time, dev history, test, speed."""
    results = json.loads(results_json.read_text())
    train, main = results["train"], results["main_metric"]
    history = [
        {"step": h.get("step"), "dev": h.get(f"eval_{main}")} for h in results["dev_history"] if f"eval_{main}" in h
    ]
    epoch_seconds = train.get("epoch_seconds") or []
    examples = (results.get("data") or {}).get("used", {}).get("train")
    # the epoch a run stopped in at its target is partial: no rate from it
    whole_epochs = epoch_seconds[:-1] if (train.get("stop_at_dev_score") or {}).get("reached") else epoch_seconds
    return {
        "stop_at_dev_score": train.get("stop_at_dev_score"),
        "steps": train["steps"],
        "seconds": train["seconds"],
        "epoch_seconds": epoch_seconds,
        # examples per epoch over the median whole epoch (evaluation excluded): the rate as launched
        "samples_per_second": examples / statistics.median(whole_epochs) if examples and whole_epochs else None,
        "dev_history": history,
        "test": {main: results["test"].get(main)},
        "main_metric": main,
    }


def worker_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """The tutorial loop to the target, in this (fresh) process; hyperparameters from the project's options."""
    from baseline import train_to_target
    from bench import load_inputs

    args, task, splits, built, _ = load_inputs({}, spec["argv"])
    main = args.training.metric_for_best_model
    result = train_to_target(
        task, splits, built.tokenizer, built.model, args.data, args.training,
        spec["eval_steps"], spec["target"], main,
    )  # fmt: skip
    return {**result, "test": {main: result["test"].get(main)}, "main_metric": main}


def run_baseline(argv: list[str], setting: dict[str, Any], log: Path) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    spec = {"argv": argv, "eval_steps": setting["eval_steps"], "target": setting["target"]}
    started = time.perf_counter()
    with log.open("a") as sink:
        sink.write(f"\n===== baseline {' '.join(argv)}\n")
        sink.flush()
        command = [sys.executable, __file__, "--worker", json.dumps(spec), "--result", str(result_path)]
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.perf_counter() - started
    try:
        if done.returncode != 0:
            return {"error": f"baseline exit code {done.returncode}; see {log}", "wall_seconds": wall}
        return {**json.loads(result_path.read_text()), "wall_seconds": wall}
    finally:
        result_path.unlink(missing_ok=True)


def time_to_target(record: dict[str, Any]) -> float | None:
    """Seconds to the target; None where it failed or never reached it."""
    reached = (record.get("stop_at_dev_score") or {}).get("reached")
    return reached["seconds"] if reached else None


def _mean_std(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _same_report(reference: dict[str, Any] | None, run: dict[str, Any]) -> dict[str, Any] | None:
    """The reference run, where it ran in the same report as `run` (combine tags each run with its report)."""
    return reference if reference is not None and reference.get("report") == run.get("report") else None


def summarize(
    runs: list[dict[str, Any]], variants: list[str], references: Sequence[str] = ("baseline", "random_order")
) -> dict[str, dict[str, Any]]:
    """Per variant: runs that reached the target, median time [min, max], median steps, the test metric at the
    stop, and for each reference `x_<reference>`: the median over seeds of (reference's time / this variant's
    time) where both reached it in one report (None where the reference did not run there)."""
    by_seed = {(r["variant"], r["seed"]): r for r in runs}
    rows: dict[str, dict[str, Any]] = {}
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        times = [t for r in mine if (t := time_to_target(r)) is not None]
        steps = [r["stop_at_dev_score"]["reached"]["step"] for r in mine if time_to_target(r) is not None]
        tests = [v for r in mine if (v := next(iter((r.get("test") or {}).values()), None)) is not None]
        ratios: dict[str, list[float]] = {reference: [] for reference in references}
        for r in mine:
            for reference in references:
                ref = _same_report(by_seed.get((reference, r["seed"])), r)
                if ref is not None and time_to_target(r) and time_to_target(ref):
                    ratios[reference].append(time_to_target(ref) / time_to_target(r))
        rows[variant] = {
            "runs": len(mine),
            "reached": len(times),
            "errors": [r["error"] for r in mine if "error" in r],
            "seconds": {"median": statistics.median(times), "min": min(times), "max": max(times)} if times else None,
            "steps": statistics.median(steps) if steps else None,
            "test": {"median": statistics.median(tests), **_mean_std(tests)} if tests else None,
            **{f"x_{ref}": statistics.median(values) if values else None for ref, values in ratios.items()},
        }
    return rows


def summarize_equal_epochs(runs: list[dict[str, Any]], variants: list[str]) -> dict[str, dict[str, Any]]:
    """Per variant, at equal epochs: dev after each epoch and test at the end (mean ± std over seeds), median
    train samples/s, and `x_random_order`: the median over seeds of (this variant's samples/s / random order's)."""
    by_seed = {(r["variant"], r["seed"]): r for r in runs}
    rows: dict[str, dict[str, Any]] = {}
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant and "error" not in r]
        epochs = max((len(r["dev_history"]) for r in mine), default=0)
        by_epoch = [[r["dev_history"][e]["dev"] for r in mine if len(r["dev_history"]) > e] for e in range(epochs)]
        dev = [_mean_std(values) for values in by_epoch]
        rates = [r["samples_per_second"] for r in mine if r.get("samples_per_second")]
        ratios = []
        for r in mine:
            ref = _same_report(by_seed.get(("random_order", r["seed"])), r)
            if ref is not None and ref.get("samples_per_second") and r.get("samples_per_second"):
                ratios.append(r["samples_per_second"] / ref["samples_per_second"])
        rows[variant] = {
            "runs": len([r for r in runs if r["variant"] == variant]),
            "errors": [r["error"] for r in runs if r["variant"] == variant and "error" in r],
            "dev_by_epoch": dev,
            "test": _mean_std([v for r in mine if (v := next(iter(r["test"].values()), None)) is not None]),
            "samples_per_second": statistics.median(rates) if rates else None,
            "x_random_order": statistics.median(ratios) if ratios else None,
        }
    return rows


def _header(report: dict[str, Any], mode: str) -> str:
    options = f" run.py options added to every run: {report['run_args']}." if report.get("run_args") else ""
    return (f"Machine: {report['machine']}. Mode: {mode}; seeds {report['seeds']}, interleaved; ratios within a seed "
            f"and one report.{options}")  # fmt: skip


def table_equal_epochs(report: dict[str, Any]) -> str:
    lines = [
        _header(report, f"{report['mode']}, equal epochs"),
        "",
        "| task | variant | runs | dev by epoch: mean ± std | test at the end: mean ± std | train samples/s | "
        "x random order |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, block in report["tasks"].items():
        for variant, row in block["summary"].items():
            dev = " / ".join(f"{d['mean']:.4f} ± {d['std']:.4f}" for d in row["dev_by_epoch"] if d) or "-"
            test, rate, ratio = row["test"], row["samples_per_second"], row["x_random_order"]
            lines.append(
                f"| {task} | {variant} | {row['runs']} | {dev} | "
                + (f"{test['mean']:.4f} ± {test['std']:.4f}" if test else "-")
                + f" | {f'{rate:.1f}' if rate else '-'} | {f'{ratio:.2f}x' if ratio else '-'} |"
            )
    return "\n".join(lines + _errors(report))


def _errors(report: dict[str, Any]) -> list[str]:
    errors = [
        f"- {task}/{variant}: {error}"
        for task, block in report["tasks"].items()
        for variant, row in block["summary"].items()
        for error in row["errors"]
    ]
    errors += [f"- {line}" for line in report.get("replaced", [])]
    return [""] + errors if errors else []


def table(report: dict[str, Any]) -> str:
    if report.get("equal_epochs"):
        return table_equal_epochs(report)
    lines = [
        _header(report, report["mode"]),
        "",
        "| task | variant | target (dev) | reached | time to target, s: median [min-max] | x baseline | "
        "x random order | steps | test at the stop: mean ± std |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, block in report["tasks"].items():
        setting, rows = block["setting"], block["summary"]
        for variant, row in rows.items():
            secs = row["seconds"]
            when = f"{secs['median']:.0f} [{secs['min']:.0f}-{secs['max']:.0f}]" if secs else "-"
            ratio = row.get("x_baseline")
            random_ratio = row.get("x_random_order")
            test = row["test"]
            lines.append(
                f"| {task} | {variant} | {block['main_metric']} {setting['target']} | {row['reached']}/{row['runs']} | "
                f"{when} | {f'{ratio:.2f}x' if ratio else '-'} | {f'{random_ratio:.2f}x' if random_ratio else '-'} | "
                f"{format(row['steps'], 'g') if row['steps'] is not None else '-'} | "
                + (f"{test['mean']:.4f} ± {test['std']:.4f}" if test else "-")
                + " |"
            )
    return "\n".join(lines + _errors(report))


def read_report(path: str) -> dict[str, Any]:
    """A finished run's JSON; a missing or malformed file is a ValueError naming it."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(report, dict) or not {"mode", "equal_epochs", "machine", "tasks"} <= report.keys():
        raise ValueError(f"{path}: not a time_to_quality.py report (no mode, equal_epochs, machine, tasks)")
    return report


def _one_run_each(task: str, runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One run per (variant, seed): a run that failed (e.g. killed) gives way to another report's run of the same
    variant and seed, and is listed; two runs that both finished are a ValueError."""
    kept: dict[tuple[str, int], dict[str, Any]] = {}
    replaced = []
    for run in runs:
        key = (run["variant"], run["seed"])
        earlier = kept.get(key)
        if earlier is not None and "error" not in earlier and "error" not in run:
            raise ValueError(f"{task}: the same variant and seed in two reports: [{key}]")
        if earlier is not None:
            failed, kept[key] = (earlier, run) if "error" in earlier else (run, earlier)
            replaced.append(f"{task}/{key[0]} seed {key[1]}: a failed run ({failed['error']}) replaced by another")
        else:
            kept[key] = run
    return list(kept.values()), replaced


def combine(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' reports as one (e.g. one seed per session): the same mode and settings, each (task, variant,
    seed) finished once (a failed run gives way to another report's run of it); the summaries are taken again over
    all the runs. Ratios pair only runs of one report: another session (or machine) runs at another speed."""
    first = reports[0]
    for report in reports[1:]:
        for key in ("mode", "equal_epochs", "run_args"):
            if report.get(key, "") != first.get(key, ""):
                raise ValueError(f"the reports differ in {key}: {first.get(key, '')!r} and {report.get(key, '')!r}")
        for task, block in report["tasks"].items():
            if task in first["tasks"] and block["setting"] != first["tasks"][task]["setting"]:
                raise ValueError(f"the reports differ in {task}'s setting: {first['tasks'][task]['setting']} "
                                 f"and {block['setting']}")  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {}
    settings, replaced = {}, []
    for task in dict.fromkeys(task for report in reports for task in report["tasks"]):
        in_task = [(i, report["tasks"][task]) for i, report in enumerate(reports) if task in report["tasks"]]
        tagged = [{**run, "report": i} for i, block in in_task for run in block["runs"]]
        runs[task], task_replaced = _one_run_each(task, tagged)
        settings[task] = in_task[0][1]["setting"]
        replaced += task_replaced
    seeds_on: dict[str, set[int]] = {}
    for report in reports:
        seeds_on.setdefault(report["machine"], set()).update(report["seeds"])
    machine = first["machine"] if len(seeds_on) == 1 else "; ".join(
        f"seeds {', '.join(map(str, sorted(seeds)))}: {name}" for name, seeds in seeds_on.items()
    )  # fmt: skip
    head = {"mode": first["mode"], "equal_epochs": first["equal_epochs"], "machine": machine,
            "run_args": first.get("run_args", "")}  # fmt: skip
    seconds = sum(report.get("total_seconds", 0) for report in reports)
    return {**make_report(head, settings, runs, seconds), "replaced": replaced}


def make_report(
    head: dict[str, Any], settings: dict[str, dict[str, Any]], runs: dict[str, list[dict[str, Any]]], seconds: float
) -> dict[str, Any]:
    """The report of the runs so far: per task its setting, main metric, summary and runs."""
    tasks = {}
    for task, task_runs in runs.items():
        if not task_runs:
            continue
        variants = list(dict.fromkeys(run["variant"] for run in task_runs))
        main_metric = next((r["main_metric"] for r in task_runs if "main_metric" in r), "main metric")
        tasks[task] = {
            "setting": settings[task], "main_metric": main_metric, "runs": task_runs,
            "summary": (summarize_equal_epochs if head["equal_epochs"] else summarize)(task_runs, variants),
        }  # fmt: skip
    seeds = sorted({run["seed"] for task_runs in runs.values() for run in task_runs})
    return {**head, "seeds": seeds, "tasks": tasks, "total_seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smoke run: NER, a few steps, default + baseline")
    mode.add_argument("--subset", action="store_true", help="cheap: a slice of the data and a lower target")
    parser.add_argument("--tasks", help="comma-separated (default ner,sentiment; --quick: ner)")
    parser.add_argument(
        "--variants", help=f"comma-separated, of {','.join(VARIANTS)} (default {','.join(FULL_VARIANTS)})"
    )
    parser.add_argument("--seeds", default=None, help="comma-separated (default 1,2,3; --quick: 1)")
    parser.add_argument("--target", type=float, help="override every task's dev target")
    parser.add_argument(
        "--equal_epochs", action="store_true", help="no target: quality after every epoch and samples/s per variant"
    )
    parser.add_argument("--run_args", default="", help="more run.py options for every run (e.g. a model)")
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument(
        "--markdown", metavar="JSON", nargs="+",
        help="print a finished run's JSON as Markdown, then exit; several (e.g. one seed each): combined",
    )  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.worker:
        Path(opts.result).write_text(json.dumps(worker_baseline(json.loads(opts.worker)), default=str))
        return 0
    if opts.markdown:
        try:
            report = combine([read_report(path) for path in opts.markdown])
        except ValueError as error:
            parser.error(f"--markdown: {error}")
        print(table(report))
        return 0

    mode_name = "quick" if opts.quick else "subset" if opts.subset else "full"
    variants = opts.variants.split(",") if opts.variants else (QUICK_VARIANTS if opts.quick else FULL_VARIANTS)
    if opts.equal_epochs and not opts.variants:
        variants = [v for v in variants if v != "baseline"]  # the tutorial loop runs to a target only
    unknown = [v for v in variants if v not in VARIANTS]
    tasks = [t for t in (opts.tasks or ("ner" if opts.quick else "ner,sentiment")).split(",") if t]
    if unknown or any(t not in SETTINGS[mode_name] for t in tasks):
        parser.error(f"unknown variant or task: {unknown or tasks}; variants: {', '.join(VARIANTS)}")
    if opts.equal_epochs and ("baseline" in variants or opts.target is not None):
        parser.error("--equal_epochs compares project batchings without a target: drop baseline and --target")
    seeds = [int(s) for s in (opts.seeds or ("1" if opts.quick else "1,2,3")).split(",")]
    out_dir = Path(opts.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = out_dir / f"ttq-{stamp}.log"
    from bench import machine

    info = machine()
    machine_line = f"{info['cpu']}, {info['cores']} cores, GPU: {info['gpu'] or 'none'}"
    title = mode_name + (", equal epochs" if opts.equal_epochs else "")
    print(f"time-to-quality ({title}): {machine_line}; variants {', '.join(variants)}; seeds {seeds}; log {log}")
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {task: [] for task in tasks}
    settings = {task: {**SETTINGS[mode_name][task], **({"target": opts.target} if opts.target is not None else {})}
                for task in tasks}  # fmt: skip
    name = mode_name + ("-equal-epochs" if opts.equal_epochs else "")
    path = out_dir / f"ttq-{stamp}-{name}.json"
    # rewritten after every run, so a benchmark killed after hours keeps what it finished (--markdown reads it)
    partial = path.with_suffix(".partial.json")
    head = {"mode": mode_name, "equal_epochs": opts.equal_epochs, "machine": machine_line, "run_args": opts.run_args}
    with tempfile.TemporaryDirectory(prefix="ttq-", dir=out_dir) as scratch:
        for seed in seeds:
            for task in tasks:
                for variant in variants:
                    folder = str(Path(scratch) / f"{task}-{variant}-seed{seed}")
                    extra = opts.run_args.split()
                    argv = run_argv(task, variant, seed, settings[task], folder, extra, opts.equal_epochs)
                    if variant == "baseline":
                        record = run_baseline(argv, settings[task], log)
                    else:
                        record = run_project(argv, log)
                    runs[task].append({"task": task, "variant": variant, "seed": seed, **record})
                    when = time_to_target(record)
                    shown = record.get("error") or (f"target at {when:.1f} s" if when else "target not reached")
                    if opts.equal_epochs and "error" not in record:
                        dev = " / ".join(f"{h['dev']:.4f}" for h in record["dev_history"])
                        shown = f"dev {dev}, test {next(iter(record['test'].values()))}"
                    print(f"  seed {seed} {task:<10} {variant:<13} {shown} (process {record['wall_seconds']:.0f} s)",
                          flush=True)  # fmt: skip
                    report = make_report(head, settings, runs, time.perf_counter() - started)
                    partial.write_text(json.dumps(report, indent=2, default=str) + "\n")
    path.write_text(partial.read_text())
    partial.unlink()
    (out_dir / f"ttq-latest-{name}.json").write_text(path.read_text())
    print("\n" + table(report))
    print(f"\nwrote {path} ({report['total_seconds'] / 60:.1f} min)")
    failed = any(row["errors"] for block in report["tasks"].values() for row in block["summary"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
