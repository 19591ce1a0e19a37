"""From loaded rows to model inputs: sample limits, tokenization (cached on disk), truncation accounting."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

# Bump when the cached columns change meaning without any hashed source file changing.
CACHE_FORMAT = 1
CACHE_ENV = "FINETUNE_LAB_CACHE"

SAMPLE_LIMITS = {"train": "max_train_samples", "validation": "max_eval_samples", "test": "max_predict_samples"}


def limit_samples(splits: DatasetDict, data_args: Any) -> tuple[DatasetDict, list[str]]:
    """The first N examples of each split the user limited (a new DatasetDict), and a note for each.

    With --shuffle_train_dataset the training split is shuffled first (seed --shuffle_seed), as in
    HF's run_classification.py, so --max_train_samples takes a random subset.
    """
    limited, notes = DatasetDict(splits), []
    if getattr(data_args, "shuffle_train_dataset", False) and "train" in splits:
        limited["train"] = splits["train"].shuffle(seed=data_args.shuffle_seed)
        notes.append(f"  train: shuffled, seed {data_args.shuffle_seed} (--shuffle_train_dataset)")
    for split, option in SAMPLE_LIMITS.items():
        limit = getattr(data_args, option)
        if limit is not None and split in splits and limit < len(splits[split]):
            notes.append(f"  {split}: using the first {limit} of {len(splits[split])} examples (--{option})")
            limited[split] = limited[split].select(range(limit))
    return limited, notes


def tokenized_cache_root(data_args: Any) -> Path | None:
    """Where tokenized splits are cached: --tokenized_cache_dir, $FINETUNE_LAB_CACHE, or ~/.cache; None: off."""
    chosen = getattr(data_args, "tokenized_cache_dir", None) or os.environ.get(CACHE_ENV)
    if chosen and chosen.lower() in ("none", "off", "false", "0"):
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "finetune-lab" / "tokenized"


def _file_digest(path: str | None) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""
    except OSError:
        return ""


def _tokenizer_digest(backend: Any) -> str:
    if backend is None:
        return ""
    state = json.loads(backend.to_str())
    # Calling the tokenizer switches these on and off: they are call arguments, not the tokenizer.
    state.pop("truncation", None)
    state.pop("padding", None)
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def tokenized_cache_key(task: Any, splits: DatasetDict, tokenizer: PreTrainedTokenizerBase, data_args: Any) -> str:
    """A digest of everything the tokenized data depends on; any change means a fresh tokenization.

    Data: `datasets`' own content fingerprint of each split (deterministic for `from_list` rows and
    updated by `select`, so sample limits count). Tokenizer: its full serialized state (vocabulary,
    normalizer, special tokens), not its name. Code: the task module and its family's preprocessing.
    --augment copies are made before tokenizing, so the training split's fingerprint covers their rows
    (and so --seed); the augmentation options are in the key too, so that no cache is ever shared across them.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    augment = [getattr(data_args, name, None) for name in ("augment", "augment_copies", "augment_rate")]
    parts = {
        "format": CACHE_FORMAT,
        "task": f"{type(task).__module__}.{type(task).__qualname__}",
        "labels": list(task.label_names),
        "options": dataclasses.asdict(task.options) if dataclasses.is_dataclass(task.options) else repr(task.options),
        "data": {split: dataset._fingerprint for split, dataset in splits.items()},
        "tokenizer": [type(tokenizer).__name__, _tokenizer_digest(backend)],
        "max_seq_length": data_args.max_seq_length,
        "label_all_tokens": getattr(data_args, "label_all_tokens", False),
        **({"augment": augment} if augment[0] else {}),  # absent without --augment: older caches stay valid
        "code": [
            _file_digest(inspect.getsourcefile(type(task))),
            _file_digest(str(Path(__file__).with_name("families.py"))),
        ],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _column_sum(dataset: Dataset, column: str) -> int:
    # In Arrow: summing Python rows costs ~1 s on CoNLL, more than loading the cache.
    return int(pc.sum(dataset.with_format("arrow")[column]).as_py() or 0)


def tokenize_splits(
    task: Any, splits: DatasetDict, tokenizer: PreTrainedTokenizerBase, data_args: Any
) -> tuple[DatasetDict, dict[str, dict[str, int]]]:
    """Run the task's `preprocess` on every split; count truncated examples and lost words.

    The result is cached on disk (see `tokenized_cache_root`): rows built with `Dataset.from_list`
    live in memory, where `datasets` keeps no cache of its own, so we name the cache files
    ourselves, under a key of data + tokenizer + max length + label options. A second run with the
    same inputs memory-maps the Arrow files instead of tokenizing again.
    """
    root = tokenized_cache_root(data_args)
    key = tokenized_cache_key(task, splits, tokenizer, data_args) if root is not None else None
    folder = root / f"{task.name}-{key}" if root is not None else None
    files = {split: folder / f"{split}.arrow" for split in splits} if folder is not None else {}
    overwrite = getattr(data_args, "overwrite_cache", False)  # --overwrite_cache: tokenize anew, replace the files
    if files and not overwrite and all(path.exists() for path in files.values()):
        tokenized = DatasetDict({split: Dataset.from_file(str(path)) for split, path in files.items()})
    else:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        tokenized = DatasetDict(
            {
                split: dataset.map(
                    task.preprocess,
                    batched=True,
                    fn_kwargs={"tokenizer": tokenizer, "data_args": data_args},
                    remove_columns=list(task.example_columns),
                    num_proc=data_args.preprocessing_num_workers,
                    desc=f"tokenizing {split}",
                    cache_file_name=str(files[split]) if files else None,
                    load_from_cache_file=not overwrite,
                    # Our key already covers function and inputs: spare datasets hashing the tokenizer (~2 s).
                    new_fingerprint=f"{key}{split}" if key else None,
                )
                for split, dataset in splits.items()
            }
        )
    truncation = {}
    for split, dataset in tokenized.items():
        counts = {"examples": len(dataset), "truncated": _column_sum(dataset, "truncated")}
        if "words_lost" in dataset.column_names:
            counts["words_lost"] = _column_sum(dataset, "words_lost")
        truncation[split] = counts
    columns = next(iter(tokenized.values())).column_names if tokenized else []  # alike in every split
    accounting = [c for c in ("truncated", "words_lost") if c in columns]
    return tokenized.remove_columns(accounting), truncation


def truncation_lines(truncation: dict[str, dict[str, int]], max_length: int) -> list[str]:
    lines = []
    for split, c in truncation.items():
        if c["truncated"]:
            lost = f", {c['words_lost']} words lost" if "words_lost" in c else ""
            lines.append(
                f"  {split}: {c['truncated']} of {c['examples']} examples truncated at {max_length} tokens{lost}"
            )
    return lines or [f"  no example is longer than --max_seq_length {max_length}"]
