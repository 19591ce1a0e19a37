"""Task families: what every task of a kind shares, so that a task module is only a declaration.

A family owns the model head, the collator, how Hub rows and local files look, preprocessing and
`compute_metrics`. A task module (tasks/*.py) subclasses one family and declares `name`,
`description`, `label_names`, `defaults` and, where it has embedded data, `load_embedded`:

- `TokenClassificationTask`: one label per word (NER), columns `tokens` / `tags`, entity-level F1;
- `TextClassificationTask`: one label per text, columns `text` / `label`, accuracy and macro F1
  (`binary = True`: precision/recall/F1 and ROC-AUC of `label_names[1]`);
- `TextRegressionTask`: one number per text, MSE loss, scored with MSE, MAE, Pearson, Spearman.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Sequence
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
    IOB1_REPAIR,
    DataReport,
    join_text,
    missing_columns,
    parse_score,
    read_text_file,
    read_token_file,
    resolve_label,
    rows_checksum,
    text_columns,
    to_iob2,
)

SPLITS = ("train", "validation", "test")
# Many Hub sets ship train/test only: this share of train is held out as validation, fixed seed.
HUB_VALIDATION_SHARE, HUB_VALIDATION_SEED = 0.1, 42


@dataclasses.dataclass
class NoOptions:
    """Tasks with options of their own declare a dataclass like this; the runner parses it."""


@dataclasses.dataclass(frozen=True)
class LoadedData:
    """What loading gives the runner: the final rows of each split, what happened, the label set."""

    splits: DatasetDict
    report: DataReport
    label_names: tuple[str, ...]


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
            if len(set(label_names)) != len(label_names):
                raise UsageError(f"--labels {' '.join(label_names)}: each label must be named once")
            self.label_names = tuple(label_names)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

    def with_labels(self, label_names: Sequence[str]) -> Task:
        """A copy of this task with the label set loading settled on (this one is left as it is)."""
        task = copy.copy(self)
        task.label_names = tuple(label_names)
        return task

    def model_config_overrides(self) -> dict[str, Any]:
        """Extra model config values (e.g. problem_type) for AutoConfig.from_pretrained."""
        return {}

    def example_texts(self, dataset: Dataset) -> Iterable[str]:
        """Each example as one string (for the from-scratch character vocabulary)."""
        raise NotImplementedError

    # --- data -------------------------------------------------------------------------------
    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        raise UsageError(f"task '{self.name}' has no embedded data; pass --dataset_name or --train_file")

    def embedded_label_names(self, splits: dict[str, list[dict]]) -> tuple[str, ...]:
        """The label set of the embedded data (a task whose labels come from its data overrides this)."""
        return self.label_names

    def load(self, data_args: Any, hub_options: dict[str, Any] | None = None) -> LoadedData:
        """Rows for each split from local files, the Hub, or the embedded default, in that order.

        `hub_options` go to `datasets.load_dataset` (cache_dir, token), as HF's scripts pass them.
        """
        report = DataReport()
        label_names = self.label_names
        files = {split: getattr(data_args, f"{split}_file") for split in SPLITS}
        if any(files.values()):
            if not files["train"] or not files["validation"]:
                raise UsageError("local data needs at least --train_file and --validation_file")
            report.source = "files: " + ", ".join(f"{s}={p}" for s, p in files.items() if p)
            splits = {s: self.read_file(Path(p), data_args, report, s) for s, p in files.items() if p}
        elif data_args.dataset_name:
            report.source = f"hub: {data_args.dataset_name}" + (
                f" ({data_args.dataset_config_name})" if data_args.dataset_config_name else ""
            )
            splits, label_names = self.load_hub(data_args, report, hub_options or {})
        else:
            splits = self.load_embedded(report)
            label_names = self.embedded_label_names(splits)
            self.check_embedded_labels(splits, label_names)
        for split, rows in splits.items():
            report.kept[split] = len(rows)
            report.checksums[split] = rows_checksum(rows)
        dataset = DatasetDict({split: Dataset.from_list(rows) for split, rows in splits.items()})
        return LoadedData(dataset, report, tuple(label_names))

    def labels_in(self, row: dict) -> Iterable[str]:
        """The labels one example uses (a family overrides this)."""
        return ()

    def check_embedded_labels(self, splits: dict[str, list[dict]], label_names: Sequence[str]) -> None:
        """With --labels, every label the embedded data uses must be one of them (else no head fits)."""
        if not self.user_labels:
            return
        allowed = set(label_names)
        for rows in splits.values():
            for row in rows:
                missing = next((label for label in self.labels_in(row) if label not in allowed), None)
                if missing is not None:
                    raise UsageError(
                        f"--labels {' '.join(label_names)}: the embedded data of task '{self.name}' has label "
                        f"{missing!r}, which is not among them; --labels is for your own files (--train_file) "
                        "or --dataset_name"
                    )

    def load_hub(
        self, data_args: Any, report: DataReport, hub_options: dict[str, Any] | None = None
    ) -> tuple[dict[str, list[dict]], tuple[str, ...]]:
        from datasets import load_dataset

        options = {k: v for k, v in (hub_options or {}).items() if v is not None}
        try:
            hub = load_dataset(data_args.dataset_name, data_args.dataset_config_name, **options)
        except Exception as err:  # network, missing dataset, bad config: all user-fixable
            raise UsageError(
                f"cannot load --dataset_name {data_args.dataset_name}: {type(err).__name__}: {err}"
            ) from None
        # --train_split_name etc. (HF's names): which of the set's splits plays which part.
        names = {split: getattr(data_args, f"{split}_split_name", None) for split in SPLITS}
        for split, name in names.items():
            if name is not None and name not in hub:
                raise UsageError(
                    f"--{split}_split_name {name}: --dataset_name {data_args.dataset_name} has splits {list(hub)}"
                )
        names = {split: name or split for split, name in names.items()}
        if names["train"] not in hub:
            raise UsageError(
                f"--dataset_name {data_args.dataset_name} has no '{names['train']}' split (it has {list(hub)}); "
                "name the training split with --train_split_name"
            )
        label_names = self.hub_label_names(hub[names["train"]], data_args)
        splits = {
            split: self.rows_from_hub(hub[name], split, data_args, report, label_names)
            for split, name in names.items()
            if name in hub
        }
        if "validation" not in splits:
            held = Dataset.from_list(splits["train"]).train_test_split(
                test_size=HUB_VALIDATION_SHARE, seed=HUB_VALIDATION_SEED
            )
            splits["train"], splits["validation"] = held["train"].to_list(), held["test"].to_list()
        return splits, label_names

    def hub_label_names(self, train: Dataset, data_args: Any = None) -> tuple[str, ...]:
        """The label set for a Hub data set (a family may take it from the set's ClassLabel column)."""
        return self.label_names

    def rows_from_hub(
        self, split: Dataset, name: str, data_args: Any, report: DataReport, label_names: Sequence[str]
    ) -> list[dict]:
        raise NotImplementedError

    def read_file(self, path: Path, data_args: Any, report: DataReport, split: str) -> list[dict]:
        """Rows of one local file; anything skipped or repaired is counted in `report` under `split`."""
        raise NotImplementedError

    # --- model ------------------------------------------------------------------------------
    def data_collator(
        self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None, max_length: int | None = None
    ):
        """The batch collator; `max_length` pads every batch to it (--pad_to_max_length), else to its longest."""
        raise NotImplementedError

    def preprocess(self, batch: dict, tokenizer: PreTrainedTokenizerBase, data_args: Any) -> dict:
        raise NotImplementedError

    def compute_metrics(self, eval_pred: EvalPrediction) -> dict[str, float]:
        raise NotImplementedError


class TokenClassificationTask(Task):
    """One label per word (NER): columns `tokens` and `tags`, scored per entity with seqeval."""

    model_class = AutoModelForTokenClassification
    example_columns = ("tokens", "tags")

    def example_texts(self, dataset: Dataset) -> Iterable[str]:
        return ("".join(tokens) for tokens in dataset["tokens"])

    def labels_in(self, row: dict) -> Iterable[str]:
        return row["tags"]

    def read_file(self, path: Path, data_args: Any, report: DataReport, split: str) -> list[dict]:
        tokens_column, tags_column = token_columns(data_args)
        return read_token_file(path, self.label_names, report, split, tokens_column, tags_column)

    def rows_from_hub(
        self, split: Dataset, name: str, data_args: Any, report: DataReport, label_names: Sequence[str]
    ) -> list[dict]:
        tokens_column, tag_column = token_columns(data_args)
        tokens_column = tokens_column or "tokens"
        tag_column = tag_column or ("ner_tags" if "ner_tags" in split.column_names else "tags")
        if tokens_column not in split.column_names or tag_column not in split.column_names:
            where = f"--dataset_name {data_args.dataset_name} [{name}]"
            raise missing_columns(where, [tokens_column, tag_column], split.column_names)
        hub_names = getattr(split.features[tag_column].feature, "names", None)
        rows = []
        for index, row in enumerate(split):
            where = f"{data_args.dataset_name}[{name}][{index}]"
            tags = [hub_names[t] if hub_names else t for t in row[tag_column]]
            if not row[tokens_column]:
                report.drop(name, "empty sentences")
                continue
            iob2, changed = to_iob2([resolve_label(t, label_names, where) for t in tags], label_names)
            if changed:
                report.repair(name, IOB1_REPAIR, changed)
            rows.append({"tokens": row[tokens_column], "tags": iob2})
        return rows

    def data_collator(
        self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None, max_length: int | None = None
    ):
        padding = "max_length" if max_length else True
        return DataCollatorForTokenClassification(
            tokenizer, padding=padding, max_length=max_length, pad_to_multiple_of=pad_to_multiple_of
        )

    def preprocess(self, batch: dict, tokenizer: PreTrainedTokenizerBase, data_args: Any) -> dict:
        return align_labels_to_words(
            batch, tokenizer, self.label2id, data_args.max_seq_length, data_args.label_all_tokens
        )

    def compute_metrics(self, eval_pred: EvalPrediction) -> dict[str, float]:
        return entity_level_metrics(eval_pred, self.label_names)


class TextClassificationTask(Task):
    """One label per text (sentiment, intent, spam): columns `text` and `label`."""

    model_class = AutoModelForSequenceClassification
    example_columns = ("text", "label")
    # Hub columns to look for, first match wins (clinc_oos calls its label 'intent', sms_spam its text 'sms').
    hub_text_columns: ClassVar[tuple[str, ...]] = ("text", "sentence", "content")
    hub_label_columns: tuple[str, ...] = ("label",)
    # Take the label set from a Hub ClassLabel column (banking77's 77 intents) unless --labels is given.
    adopt_hub_label_names: ClassVar[bool] = False
    # Two classes, label_names[1] the positive one: score its precision/recall/F1 and ROC-AUC.
    binary: ClassVar[bool] = False
    regression: ClassVar[bool] = False  # see TextRegressionTask

    def example_texts(self, dataset: Dataset) -> Iterable[str]:
        return dataset["text"]

    def labels_in(self, row: dict) -> Iterable[str]:
        return () if self.regression else (row["label"],)

    def read_file(self, path: Path, data_args: Any, report: DataReport, split: str) -> list[dict]:
        return read_text_file(
            path,
            self.label_names,
            getattr(data_args, "text_column_name", None) or "text",
            self.regression,
            report,
            split,
            label_column=getattr(data_args, "label_column_name", None) or "label",
            delimiter=getattr(data_args, "text_column_delimiter", " "),
        )

    def label_value(self, value: Any, hub_names: Sequence[str] | None, label_names: Sequence[str], where: str) -> Any:
        return resolve_label(hub_names[value] if hub_names else value, label_names, where)

    def hub_label_column(self, dataset: Dataset, data_args: Any) -> str | None:
        """--label_column_name, else the first of the family's usual names the set has."""
        named = getattr(data_args, "label_column_name", None)
        if named:
            return named
        return next((c for c in self.hub_label_columns if c in dataset.column_names), None)

    def hub_label_names(self, train: Dataset, data_args: Any = None) -> tuple[str, ...]:
        column = self.hub_label_column(train, data_args)
        column = column if column in train.column_names else None
        hub_names = getattr(train.features[column], "names", None) if column else None
        if self.adopt_hub_label_names and hub_names and not self.user_labels:
            return tuple(hub_names)
        return self.label_names

    def rows_from_hub(
        self, split: Dataset, name: str, data_args: Any, report: DataReport, label_names: Sequence[str]
    ) -> list[dict]:
        default = next((c for c in self.hub_text_columns if c in split.column_names), self.hub_text_columns[0])
        columns = text_columns(getattr(data_args, "text_column_name", None), default)
        label_column = self.hub_label_column(split, data_args) or self.hub_label_columns[0]
        wanted = [*columns, label_column]
        if any(c not in split.column_names for c in wanted):
            raise missing_columns(f"--dataset_name {data_args.dataset_name} [{name}]", wanted, split.column_names)
        hub_names = getattr(split.features[label_column], "names", None)
        rows = []
        for index, row in enumerate(split):
            value = row[label_column]
            if value == -1:  # hidden test labels (e.g. GLUE): unusable for scoring
                report.drop(name, "unlabelled rows")
                continue
            text = join_text(row, columns, getattr(data_args, "text_column_delimiter", " "))
            if not str(text or "").strip():
                report.drop(name, "empty texts")
                continue
            where = f"{data_args.dataset_name}[{name}][{index}]"
            rows.append({"text": text, "label": self.label_value(value, hub_names, label_names, where)})
        return rows

    def data_collator(
        self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None, max_length: int | None = None
    ):
        padding = "max_length" if max_length else True
        return DataCollatorWithPadding(
            tokenizer, padding=padding, max_length=max_length, pad_to_multiple_of=pad_to_multiple_of
        )

    def preprocess(self, batch: dict, tokenizer: PreTrainedTokenizerBase, data_args: Any) -> dict:
        return encode_texts(batch, tokenizer, self.label2id, data_args.max_seq_length)

    def compute_metrics(self, eval_pred: EvalPrediction) -> dict[str, float]:
        if self.binary:
            return binary_classification_metrics(eval_pred, self.label_names)
        return text_classification_metrics(eval_pred, self.label_names)


class TextRegressionTask(TextClassificationTask):
    """One number per text: a single-output head with MSE loss; the `label` column holds the number."""

    label_names = ("score",)  # one output
    regression = True

    def __init__(self, options: Any = None, label_names: Sequence[str] | None = None) -> None:
        if label_names:
            raise UsageError(f"task '{self.name}' predicts a number: --labels does not apply")
        super().__init__(options)

    def model_config_overrides(self) -> dict[str, Any]:
        return {"problem_type": "regression"}

    def hub_label_names(self, train: Dataset, data_args: Any = None) -> tuple[str, ...]:
        return self.label_names

    def label_value(self, value: Any, hub_names: Sequence[str] | None, label_names: Sequence[str], where: str) -> Any:
        return parse_score(value, where)

    def preprocess(self, batch: dict, tokenizer: PreTrainedTokenizerBase, data_args: Any) -> dict:
        return encode_texts(batch, tokenizer, None, data_args.max_seq_length)

    def compute_metrics(self, eval_pred: EvalPrediction) -> dict[str, float]:
        return regression_eval_metrics(eval_pred)


def token_columns(data_args: Any) -> tuple[str | None, str | None]:
    """NER: the tokens and tags columns --text_column_name / --label_column_name name (None: the usual ones)."""
    tokens, tags = getattr(data_args, "text_column_name", None), getattr(data_args, "label_column_name", None)
    if tokens and "," in tokens:
        raise UsageError(f"--text_column_name {tokens}: NER reads one column of tokens, not several")
    return tokens, tags


# --- preprocessing and metric adapters ---------------------------------------------------------
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
