"""What a task is: the base classes that `tasks/*.py` declare themselves with.

A task module sets `name`, `description`, `label_names`, `defaults`, says where its embedded data
comes from (`load_embedded`), and defines `preprocess` and `compute_metrics`. Everything about
the *kind* of task (token vs. sequence classification: model head, collator, how Hub rows and
local files look) lives here, so adding a task means adding one file and one registry line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from datasets import Dataset, DatasetDict
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedTokenizerBase,
)

from finetune_lab.errors import UsageError
from finetune_lab.metrics import binary_metrics, classification_metrics, entity_metrics, regression_metrics
from finetune_lab.readers import (
    DataReport,
    parse_score,
    read_text_file,
    read_token_file,
    resolve_label,
    rows_checksum,
)

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class NoOptions:
    """Tasks with options of their own declare a dataclass like this; the runner parses it."""


def package_file(package: str, relative: str) -> Path:
    """A file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"the data package '{package}' is not installed; run `make setup`")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise UsageError(f"{path} is missing from the installed package '{package}'; reinstall it (`make setup`)")
    return path


def stratified_split(rows: list[dict], key: str, seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, list[dict]]:
    """Fixed-seed stratified train/validation/test split (same rows every run with the same seed)."""
    from sklearn.model_selection import train_test_split

    labels = [row[key] for row in rows]
    train, rest = train_test_split(rows, train_size=fractions[0], random_state=seed, stratify=labels)
    rest_labels = [row[key] for row in rest]
    validation, test = train_test_split(
        rest, train_size=fractions[1] / (fractions[1] + fractions[2]), random_state=seed, stratify=rest_labels
    )
    return {"train": train, "validation": validation, "test": test}


