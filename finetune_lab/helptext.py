"""`run.py --help`: the tasks with their defaults and the options people use, on one screen.

The full list (every TrainingArguments field) stays behind `run.py --help-all`, argparse's own.
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

# The options a run is usually shaped with, in the order shown: (option, metavar, help).
# A help of None takes the option's own (first sentence of its dataclass help).
COMMON_OPTIONS: tuple[tuple[str, str, str | None], ...] = (
    ("task", "NAME", "Task to run (above)."),
    ("experiment", "FILE", None),
    ("model_name_or_path", "ID|DIR", None),
    ("train_file", "FILE", None),
    ("validation_file", "FILE", None),
    ("test_file", "FILE", None),
    ("text_column_name", "COL", "Text column of your CSV/TSV/JSON lines or Hub set ('title,body' joins)."),
    ("label_column_name", "COL", "Label column of your data (default: label)."),
    ("labels", "L ...", "Your own label set, e.g. your NER tags (default: the task's)."),
    ("dataset_name", "ID", None),
    ("max_train_samples", "N", None),
    ("max_eval_samples", "N", None),
    ("max_predict_samples", "N", "Use only the first N test examples (alias --max_test_samples)."),
    ("max_seq_length", "N", None),
    ("num_train_epochs", "N", "Training epochs."),
    ("learning_rate", "LR", "Peak learning rate (linear decay after warmup)."),
    ("per_device_train_batch_size", "N", "Training batch size per process."),
    ("output_dir", "DIR", "Run folder (default: outputs/<task>/<run_name>)."),
    ("run_name", "NAME", "Run name (default: <model>-seed<seed>-<time>)."),
    ("seed", "N", "Random seed (data order, head initialisation)."),
    ("bf16", "true|false", "bf16 mixed precision (default: where the hardware has it fast)."),
    ("report_to", "wandb|none", "Where to log (W&B offline without an API key)."),
    ("do_eval", "true|false", "Score dev every epoch and at the end (false: neither)."),
    ("do_predict", "true|false", "Score the test split at the end."),
    ("resume_from_checkpoint", "true|DIR", "Continue a run: its newest complete checkpoint, or this one."),
    ("peft", "lora|ia3", "Train adapters, not every weight (--lora_r, --lora_alpha ...: --help-all)."),
    ("adversarial", "fgm|pgd", "Adversarial training on the word embeddings (--adv_epsilon ...: --help-all)."),
    ("notes", "TEXT", None),
)
# Shown for every task on one line (the tasks' own defaults are on their lines).
SHOWN_DEFAULTS = (
    "num_train_epochs",
    "per_device_train_batch_size",
    "learning_rate",
    "warmup_steps",
    "weight_decay",
    "max_seq_length",
    "seed",
    "report_to",
)


def _first_sentence(text: str) -> str:
    text = text.replace("%%", "%")
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def shown_value(value: Any) -> str:
    """A value as people write it on a command line: 1e-4, 3, true, a b."""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        if value and abs(value) < 1e-2:  # 1e-4, as people write learning rates, not 0.0001
            mantissa, exponent = f"{value:e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def field_help(dataclass_types: list[type]) -> dict[str, str]:
    """Each dataclass field's help text, by option name."""
    helps = {}
    for dtype in dataclass_types:
        for f in dataclasses.fields(dtype):
            helps.setdefault(f.name, f.metadata.get("help", ""))
    return helps


def short_help(task_class: type | None = None) -> str:
    """Usage, the tasks with their own defaults, the common defaults and the options people use."""
    from finetune_lab.arguments import BASE_DEFAULTS, DataArguments, ModelArguments, RunArguments
    from tasks import REGISTRY, get_task_class

    lines = [
        "usage: run.py --task NAME [--experiment FILE.yaml] [options]   (several GPUs: accelerate launch run.py ...)",
        "Fine-tunes a pretrained encoder: scores dev every epoch, keeps the best model, scores test at the end.",
        "Precedence, lowest first: defaults < the task's defaults < --experiment file < the command line.",
        "",
        "tasks (and their own defaults):",
    ]
    for name in sorted(REGISTRY):
        task = get_task_class(name)
        lines.append(f"  {name:<15} {task.description}")
        own = ", ".join(f"{k} {shown_value(v)}" for k, v in task.defaults.items())
        if own:
            lines.append(f"  {'':<15} {own}")
    data_defaults = {f.name: f.default for f in dataclasses.fields(DataArguments)}
    shared = {**data_defaults, **BASE_DEFAULTS}
    common = "every task unless it says otherwise: " + ", ".join(
        f"{k} {shown_value(shared[k])}" for k in SHOWN_DEFAULTS
    )
    lines += textwrap.wrap(common, width=110, subsequent_indent="  ")
    lines += ["", "options people use (every option, TrainingArguments' included: run.py --help-all):"]
    helps = field_help([RunArguments, ModelArguments, DataArguments])
    defaults = {**shared, **(task_class.defaults if task_class else {})}
    for name, metavar, text in COMMON_OPTIONS:
        text = text or _first_sentence(helps.get(name, ""))
        if task_class and name in task_class.defaults:
            text += f" {task_class.name}: {shown_value(defaults[name])}."
        lines.append(f"  --{name} {metavar}".ljust(38) + " " + text)
    if task_class is not None and dataclasses.is_dataclass(task_class.Options):
        own_options = dataclasses.fields(task_class.Options)
        if own_options:
            lines += ["", f"options of task {task_class.name}:"]
            for f in own_options:
                default = f"(default {shown_value(f.default)})" if f.default is not dataclasses.MISSING else ""
                lines.append(f"  --{f.name}".ljust(38) + f" {_first_sentence(f.metadata.get('help', ''))} {default}")
    return "\n".join(lines)
