#!/usr/bin/env python
"""Training-speed benchmark: the default path, each speed switch on/off, against a reference baseline.

    python benchmarks/bench.py              # the full benchmark (`make bench`), ~30 min on 2 quiet cores
    python benchmarks/bench.py --quick      # a few steps per variant, to check it runs (`make bench BENCH_QUICK=1`)

Every variant trains the embedded MiniLM with the same hyperparameters on the same fixed slice,
in its own fresh subprocess (so peak memory is its own), after an untimed warm-up on a copy of
the model. Repetitions are interleaved (A B C A B C ...), so drift on a shared machine hits
every variant alike, and ratios against the baseline are taken within each repetition. The
"default" variant drives the project's own code: task loading, `tokenize_splits` (with its cache),
the task's collator and `transformers.Trainer` with `parse_arguments`' resolved options.
Results: a table on stdout and `bench-results/bench-<time>.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def toggle(args: str, why: str, eval_only: bool = False, **skip_when: str) -> dict[str, Any]:
    """One switch: run.py options, what they flip, and `fact="reason"` for each machine fact (see
    machine_facts) under which it is not run; the first fact that holds gives the reason."""
    return {"args": args.split(), "why": why, "eval_only": eval_only, "skip_when": skip_when}


# Variants: extra run.py options on top of the default path. "default" is the path as shipped;
# each other row flips one switch, so "x baseline" of a row vs the default row is that switch's worth.
# A switch is skipped where its flip is already the default (e.g. bf16 on a GPU) or where it cannot matter.
ON_GPU, ON_CPU = "already the default on a GPU", "already the default on a CPU"
GPU_SWITCH = "a GPU switch (tensor-core shapes, attention kernels); not run on a CPU"
NO_PINNING = "no accelerator: pinned memory does nothing on a CPU-only machine"
SLOW_BF16 = (
    "bf16 matmul runs at {bf16_gflops:.2f} GFLOP/s vs {fp32_gflops:.1f} in fp32 (no native bf16 on this CPU): "
    "one training step would take minutes; --force-slow-bf16 runs it"
)
TOGGLES: dict[str, dict[str, Any]] = {
    "random_order": toggle("--train_sampling_strategy random --loss_denominator update", "length grouping off"),
    "hf_grouping": toggle(
        "--group_by_length_pool 0 --loss_denominator update",
        "transformers' group_by_length: pools of 50 batches, longest first (the default before issue 12)",
    ),
    "rebalance": toggle(
        "--train_sampling_strategy batch_rebalance --per_device_train_batch_size 8 --gradient_accumulation_steps 4",
        "each update's 32 random examples in 4 length-sorted micro-batches",
    ),
    "attn_dropout0": toggle("--attention_dropout 0", "no attention dropout: SDPA's fused kernel in training"),
    "bf16": toggle(
        "--bf16 true", "bf16 autocast on", bf16_default="bf16 is already the default here", slow_bf16=SLOW_BF16
    ),
    "fp32": toggle("--bf16 false --tf32 false", "bf16/TF32 off", fp32_default="fp32 is already the default here"),
    "compile": toggle("--torch_compile true", "torch.compile on"),
    "adamw_torch": toggle("--optim adamw_torch", "fused AdamW off (for-loop on CPU, foreach on CUDA)"),
    "workers2": toggle("--dataloader_num_workers 2", "2 data-loader workers", gpu=ON_GPU),
    "workers0": toggle("--dataloader_num_workers 0", "data-loader workers off", cpu="no workers is " + ON_CPU),
    "no_pin_memory": toggle("--dataloader_pin_memory false", "pinned memory off", cpu=NO_PINNING),
    "pad8": toggle("--pad_to_multiple_of 8", "pad batches to a multiple of 8", gpu=ON_GPU, cpu=GPU_SWITCH),
    "pad_off": toggle("--pad_to_multiple_of 0", "no padding to a multiple of 8", cpu=GPU_SWITCH),
    "eager_attention": toggle("--attn_implementation eager", "eager attention instead of SDPA", cpu=GPU_SWITCH),
    "cudnn_attention": toggle("--cudnn_attention true", "SDPA may use its cuDNN backend", cpu=GPU_SWITCH),
    "eval_batch_256": toggle("--per_device_eval_batch_size 256", "eval batch 256", eval_only=True, gpu=ON_GPU),
    "eval_batch_32": toggle("--per_device_eval_batch_size 32", "eval batch 32", eval_only=True, cpu=ON_CPU),
    "eval_batch_64": toggle("--per_device_eval_batch_size 64", "eval batch 64", eval_only=True),
}
NER_VARIANTS = ["baseline", "default", *TOGGLES]
SENTIMENT_VARIANTS = ["baseline", "default", "random_order", "hf_grouping", "rebalance"]
# The smoke run (--quick) covers every code path once: trainer, baseline, eval-only (NER); not every switch.
QUICK_VARIANTS = {"ner": ["baseline", "default", "eval_batch_256"], "sentiment": ["baseline", "default"]}
SCALING_FRACTIONS = (0.25, 0.5, 1.0)

# Sized for ~30 minutes on 2 quiet CPU cores (28.6 measured; the baseline, padded to 128, dominates).
# test / batch None: the task's test split is left whole (tokenized, never trained on) and the batch size is
# the project's default; --quick cuts both, since its numbers only show that every path runs.
FULL = {
    "quick": False, "train": 1000, "eval": 300, "test": None, "batch": None, "epochs": 1, "reps": 3, "warmup": 3,
    "max_steps": None, "scaling": None,
}  # fmt: skip
QUICK = {
    "quick": True, "train": 64, "eval": 32, "test": 8, "batch": 8, "epochs": 1, "reps": 1, "warmup": 1,
    "max_steps": 2, "scaling": 128,
}  # fmt: skip


# --- measurements shared by the orchestrator and the workers --------------------------------------


def peak_rss_mib() -> dict[str, float]:
    """ru_maxrss is KiB on Linux; children = data-loader workers that have exited."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self": round(own, 1), "children": round(children, 1)}