class Task:
    """Common to every task. Subclass one of the families below, not this."""

    name: ClassVar[str]
    description: ClassVar[str]
    label_names: tuple[str, ...]
    # Option defaults: any run.py option (TrainingArguments, model, data). Experiment files and
    # the command line override them, in that order.
    defaults: ClassVar[dict[str, Any]] = {}
    Options: ClassVar[type] = NoOptions
    model_class: ClassVar[type]
    example_columns: ClassVar[tuple[str, ...]]
    # When the default Hub model (`defaults["model_name_or_path"]`) cannot be loaded (offline), build
    # a small BERT from a config with a vocabulary from the training data instead (see modeling.py).
    scratch_fallback: ClassVar[bool] = False

    def __init__(self, options: Any = None, label_names: Sequence[str] | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.user_labels = bool(label_names)
        if label_names:
            self.label_names = tuple(label_names)
        # Character counts of the training data, for a from-scratch vocabulary. Counts, not rows:
        # datasets hashes the task (via preprocess) on every map, and 55k rows made that take seconds.
        self.train_char_counts: Counter = Counter()
        # Set by modeling.load_tokenizer_and_model when the model is not the one asked for.
        self.model_description: str | None = None
        self.from_scratch = False

    @classmethod
    def defaults_for(cls, options: Any) -> dict[str, Any]:
        """Option defaults given the task's own options (e.g. a regression main metric); see arguments.py."""
        return dict(cls.defaults)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

    def model_config_overrides(self) -> dict[str, Any]:
        """Extra model config values (e.g. problem_type) for AutoConfig.from_pretrained."""
        return {}

    def example_text(self, row: dict) -> str:
        """The text of one example as a single string (for the from-scratch character vocabulary)."""
        raise NotImplementedError

    # --- data -------------------------------------------------------------------------------
    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        raise UsageError(f"task '{self.name}' has no embedded data; pass --dataset_name or --train_file")

    def load(self, data_args: Any) -> tuple[DatasetDict, DataReport]:
        """Rows for each split from local files, the Hub, or the embedded default, in that order."""
        report = DataReport()
        files = {split: getattr(data_args, f"{split}_file") for split in SPLITS}
        if any(files.values()):
            if not files["train"] or not files["validation"]:
                raise UsageError("local data needs at least --train_file and --validation_file")
            report.source = "files: " + ", ".join(f"{s}={p}" for s, p in files.items() if p)
            splits = {s: self.read_file(Path(p), data_args) for s, p in files.items() if p}
        elif data_args.dataset_name:
            report.source = f"hub: {data_args.dataset_name}" + (
                f" ({data_args.dataset_config_name})" if data_args.dataset_config_name else ""
            )
            splits = self.load_hub(data_args, report)
        else:
            splits = self.load_embedded(report)
        for split, rows in splits.items():
            report.kept[split] = len(rows)
            report.checksums[split] = rows_checksum(rows)
        if self.scratch_fallback:
            self.train_char_counts = Counter(
                ch for row in splits.get("train", []) for ch in self.example_text(row) if not ch.isspace()
            )
        return DatasetDict({split: Dataset.from_list(rows) for split, rows in splits.items()}), report

    def load_hub(self, data_args: Any, report: DataReport) -> dict[str, list[dict]]:
        from datasets import load_dataset

        try:
            hub = load_dataset(data_args.dataset_name, data_args.dataset_config_name)
        except Exception as err:  # network, missing dataset, bad config: all user-fixable
            raise UsageError(
                f"cannot load --dataset_name {data_args.dataset_name}: {type(err).__name__}: {err}"
            ) from None
        splits = {}
        for split in SPLITS:
            if split in hub:
                splits[split] = self.rows_from_hub(hub[split], split, data_args, report)
        if "validation" not in splits and "train" in splits:
            # Many Hub sets ship train/test only: hold out 10% of train, fixed seed.
            held = Dataset.from_list(splits["train"]).train_test_split(test_size=0.1, seed=42)
            splits["train"], splits["validation"] = held["train"].to_list(), held["test"].to_list()
        if "train" not in splits:
            raise UsageError(f"--dataset_name {data_args.dataset_name} has no 'train' split")
        return splits

    def rows_from_hub(self, split: Dataset, name: str, data_args: Any, report: DataReport) -> list[dict]:
        raise NotImplementedError

    def read_file(self, path: Path, data_args: Any) -> list[dict]:
        raise NotImplementedError

    # --- model ------------------------------------------------------------------------------
    def data_collator(self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None):
        raise NotImplementedError

    def preprocess(self, batch: dict, tokenizer: PreTrainedTokenizerBase, data_args: Any) -> dict:
        raise NotImplementedError

    def compute_metrics(self, eval_pred: EvalPrediction) -> dict[str, float]:
        raise NotImplementedError


class TokenClassificationTask(Task):
    """One label per word (NER): columns `tokens` and `tags`."""

    model_class = AutoModelForTokenClassification
    example_columns = ("tokens", "tags")

    def read_file(self, path: Path, data_args: Any) -> list[dict]:
        return read_token_file(path, self.label_names)

    def rows_from_hub(self, split: Dataset, name: str, data_args: Any, report: DataReport) -> list[dict]:
        tag_column = "ner_tags" if "ner_tags" in split.column_names else "tags"
        if "tokens" not in split.column_names or tag_column not in split.column_names:
            raise UsageError(f"--dataset_name {data_args.dataset_name}: expected columns 'tokens' and 'ner_tags'")
        feature = split.features[tag_column].feature
        hub_names = getattr(feature, "names", None)
        rows = []
        for index, row in enumerate(split):
            where = f"{data_args.dataset_name}[{name}][{index}]"
            tags = [hub_names[t] if hub_names else t for t in row[tag_column]]
            if not row["tokens"]:
                report.drop(name, "empty sentences")
                continue
            rows.append({"tokens": row["tokens"], "tags": [resolve_label(t, self.label_names, where) for t in tags]})
        return rows

    def data_collator(self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None):
        return DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_to_multiple_of)

    def example_text(self, row: dict) -> str:
        return "".join(row["tokens"])


class TextClassificationTask(Task):
    """One label per text (sentiment, intent, spam): columns `text` and `label`."""

    model_class = AutoModelForSequenceClassification
    example_columns = ("text", "label")
    # Hub label columns to look for, first match wins (clinc_oos calls it 'intent').
    hub_label_columns: tuple[str, ...] = ("label",)
    # Take the label set from a Hub ClassLabel column (banking77's 77 intents) unless --labels is given.
    adopt_hub_label_names: ClassVar[bool] = False
    # Regression: one float output, MSE loss, numeric labels (set by a task option).
    regression: bool = False

    def model_config_overrides(self) -> dict[str, Any]:
        return {"problem_type": "regression"} if self.regression else {}

    def example_text(self, row: dict) -> str:
        return row["text"]

    def read_file(self, path: Path, data_args: Any) -> list[dict]:
        return read_text_file(path, self.label_names, data_args.text_column or "text", regression=self.regression)

    def rows_from_hub(self, split: Dataset, name: str, data_args: Any, report: DataReport) -> list[dict]:
        text_column = data_args.text_column or next(
            (c for c in ("text", "sentence", "content") if c in split.column_names), None
        )
        label_column = next((c for c in self.hub_label_columns if c in split.column_names), None)
        if text_column not in split.column_names or label_column is None:
            raise UsageError(
                f"--dataset_name {data_args.dataset_name}: expected a text column and one of "
                f"{list(self.hub_label_columns)}, got {split.column_names}; name the text column with --text_column"
            )
        hub_names = getattr(split.features[label_column], "names", None)
        if self.adopt_hub_label_names and hub_names and not self.user_labels and not self.regression:
            self.label_names = tuple(hub_names)
        rows = []
        for index, row in enumerate(split):
            value = row[label_column]
            if value == -1:  # hidden test labels (e.g. GLUE): unusable for scoring
                report.drop(name, "unlabelled rows")
                continue
            if not str(row[text_column] or "").strip():
                report.drop(name, "empty texts")
                continue
            where = f"{data_args.dataset_name}[{name}][{index}]"
            if self.regression:
                label = parse_score(value, where)
            else:
                label = resolve_label(hub_names[value] if hub_names else value, self.label_names, where)
            rows.append({"text": row[text_column], "label": label})
        return rows

    def data_collator(self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None):
        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)


