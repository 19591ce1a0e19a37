#!/usr/bin/env python
"""Where a training step's time goes: torch.profiler over a few steps of the default path, by kind of work.

    python benchmarks/profile_step.py                         # NER, default path, 5 profiled steps after 3
    python benchmarks/profile_step.py --variants default,hf_grouping --steps 10
    python benchmarks/profile_step.py --quick                 # 1 step on 32 examples: checks that it runs

The same path as `make bench` (the project's Trainer builder and options, `bench.project_argv`), on the
first `--train` training sentences. Each op's *self* time on the main thread is put in one bucket
(matmuls, attention, layer norm, GELU, embeddings, loss, optimizer, data loading and collation, other
tensor ops); what the step's wall time holds beyond all ops is Python and framework overhead. Figures are
milliseconds per step, medians are not taken (one profiled window): compare variants within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# (bucket, substrings of profiler event names); the first bucket whose substring matches wins.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("optimizer", ("adamw", "optimizer.step", "_foreach_", "clip_grad", "zero_grad")),
    ("data loading + collation", ("dataloader", "collat")),
    ("attention", ("scaled_dot_product", "_flash_attention", "_efficient_attention", "softmax")),
    ("matmul", ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::linear", "aten::matmul")),
    ("layer norm", ("layer_norm",)),
    ("gelu", ("gelu",)),
    ("embeddings", ("embedding",)),
    ("loss", ("cross_entropy", "nll_loss", "log_softmax")),
]
OTHER = "other tensor ops (add, dropout, copies, casts, ...)"
OVERHEAD = "Python + framework overhead (step wall time not inside an op)"


def bucket_of(name: str) -> str:
    lowered = name.lower()
    for bucket, keys in BUCKETS:
        if any(key in lowered for key in keys):
            return bucket
    return OTHER


def breakdown(events: list[tuple[str, float]], wall_ms: float, steps: int) -> dict[str, float]:
    """{bucket: ms per step} from (event name, self time in ms) pairs, plus the overhead bucket; sums to wall."""
    totals: dict[str, float] = {}
    for name, self_ms in events:
        totals[bucket_of(name)] = totals.get(bucket_of(name), 0.0) + self_ms
    per_step = {bucket: ms / steps for bucket, ms in totals.items()}
    per_step[OVERHEAD] = max(0.0, wall_ms / steps - sum(per_step.values()))
    return dict(sorted(per_step.items(), key=lambda item: -item[1]))


def profile_variant(variant_args: list[str], opts: Any, out: str) -> dict[str, Any]:
    import torch
    from bench import load_inputs, project_argv
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    from finetune_lab.tokenization import tokenize_splits
    from finetune_lab.trainer import build_trainer

    spec = {
        "task": opts.task, "epochs": 1, "train": opts.train, "eval": 8, "test": 8, "cache_dir": out + "/cache",
        "max_steps": opts.warmup + opts.steps, "batch": 8 if opts.quick else None, "args": variant_args,
    }  # fmt: skip
    args, task, splits, built, _ = load_inputs(spec, project_argv(spec, out))
    tokenized, _ = tokenize_splits(task, splits, built.tokenizer, args.data)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    profiler = profile(activities=activities)
    window: dict[str, float] = {}

    class StepProfiler(TrainerCallback):
        """Profile from the end of the warm-up steps to the end of the profiled ones."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == opts.warmup:
                profiler.start()
                window["start"] = time.perf_counter()
            elif state.global_step == opts.warmup + opts.steps:
                window["end"] = time.perf_counter()
                profiler.stop()

    trainer = build_trainer(
        task, built.model, built.tokenizer, args.training, args.data, tokenized["train"], None,
        callbacks=[StepProfiler()],
    )  # fmt: skip
    trainer.train()
    events = [(e.key, e.self_cpu_time_total / 1000) for e in profiler.key_averages()]
    wall_ms = (window["end"] - window["start"]) * 1000
    return {
        "ms_per_step": wall_ms / opts.steps,
        "buckets": breakdown(events, wall_ms, opts.steps),
        "top_ops": sorted(events, key=lambda e: -e[1])[:12],
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="ner")
    parser.add_argument("--variants", default="default", help="comma-separated, names from bench.py's switches")
    parser.add_argument("--train", type=int, default=2000, help="training sentences the steps are drawn from")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 profiled steps after 1, batch 8 of 32 examples")
    parser.add_argument("--json", help="also write the figures here")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.train, opts.warmup, opts.steps = 32, 1, 2
    from bench import TOGGLES, machine

    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, GPU: {info['gpu'] or 'none'}")
    results = {}
    for variant in opts.variants.split(","):
        if variant != "default" and variant not in TOGGLES:
            parser.error(f"unknown variant {variant}; default or one of {', '.join(TOGGLES)}")
        with tempfile.TemporaryDirectory(prefix="profile-") as out:
            results[variant] = profile_variant([] if variant == "default" else TOGGLES[variant]["args"], opts, out)
        r = results[variant]
        print(
            f"\n{opts.task}/{variant}: {r['ms_per_step']:.0f} ms per step ({opts.steps} steps, {r['threads']} threads)"
        )
        for bucket, ms in r["buckets"].items():
            print(f"  {ms:8.1f} ms  {100 * ms / r['ms_per_step']:5.1f}%  {bucket}")
    if opts.json:
        Path(opts.json).write_text(json.dumps({"machine": info, "options": vars(opts), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