def current_rss_mib() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def matmul_peak(dtype_name: str, budget_s: float = 2.0) -> dict[str, Any]:
    """FLOP/s of a large square matmul in `dtype_name` on this machine (the MFU denominator).

    The size grows until one product takes long enough to time well, capped so a dtype without
    hardware support (bf16 on an AVX2-only CPU: ~0.3 GFLOP/s) does not take minutes.
    """
    import torch

    from finetune_lab.hardware import precision_defaults

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    if cuda:  # measure fp32 the way the default path runs it: TF32 on where it turns TF32 on
        torch.backends.cuda.matmul.allow_tf32 = bool(precision_defaults().get("tf32"))

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    n, best, sizes = 256, 0.0, []
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        (a @ b).sum().item()  # warm-up: kernels, allocator
        sync()
        reps, elapsed, started = 0, 0.0, time.perf_counter()
        while elapsed <= budget_s / 4 and reps < 50:
            a @ b
            sync()
            reps, elapsed = reps + 1, time.perf_counter() - started
        rate = 2 * n**3 * reps / elapsed
        best = max(best, rate)
        sizes.append({"n": n, "gflops": round(rate / 1e9, 2), "seconds_per_product": round(elapsed / reps, 4)})
        if elapsed / reps > budget_s / 8 or n >= (16384 if cuda else 4096):
            break
        n *= 2
    tf32 = cuda and dtype_name == "fp32" and torch.backends.cuda.matmul.allow_tf32
    return {"dtype": dtype_name + (" (TF32)" if tf32 else ""), "flops": best, "sizes": sizes, "device": device}


def model_flops_per_sequence(model: Any) -> tuple[float, float, int]:
    """(6 x non-embedding parameters, 12 x layers x hidden, non-embedding parameters).

    Training FLOPs of a sequence of n real tokens ~ 6*N*n (forward + backward through the weights)
    + 12*L*d*n^2 (attention scores and the weighted sum, forward + backward). Padding is not
    counted: MFU here is *useful* work per second.
    """
    non_embedding = sum(p.numel() for name, p in model.named_parameters() if ".embeddings." not in f".{name}")
    config = model.config
    return 6.0 * non_embedding, 12.0 * config.num_hidden_layers * config.hidden_size, non_embedding


class BatchRecorder:
    """Per training batch: examples, real tokens, padded tokens, and sum of squared lengths (attention)."""

    def __init__(self) -> None:
        self.samples = self.tokens = self.padded = 0
        self.squares = 0.0

    def __call__(self, batch: dict) -> None:
        mask = batch["attention_mask"]
        lengths = mask.sum(dim=1).double()
        self.samples += int(mask.shape[0])
        self.tokens += int(lengths.sum())
        self.padded += int(mask.numel())
        self.squares += float((lengths**2).sum())

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "tokens": self.tokens, "padded": self.padded, "squares": self.squares}


# --- workers (one per subprocess) ------------------------------------------------------------------


def project_argv(spec: dict, output_dir: str) -> list[str]:
    """The run.py options of the default path for this slice, plus the variant's flips."""
    argv = [
        "--task", spec["task"], "--report_to", "none", "--output_dir", output_dir,
        "--num_train_epochs", str(spec["epochs"]),
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
        "--logging_strategy", "no", "--disable_tqdm", "true",
        "--tokenized_cache_dir", spec["cache_dir"],
    ]  # fmt: skip
    if spec.get("train") is not None:
        argv += ["--max_train_samples", str(spec["train"])]
    if spec.get("eval") is not None:
        argv += ["--max_eval_samples", str(spec["eval"])]
    if spec.get("max_steps"):
        argv += ["--max_steps", str(spec["max_steps"])]
    if spec.get("test") is not None:
        argv += ["--max_test_samples", str(spec["test"])]
    if spec.get("batch"):
        argv += ["--per_device_train_batch_size", str(spec["batch"])]
    return argv + list(spec.get("args", []))


def load_inputs(spec: dict, argv: list[str]) -> tuple[Any, Any, Any, Any, dict[str, float]]:
    """Options, task (labels settled), limited splits and the built model, as run.py makes them."""
    from transformers import set_seed

    from finetune_lab.arguments import parse_arguments
    from finetune_lab.modeling import build_model
    from finetune_lab.tokenization import limit_samples

    args = parse_arguments(argv)
    set_seed(args.training.seed)
    started = time.perf_counter()
    data = args.task.load(args.data)
    task = args.task.with_labels(data.label_names)
    splits, _ = limit_samples(data.splits, args.data)
    load_s = time.perf_counter() - started
    full_train = len(data.splits["train"])
    set_seed(args.training.seed)  # same classifier-head initialisation in every variant
    built = build_model(task, args.model, data.splits["train"])
    return args, task, splits, built, {"load_seconds": load_s, "full_train_size": full_train}


def worker_prep(spec: dict, out: str) -> dict:
    """Load + tokenize the full data set: the first time (empty cache) or from the cache."""
    from finetune_lab.tokenization import tokenize_splits

    args, task, splits, built, timing = load_inputs(spec, project_argv(spec, out))
    started = time.perf_counter()
    tokenized, _ = tokenize_splits(task, splits, built.tokenizer, args.data)
    timing["tokenize_seconds"] = time.perf_counter() - started
    timing["examples"] = {split: len(d) for split, d in tokenized.items()}
    return timing