# --- shared preprocessing and metric adapters, called from task modules ----------------------


def align_labels_to_words(
    batch: dict,
    tokenizer: PreTrainedTokenizerBase,
    label2id: dict[str, int],
    max_length: int,
    label_all_tokens: bool = False,
) -> dict:
    """Tokenize pre-split words; label each word's first sub-token, -100 on the rest.

    With `label_all_tokens`, later pieces get the word's label too, with B-X turned into I-X so
    seqeval does not count one word as several entities. Also returns how many words truncation
    cut off each sentence (`words_lost`, `truncated`), for the data report.
    """
    encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
    all_labels, words_lost = [], []
    for i, tags in enumerate(batch["tags"]):
        word_ids = encoded.word_ids(batch_index=i)
        labels, previous = [], None
        for word_id in word_ids:
            if word_id is None:
                labels.append(-100)
            elif word_id != previous:
                labels.append(label2id[tags[word_id]])
            elif label_all_tokens:
                tag = tags[word_id]
                inside = "I-" + tag[2:] if tag.startswith("B-") else tag
                labels.append(label2id.get(inside, label2id[tag]))
            else:
                labels.append(-100)
            previous = word_id
        all_labels.append(labels)
        last_word = max((w for w in word_ids if w is not None), default=-1)
        words_lost.append(len(tags) - (last_word + 1))
    encoded["labels"] = all_labels
    encoded["words_lost"] = words_lost
    encoded["truncated"] = [int(n > 0) for n in words_lost]
    return encoded


def encode_texts(
    batch: dict, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int] | None, max_length: int
) -> dict:
    """Tokenize texts (no padding: the collator pads each batch) and map labels to ids.

    `label2id=None` means regression: the labels are scores and pass through as floats.
    """
    encoded = tokenizer(batch["text"], truncation=True, max_length=max_length)
    # Fast tokenizers keep what truncation removed: a non-empty overflow means a cut text.
    encoded["truncated"] = [int(bool(e.overflowing)) for e in encoded.encodings]
    if label2id is None:
        encoded["labels"] = [float(label) for label in batch["label"]]
    else:
        encoded["labels"] = [label2id[label] for label in batch["label"]]
    return encoded


def entity_level_metrics(eval_pred: EvalPrediction, label_names: Sequence[str]) -> dict[str, float]:
    """Argmax per token, drop the -100 positions, score entities with seqeval."""
    predictions = np.argmax(eval_pred.predictions, axis=-1)
    true_tags, pred_tags = [], []
    for pred_row, label_row in zip(predictions, eval_pred.label_ids, strict=True):
        keep = label_row != -100
        true_tags.append([label_names[i] for i in label_row[keep]])
        pred_tags.append([label_names[i] for i in pred_row[keep]])
    return entity_metrics(true_tags, pred_tags)


def text_classification_metrics(eval_pred: EvalPrediction, label_names: Sequence[str]) -> dict[str, float]:
    predictions = np.argmax(eval_pred.predictions, axis=-1)
    return classification_metrics(eval_pred.label_ids, predictions, label_names)


def binary_classification_metrics(eval_pred: EvalPrediction, label_names: Sequence[str]) -> dict[str, float]:
    """Two classes, `label_names[1]` the positive one: its P/R/F1 and ROC-AUC of its softmax probability."""
    logits = np.asarray(eval_pred.predictions, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))  # stable softmax
    scores = shifted[:, 1] / shifted.sum(axis=-1)
    return binary_metrics(eval_pred.label_ids, np.argmax(logits, axis=-1), scores, label_names)


def regression_eval_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
    """The single-output head's predictions against the true scores."""
    return regression_metrics(eval_pred.label_ids, np.asarray(eval_pred.predictions).reshape(-1))