def worker_train(spec: dict, out: str) -> dict:
    """One variant of the default path (Trainer), or the baseline loop; warm-up, train, evaluate.

    The scaling run (`spec["fractions"]`) trains the default path on each fraction of the training
    set instead, without evaluation, and returns one record per fraction.
    """
    import torch
    from transformers import Trainer, TrainerCallback

    from finetune_lab.arguments import parse_arguments
    from finetune_lab.hardware import precision_name
    from finetune_lab.tokenization import tokenize_splits
    from finetune_lab.trainer import build_trainer

    argv = project_argv(spec, out)
    args, task, splits, built, timing = load_inputs(spec, argv)
    training, tokenizer, model = args.training, built.tokenizer, built.model
    flops_weights, flops_attention, non_embedding = model_flops_per_sequence(model)
    recorder = BatchRecorder()
    result: dict[str, Any] = {
        "torch_threads": torch.get_num_threads(),
        "precision": precision_name(training.bf16, training.fp16),
        "tf32": bool(training.tf32),
        "non_embedding_params": non_embedding,
        "flops_per_token_weights": flops_weights,
        "flops_attention_coefficient": flops_attention,
    }
    if spec["variant"] == "baseline":
        from baseline import run_baseline

        timing["tokenize_seconds"] = 0.0  # on the fly, inside the training loop
        run = run_baseline(
            task, splits, tokenizer, model, args.data, training, spec["warmup"], spec.get("max_steps"), recorder
        )
        result.update(run, **timing, precision="fp32", optimizer="torch.optim.AdamW (default implementation)")
        return {**result, **recorder.as_dict(), "peak_rss_mib": peak_rss_mib()}

    started = time.perf_counter()
    tokenized, _ = tokenize_splits(task, splits, tokenizer, args.data)
    timing["tokenize_seconds"] = time.perf_counter() - started
    train_set, dev_set = tokenized["train"], tokenized["validation"]

    class MeasuredTrainer(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            recorder(inputs)  # shapes only, in the main process, whatever the loader workers do
            return super().training_step(model, inputs, num_items_in_batch)

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.begin = self.last = self._epoch = 0.0
            self.epochs: list[dict] = []

        def on_train_begin(self, *a, **k):
            self.begin = self.last = time.perf_counter()

        def on_epoch_begin(self, *a, **k):
            self._epoch = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.last = time.perf_counter()

        def on_epoch_end(self, *a, **k):
            seconds = time.perf_counter() - self._epoch
            self.epochs.append({"seconds": seconds, "rss_mib": current_rss_mib(), "peak_rss": peak_rss_mib()})

    def trainer(model, training_args, train_dataset, eval_dataset, callbacks=()) -> Trainer:
        # run.py's own builder (collator, metrics, standard callbacks); no early stopping: no evaluation
        return build_trainer(
            task, model, tokenizer, training_args, args.data, train_dataset, eval_dataset,
            callbacks=callbacks, trainer_class=MeasuredTrainer,
        )  # fmt: skip

    def train(model, training_args, train_dataset) -> tuple[Trainer, dict]:
        """Train with the clock and a fresh batch recorder running; the trainer and the run's record."""
        clock = Clock()
        recorder.__init__()
        t = trainer(model, training_args, train_dataset, dev_set, [clock])
        loss = t.train().training_loss
        return t, {
            "set_size": len(train_dataset), "train_seconds": clock.last - clock.begin, "epochs": clock.epochs,
            "loss": loss, "peak_rss_mib": peak_rss_mib(), **recorder.as_dict(),
        }  # fmt: skip

    if spec["warmup"]:
        warm_args = parse_arguments([*argv, "--max_steps", str(spec["warmup"])]).training
        warm = trainer(copy.deepcopy(model), warm_args, train_set, dev_set.select(range(8)))
        if not spec.get("eval_only"):
            warm.train()
        warm.evaluate()
        del warm
    if spec.get("fractions"):  # only the smallest fraction runs all the spec's epochs (memory across epochs)
        one_epoch = parse_arguments([*argv, "--num_train_epochs", "1"]).training
        runs = []
        for i, fraction in enumerate(spec["fractions"]):
            subset = train_set.select(range(max(1, round(fraction * len(train_set)))))
            runs.append({"fraction": fraction, **train(copy.deepcopy(model), one_epoch if i else training, subset)[1]})
        return {"scaling": runs, **timing, **result}
    if spec.get("eval_only"):
        t = trainer(model, training, train_set, dev_set)
        result["train_seconds"] = None
    else:
        t, run = train(model, training, train_set)
        epochs = run["epochs"]
        result.update(train_seconds=run["train_seconds"], epoch_seconds=[e["seconds"] for e in epochs])
        result.update(epochs_detail=epochs, steps=t.state.global_step)
    started = time.perf_counter()
    metrics = t.evaluate()
    result.update(
        eval_seconds=time.perf_counter() - started,
        eval_samples=len(dev_set),
        eval_batch_size=training.per_device_eval_batch_size,
        dev={k.removeprefix("eval_"): v for k, v in metrics.items() if isinstance(v, int | float)},
        optimizer=str(training.optim),
        dataloader={"workers": training.dataloader_num_workers, "pin_memory": training.dataloader_pin_memory},
        **timing,
    )
    return {**result, **recorder.as_dict(), "peak_rss_mib": peak_rss_mib()}


# --- orchestrator ----------------------------------------------------------------------------------


def run_specs(specs: list[dict]) -> list[dict]:
    """Each spec in turn, in this process: one result each. A spec that raises gives an error record
    (its traceback in the log) and the rest still run."""
    results = []
    for spec in specs:
        print(f"\n===== {spec['kind']} {spec.get('task')} {spec.get('variant', '')} rep {spec.get('rep')}", flush=True)
        started = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="bench-", ignore_cleanup_errors=True) as out:  # output_dir
                result = (worker_prep if spec["kind"] == "prep" else worker_train)(spec, out)
        except Exception as err:  # noqa: BLE001 - reported as this spec's error, the others go on
            traceback.print_exc()
            result = {"error": f"{type(err).__name__}: {err}"[:300]}
        results.append({**result, "seconds_in_process": time.perf_counter() - started})
        sys.stdout.flush()
    return results


def run_workers(specs: list[dict], log: Path) -> list[dict]:
    """Run specs in one fresh Python; their results come back through a JSON file.

    The full bench gives each spec its own process (its own peak memory, a cold start each);
    --quick runs all of them in one, to spend its minute on the checks rather than on imports.
    `wall_seconds`: the process's wall time for a lone spec, the spec's own time in a shared one.
    """
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = handle.name
    started = time.perf_counter()
    command = [sys.executable, __file__, "--worker", json.dumps(specs), "--result", result_path]
    with log.open("a") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.perf_counter() - started
    try:
        if done.returncode != 0:
            return [{"error": f"exit code {done.returncode}; see {log}", "wall_seconds": wall} for _ in specs]
        results = json.loads(Path(result_path).read_text())
        return [{**r, "wall_seconds": wall if len(specs) == 1 else r["seconds_in_process"]} for r in results]
    finally:
        Path(result_path).unlink(missing_ok=True)


def run_worker(spec: dict, log: Path) -> dict:
    """One spec in its own fresh process (the full bench's way)."""
    return run_workers([spec], log)[0]


def machine() -> dict[str, Any]:
    """The run's environment record (results.environment: git, python, packages), plus the hardware facts."""
    import torch

    from finetune_lab.hardware import cpu_has_fast_bf16, precision_defaults
    from finetune_lab.results import environment

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return {
        **environment(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "default_precision": precision_defaults(),
        "load_average_at_start": os.getloadavg(),
    }


def package_version(info: dict, name: str) -> str:
    """A version from the machine record; JSONs written before it held results.environment() kept torch at the top."""
    return (info.get("packages") or {}).get(name) or info.get(name) or "?"


def machine_facts(info: dict, peaks: dict[str, float], force_slow_bf16: bool) -> dict[str, Any]:
    """What the toggles' skip rules test, and the figures their reasons quote."""
    gpu, bf16 = bool(info["gpu"]), bool(info["default_precision"].get("bf16"))
    slow = peaks["bf16"] < peaks["fp32"] / 2 and not force_slow_bf16
    gflops = {"bf16_gflops": peaks["bf16"] / 1e9, "fp32_gflops": peaks["fp32"] / 1e9}
    return {"gpu": gpu, "cpu": not gpu, "bf16_default": bf16, "fp32_default": not bf16, "slow_bf16": slow, **gflops}


def skip_reason(variant: str, facts: dict[str, Any]) -> str | None:
    """Why `variant` is not run on this machine: its first skip rule that holds; None: run it."""
    rules = TOGGLES.get(variant, {}).get("skip_when", {})
    return next((why.format(**facts) for fact, why in rules.items() if facts[fact]), None)


def full_variants(task: str) -> list[str]:
    """The variants the full bench runs for a task (before the machine's skip rules)."""
    return NER_VARIANTS if task == "ner" else SENTIMENT_VARIANTS


def plan_units(tasks: list[str], opts: Any, config: dict, plan: list[dict], cache_root: Path) -> list[dict]:
    """Every worker run, in order: data preparation (first, then cached), the variants' repetitions
    (interleaved: rep 1 runs A B C ..., rep 2 starts one later, B C ... A), the scaling run.

    Each unit: role, spec, key (units with one key are repetitions of one measurement, which is
    what Progress estimates from) and a label for the progress lines.
    """
    units: list[dict] = []
    if not opts.no_prep:  # the whole data set (quick: the scaling slice), into an empty cache, then from it
        for rep in range(config["reps"] if opts.quick else min(config["reps"], 2)):  # two pairs are plenty
            for task in tasks:
                spec = {"kind": "prep", "task": task, "cache_dir": str(cache_root / f"prep-{task}-{rep}"), "rep": rep}
                spec["epochs"] = 1
                if opts.quick:
                    spec.update(train=config["scaling"], eval=config["eval"], test=config.get("test"))
                for when in ("first", "cached"):
                    label = f"prep {task} rep {rep + 1} ({when} tokenize)"
                    units.append({"role": f"prep-{when}", "spec": spec, "key": ("prep", task, when), "label": label})
    for rep in range(config["reps"]):
        order = plan[rep % len(plan) :] + plan[: rep % len(plan)] if plan else []
        for spec in order:
            key = ("train", spec["task"], spec["variant"])
            label = f"rep {rep + 1} {spec['task']} {spec['variant']}"
            units.append({"role": "variant", "spec": {**spec, "rep": rep}, "key": key, "label": label})
    if "ner" in tasks and not opts.no_scaling:
        # the default NER path at 25/50/100% of the training set, one process, no evaluation;
        # 1 epoch each, except 2 at 25% so that memory across epochs shows.
        spec = {
            "kind": "train", "task": "ner", "variant": "default", "args": [], "cache_dir": str(cache_root / "train"),
            "train": config["scaling"], "eval": 8, "epochs": 2, "warmup": config["warmup"], "rep": 0,
            "max_steps": config["max_steps"], "fractions": list(SCALING_FRACTIONS),
            "test": config.get("test"), "batch": config.get("batch"),
        }  # fmt: skip
        units.append(
            {"role": "scaling", "spec": spec, "key": ("scaling",), "label": "scaling ner default (25/50/100%)"}
        )
    return units


def quick_notes(tasks: list[str], config: dict, facts: dict, units: list[dict]) -> list[str]:
    """What --quick runs, and what it leaves to the full bench: said up front, so a quick table is
    never mistaken for a measurement."""
    ran = {(u["spec"]["task"], u["spec"]["variant"]) for u in units if u["role"] == "variant"}
    left = [f"{t}/{v}" for t in tasks for v in full_variants(t) if (t, v) not in ran and not skip_reason(v, facts)]
    steps = f"{config['max_steps']} training steps of batch {config.get('batch') or 'default'}"
    lines = [
        f"quick: {len(units)} check{'s' if len(units) != 1 else ''} in one process (imports paid once; peak memory "
        f"is not per variant). The numbers show that it runs; they are not a measurement.",
        f"quick: {config['reps']} repetition (full: {FULL['reps']}); {steps} after {config['warmup']} warm-up "
        f"step(s) (full: {FULL['epochs']} epoch at the default batch size, after {FULL['warmup']}); "
        f"{config['train']} train / {config['eval']} dev / {config.get('test')} test examples "
        f"(full: {FULL['train']} / {FULL['eval']} / all); "
        f"prep and scaling on {config['scaling']} training examples (full: the whole training set)",
    ]
    if left:
        lines.append(f"quick: not run (full bench only): {', '.join(left)}")
    return lines


def format_seconds(seconds: float) -> str:
    """'45s', '3m05s', '1h02m'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """The full bench's progress lines: which unit starts, how far along, and about how long is left.

    A pending unit's estimate: the median wall time of the same measurement in earlier
    repetitions; else the mean of the measured units of its kind (prep, train); else unknown (then
    counted as such, never guessed). The scaling run: the default NER variant's training time per
    example times the scaling run's volume, plus that variant's time outside training.
    """

    def __init__(self, units: list[dict], config: dict, clock: Any = time.perf_counter) -> None:
        self.units, self.config, self.clock = units, config, clock
        self.started = clock()
        self.measured: dict[tuple, list[dict]] = {}

    def finished(self, unit: dict, result: dict) -> None:
        if result.get("wall_seconds") is not None:
            self.measured.setdefault(unit["key"], []).append(result)

    def estimate(self, unit: dict) -> float | None:
        key = unit["key"]
        if key == ("scaling",):
            return self._scaling_estimate()
        if key in self.measured:
            return statistics.median(r["wall_seconds"] for r in self.measured[key])
        kind = [r["wall_seconds"] for k, rs in self.measured.items() if k[0] == key[0] for r in rs]
        return statistics.mean(kind) if kind else None

    def _scaling_estimate(self) -> float | None:
        done = [
            r for r in self.measured.get(("train", "ner", "default"), []) if r.get("train_seconds") and r.get("samples")
        ]
        if not done:
            return None
        run = done[-1]
        size = self.config.get("scaling") or run.get("full_train_size")
        if not size:
            return None
        volume = size * (sum(SCALING_FRACTIONS) + SCALING_FRACTIONS[0])  # 2 epochs at the smallest fraction
        outside = run["wall_seconds"] - run["train_seconds"] - (run.get("eval_seconds") or 0.0)
        return max(outside, 0.0) + run["train_seconds"] / run["samples"] * volume

    def starting(self, unit: dict) -> str:
        """The line to print as `unit` starts: [i/n], its label, time so far and time left (this unit included)."""
        index = next(i for i, planned in enumerate(self.units) if planned is unit)  # repetitions look alike
        estimates = [self.estimate(u) for u in self.units[index:]]
        known = [e for e in estimates if e is not None]
        unknown = len(estimates) - len(known)
        if not known:
            left = "time left: estimated once a run of its kind has finished"
        else:
            left = f"about {format_seconds(sum(known))} left"
            if unknown:
                left += f" (+ {unknown} run{'s' if unknown > 1 else ''} not yet estimated)"
        elapsed = format_seconds(self.clock() - self.started)
        return f"[{index + 1}/{len(self.units)}] {unit['label']}: starting; {elapsed} elapsed, {left}"


def plan_variants(tasks: list[str], opts: Any, config: dict, facts: dict, cache_dir: Path) -> tuple[list, dict]:
    """The worker specs to run, task by task, and the variants skipped here with their reasons."""
    plan: list[dict] = []
    skipped: dict[str, str] = {}
    for task in tasks:
        wanted = full_variants(task)
        if opts.quick:
            wanted = QUICK_VARIANTS.get(task, QUICK_VARIANTS["sentiment"])
        if opts.variants:  # "default,fp32" for every task, "ner/compile" for one
            chosen = [v for v in opts.variants.split(",") if "/" not in v or v.startswith(f"{task}/")]
            wanted = [v.split("/", 1)[-1] for v in chosen]
        for variant in wanted:
            reason = skip_reason(variant, facts)
            if reason:
                skipped[variant] = reason
                continue
            toggle = TOGGLES.get(variant, {})
            plan.append({
                "kind": "train", "task": task, "variant": variant, "args": toggle.get("args", []),
                "eval_only": toggle.get("eval_only", False), "cache_dir": str(cache_dir),
                **{k: config.get(k) for k in ("train", "eval", "test", "batch", "epochs", "warmup", "max_steps")},
            })  # fmt: skip
    return plan, skipped


def summarize(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def derive(run: dict, peaks: dict[str, float]) -> dict[str, Any]:
    """Rates from one worker's raw counts."""
    if "error" in run:
        return {}
    out: dict[str, Any] = {}
    if run.get("train_seconds"):
        seconds = run["train_seconds"]
        flops = run["flops_per_token_weights"] * run["tokens"] + run["flops_attention_coefficient"] * run["squares"]
        peak = peaks.get(run["precision"]) or peaks["fp32"]
        out.update(
            train_samples_per_s=run["samples"] / seconds,
            train_tokens_per_s=run["tokens"] / seconds,
            padding_fraction=1 - run["tokens"] / run["padded"] if run["padded"] else None,
            achieved_gflops=flops / seconds / 1e9,
            mfu=flops / seconds / peak,
            mfu_vs_bf16_peak=flops / seconds / peaks["bf16"],
        )
    if run.get("eval_seconds"):
        out["eval_samples_per_s"] = run["eval_samples"] / run["eval_seconds"]
    out["peak_rss_mib"] = run["peak_rss_mib"]["self"]
    out["prep_seconds"] = run.get("load_seconds", 0) + run.get("tokenize_seconds", 0)
    main_metric = "f1" if "f1" in run.get("dev", {}) else "accuracy"
    out["dev_metric"] = run.get("dev", {}).get(main_metric) if run.get("train_seconds") else None
    out["dev_metric_name"] = main_metric
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few steps per variant (smoke run)")
    parser.add_argument("--tasks", default="ner,sentiment")
    parser.add_argument(
        "--variants", help="comma-separated subset (default: all for the task); TASK/VARIANT limits one to a task"
    )
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--train", type=int, default=None, help="training sentences per variant")
    parser.add_argument("--eval", type=int, default=None, help="dev sentences per variant")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-prep", action="store_true")
    parser.add_argument("--force-slow-bf16", action="store_true", help="train bf16 even where bf16 matmul is slow")
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument("--markdown", metavar="JSON", help="print a finished run's JSON as README Markdown, then exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)

    if opts.worker:
        Path(opts.result).write_text(json.dumps(run_specs(json.loads(opts.worker)), default=str))
        return 0

    if opts.markdown:
        print(report_text(json.loads(Path(opts.markdown).read_text()), "markdown"))
        return 0

    config = dict(QUICK if opts.quick else FULL)
    for key in ("reps", "train", "eval", "epochs"):
        if getattr(opts, key) is not None:
            config[key] = getattr(opts, key)
    out_dir = Path(opts.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = out_dir / f"bench-{stamp}.log"
    cache_root = Path(tempfile.mkdtemp(prefix="bench-cache-", dir=out_dir))
    tasks = [t for t in opts.tasks.split(",") if t]
    started = time.perf_counter()

    info = machine()
    gpu = info["gpu"] or "none"
    print(f"machine: {info['cpu']}, {info['cores']} cores, GPU: {gpu}; torch {package_version(info, 'torch')}")
    peaks_raw = {name: matmul_peak(name, 0.5 if opts.quick else 2.0) for name in ("fp32", "bf16")}
    peaks = {name: p["flops"] for name, p in peaks_raw.items()}
    print("matmul peak: " + ", ".join(f"{p['dtype']} {p['flops'] / 1e9:.1f} GFLOP/s" for p in peaks_raw.values()))
    facts = machine_facts(info, peaks, opts.force_slow_bf16)
    plan, skipped = plan_variants(tasks, opts, config, facts, cache_root / "train")
    print(
        f"plan: {len(plan)} variants x {config['reps']} reps, interleaved; train {config['train']} / dev "
        f"{config['eval']} examples, {config['epochs']} epoch(s), warm-up {config['warmup']} steps"
        + ("; quick: at most {} steps".format(config["max_steps"]) if config["max_steps"] else "")
    )
    if not opts.quick:
        print("estimate: about 30 minutes on 2 quiet CPU cores (more on a busy machine); a GPU is much faster")
    for name, why in skipped.items():
        print(f"  skipped {name}: {why}")

    units = plan_units(tasks, opts, config, plan, cache_root)
    if opts.quick:
        for line in quick_notes(tasks, config, facts, units):
            print(line)

    prep: dict[str, list[dict]] = {}
    runs: dict[tuple[str, str], list[dict]] = {}
    scaling = None

    def record(unit: dict, result: dict) -> None:
        """File a finished unit's result where the report looks for it, with its line on stdout."""
        nonlocal scaling
        spec = unit["spec"]
        if unit["role"] == "prep-first":
            prep.setdefault(spec["task"], []).append({"first": result})
        elif unit["role"] == "prep-cached":
            pair = prep[spec["task"]][-1]
            pair["cached"] = result
            print(
                f"  prep {spec['task']} rep {spec['rep'] + 1}: first {_prep_s(pair['first'])}, cached {_prep_s(result)}"
            )
        elif unit["role"] == "scaling":
            scaling = result  # its figures are in the summary below
            print(f"  scaling ner default: {result.get('error') or 'done'}")
        else:
            result["derived"] = d = derive(result, peaks)
            runs.setdefault((spec["task"], spec["variant"]), []).append(result)
            rate = f"{d['train_samples_per_s']:.1f} train samples/s" if d.get("train_samples_per_s") else ""
            rate += f" {d['eval_samples_per_s']:.1f} eval samples/s" if d.get("eval_samples_per_s") else ""
            took = f" ({result['wall_seconds']:.1f} s)" if result.get("wall_seconds") is not None else ""
            print(f"  {unit['label']:<32} {rate or result.get('error', '')}{took}", flush=True)

    if opts.quick:  # one process for every check: its imports are paid once
        process_started = time.perf_counter()
        results = run_workers([u["spec"] for u in units], log)
        process = time.perf_counter() - process_started
        for unit, result in zip(units, results, strict=True):
            record(unit, result)
        checks = sum(r.get("seconds_in_process") or 0.0 for r in results)
        print(
            f"quick: the worker process took {process:.1f} s, {checks:.1f} s of it in the checks (the first one "
            "includes loading torch and transformers)"
        )
    else:  # a fresh process each, announced with the time left
        progress = Progress(units, config)
        for unit in units:
            print(progress.starting(unit), flush=True)
            result = run_worker(unit["spec"], log)
            progress.finished(unit, result)
            record(unit, result)

    report = build_report(config, info, peaks_raw, skipped, prep, runs, scaling)
    report["total_seconds"] = time.perf_counter() - started
    path = out_dir / f"bench-{stamp}{'-quick' if opts.quick else ''}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out_dir / f"latest{'-quick' if opts.quick else ''}.json").write_text(path.read_text())
    print("\n" + report_text(report, "text"))
    shutil.rmtree(cache_root, ignore_errors=True)
    print(f"\nwrote {path} ({report['total_seconds'] / 60:.1f} min; worker logs: {log})")
    return 0 if not report["errors"] else 1


def _prep_s(run: dict) -> str:
    if "error" in run:
        return run["error"]
    return f"{run['load_seconds']:.2f}s load + {run['tokenize_seconds']:.2f}s tokenize"


# --- the report: JSON, then text or Markdown ------------------------------------------------------

SUMMARIZED = (
    "train_samples_per_s", "train_tokens_per_s", "eval_samples_per_s", "padding_fraction", "peak_rss_mib",
    "prep_seconds", "achieved_gflops", "mfu", "mfu_vs_bf16_peak", "dev_metric",
)  # fmt: skip


def build_report(config, info, peaks_raw, skipped, prep, runs, scaling) -> dict[str, Any]:
    errors = [f"{task}/{variant}: {r['error']}" for (task, variant), rs in runs.items() for r in rs if "error" in r]
    variants: dict[str, dict[str, Any]] = {}
    for (task, variant), results in runs.items():
        derived = [r["derived"] for r in results]
        base = [r["derived"] for r in runs.get((task, "baseline"), [])]
        toggle = TOGGLES.get(variant, {})
        entry: dict[str, Any] = {
            "what": toggle.get("why") or ("reference baseline" if variant == "baseline" else "default path"),
            "args": toggle.get("args", []),
            **{key: summarize([d.get(key) for d in derived]) for key in SUMMARIZED},
        }
        # Ratios within each repetition (same rep = same machine conditions), then the median.
        for key in ("train_samples_per_s", "eval_samples_per_s"):
            ratios = [d[key] / b[key] for d, b in zip(derived, base, strict=False) if d.get(key) and b.get(key)]
            entry[f"{key}_vs_baseline"] = summarize(ratios)
        entry["dev_metric_name"] = derived[0].get("dev_metric_name") if derived else None
        entry["raw"] = results
        variants[f"{task}/{variant}"] = entry
    prep_summary = {}
    for task, pairs in prep.items():
        ok = [p for p in pairs if "error" not in p["first"] and "error" not in p["cached"]]
        prep_summary[task] = {
            "first_tokenize_s": summarize([p["first"]["tokenize_seconds"] for p in ok]),
            "cached_tokenize_s": summarize([p["cached"]["tokenize_seconds"] for p in ok]),
            "first_total_s": summarize([p["first"]["load_seconds"] + p["first"]["tokenize_seconds"] for p in ok]),
            "cached_total_s": summarize([p["cached"]["load_seconds"] + p["cached"]["tokenize_seconds"] for p in ok]),
            "raw": pairs,
        }
        errors += [f"prep {task}: {p[k]['error']}" for p in pairs for k in ("first", "cached") if "error" in p[k]]
    if scaling and "error" in scaling:
        errors.append(f"scaling: {scaling['error']}")
    return {
        "config": config,
        "machine": info,
        "matmul_peak": {k: {**v, "gflops": v["flops"] / 1e9} for k, v in peaks_raw.items()},
        "skipped": skipped,
        "prep": prep_summary,
        "variants": variants,
        "scaling": scaling,
        "errors": errors,
        "notes": [
            "train samples/s: training examples / wall time from train start to the last optimizer step "
            "(data loading, forward, backward, optimizer), after an untimed warm-up on a copy of the model",
            "MFU: (6 x non-embedding params x real tokens + 12 x layers x hidden x sum(len^2)) / time / peak; "
            "padding is not useful work; peak: measured matmul in the dtype the variant computes in",
            "ratios: per repetition against the baseline of the same repetition, then median [min-max]",
        ],
    }


def stat_text(stat: dict | None, scale: float = 1.0, digits: int = 1, suffix: str = "", spread: bool = False) -> str:
    """A summarize() result as its median (with [min-max] when `spread`); "-" when nothing was measured."""
    if not stat:
        return "-"
    text = f"{stat['median'] * scale:.{digits}f}{suffix}"
    return (text + f" [{stat['min'] * scale:.{digits}f}-{stat['max'] * scale:.{digits}f}]") if spread else text


def prep_text(task: str, prep: dict) -> str | None:
    """One line on a task's data preparation, first run against cached; None when it was not measured."""
    first, cached = prep["first_tokenize_s"], prep["cached_tokenize_s"]
    if not (first and cached):
        return None
    total_first, total_cached = prep["first_total_s"], prep["cached_total_s"]
    spread = {"digits": 2, "spread": True}
    return (
        f"data prep {task}: tokenize {stat_text(first, **spread)} s first, {stat_text(cached, **spread)} s cached "
        f"({cached['median'] / first['median']:.0%}); load + tokenize {stat_text(total_first, **spread)} s -> "
        f"{stat_text(total_cached, **spread)} s ({total_cached['median'] / total_first['median']:.0%})"
    )


# The variants table's columns, in row order: (Markdown header, stdout header); None: not shown there.
# Markdown keeps the README's columns; stdout keeps to a terminal's width.
COLUMNS = [
    ("task / variant", "variant"), ("what", None), ("dtype", "dtype"), ("train samples/s", "train samples/s"),
    ("x baseline", "x base"), ("real tokens/s", "tokens/s"), ("eval samples/s", "eval samples/s"),
    ("eval x baseline", "x base"), ("padding", "pad"), ("peak RSS MiB", "RSS MiB"), (None, "prep s"), ("MFU", "MFU"),
    ("MFU vs bf16 peak", None), ("dev F1 / acc", "dev"),
]  # fmt: skip


def variants_table(report: dict, fmt: str) -> str:
    """One row per variant, built once, rendered with the format's columns."""
    rows = []
    peaks = {dtype: p.get("gflops", 0) for dtype, p in (report.get("matmul_peak") or {}).items()}
    # Against an emulated bf16 peak (a CPU without bf16 instructions: ~1 GFLOP/s) the ratio means nothing.
    native_bf16 = peaks.get("bf16", 0) >= peaks.get("fp32", 0)
    for name, v in report["variants"].items():

        def stat(key: str, scale: float = 1.0, digits: int = 1, suffix: str = "", spread: bool = False, v=v) -> str:
            return stat_text(v.get(key), scale, digits, suffix, spread)

        dtype = next((r.get("precision") for r in v.get("raw", []) if r.get("precision")), "fp32")
        rows.append([
            name, v["what"], dtype, stat("train_samples_per_s", spread=True),
            stat("train_samples_per_s_vs_baseline", digits=2, suffix="x"), stat("train_tokens_per_s", digits=0),
            stat("eval_samples_per_s", spread=True), stat("eval_samples_per_s_vs_baseline", digits=2, suffix="x"),
            stat("padding_fraction", 100, 0, "%"), stat("peak_rss_mib", digits=0), stat("prep_seconds", digits=2),
            stat("mfu", 100, 1, "%"), stat("mfu_vs_bf16_peak", 100, 1, "%") if native_bf16 else "-",
            stat("dev_metric", digits=3),
        ])  # fmt: skip
    side = 0 if fmt == "markdown" else 1
    shown = {i: headers[side] for i, headers in enumerate(COLUMNS) if headers[side]}
    from finetune_lab.tables import render

    header = list(shown.values())
    # Markdown keeps plain `---` rules (the README's table); text right-aligns the numbers.
    align = "" if fmt == "markdown" else "l" + "r" * (len(header) - 1)
    return render(header, [[row[i] for i in shown] for row in rows], fmt, align=align)


def report_text(report: dict, fmt: str) -> str:
    """A finished run in words and one table: stdout's summary, or with fmt="markdown" the README's speed section
    (rendered from a bench JSON, so no number is copied by hand)."""
    from finetune_lab.hardware import precision_name

    m, config = report["machine"], report["config"]
    git = m.get("git") or {}
    commit = f"{git['commit'][:7]}{' (dirty tree)' if git.get('dirty') else ''}" if git.get("commit") else "unknown"
    peaks = ", ".join(f"{name} {p['gflops']:.1f} GFLOP/s" for name, p in report["matmul_peak"].items())
    default_precision = precision_name(bool(m["default_precision"].get("bf16")), False)
    if config.get("quick"):
        scope = (
            f"sentences, {config['max_steps']} steps of batch {config.get('batch') or 'default'}, one shared "
            "process (quick smoke run: these numbers are not a measurement)."
        )
    else:
        scope = (
            f"sentences, {config['epochs']} epoch, {config['reps']} repetitions interleaved; "
            "median [min-max]; x baseline = median of per-repetition ratios."
        )
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}; torch {package_version(m, 'torch')}, "
        f"transformers {package_version(m, 'transformers')}; default precision here: {default_precision}. "
        f"Commit {commit}.",
        f"Measured matmul peak: {peaks}. Each variant: {config['train']} training / {config['eval']} dev {scope}",
        "",
        variants_table(report, fmt),
        "",
    ]
    lines += [f"- not run: `{name}`: {why}" for name, why in report["skipped"].items()]
    prep_lines = filter(None, (prep_text(task, p) for task, p in report["prep"].items()))
    where = f"{config.get('scaling')} training examples, shared process" if config.get("quick") else None
    lines += [f"- {line} ({where or 'whole data set, fresh process'})" for line in prep_lines]
    scaling = (report.get("scaling") or {}).get("scaling") or []
    if scaling:
        parts = []
        for r in scaling:
            epochs = " / ".join(f"{e['seconds']:.1f} s (RSS {e['rss_mib']:.0f} MiB)" for e in r["epochs"])
            parts.append(f"{r['fraction']:.0%} ({r['set_size']:,} sentences): {epochs}")
        lines.append("- scaling, default NER path, seconds per epoch: " + "; ".join(parts))
    lines += [f"- ERROR {e}" for e in report["errors"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
