"""Label new text with saved runs, alone or as an ensemble (the engine behind predict.py).

A run folder holds the best model, its tokenizer and results.json (task, labels, options). The
task class from the registry decides the kind of prediction: one label per text (classification)
or one tag per word, grouped into entities with character spans (NER). An ensemble averages the
softmax probabilities of several runs of one task; for NER it averages per word (the first
sub-token, as the Trainer scores), so runs with different tokenizers can still be combined.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from finetune_lab.errors import UsageError
from finetune_lab.families import TokenClassificationTask


@dataclass
class LoadedRun:
    path: Path
    results: dict[str, Any]
    task: Any
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel

    @property
    def max_length(self) -> int:
        return int(((self.results.get("options") or {}).get("data") or {}).get("max_seq_length") or 128)

    @property
    def is_token_task(self) -> bool:
        return isinstance(self.task, TokenClassificationTask)


def load_run(path: str | Path) -> LoadedRun:
    """A finished run folder: results.json, model and tokenizer; UsageError naming what is missing."""
    from tasks import get_task_class

    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"run folder not found: {folder}")
    results_file = folder / "results.json"
    try:
        results = json.loads(results_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder} is not a finished run (no results.json)") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read {results_file}: {err}") from None
    if not isinstance(results, dict) or not results.get("task") or not results.get("labels"):
        raise UsageError(f"{results_file}: expected the keys 'task' and 'labels'")
    task_class = get_task_class(results["task"])
    saved_options = ((results.get("options") or {}).get("task")) or {}
    known = {f.name for f in fields(task_class.Options)}
    options = task_class.Options(**{k: v for k, v in saved_options.items() if k in known})
    task = task_class(options).with_labels(results["labels"])
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        # safetensors only: a pickled checkpoint can run code when loaded
        model = task.model_class.from_pretrained(folder, use_safetensors=True).eval()
    except OSError as err:
        raise UsageError(f"cannot load the model saved in {folder}: {err}") from None
    saved_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if saved_labels != list(task.label_names):
        raise UsageError(f"{folder}: the model's labels {saved_labels} differ from results.json {task.label_names}")
    return LoadedRun(folder, results, task, tokenizer, model)


def check_ensemble(runs: Sequence[LoadedRun]) -> None:
    """Runs of one task with one label set, or a UsageError naming the odd one out."""
    first = runs[0]
    for run in runs[1:]:
        if run.results["task"] != first.results["task"]:
            raise UsageError(
                f"--ensemble: {run.path} is a '{run.results['task']}' run, {first.path} a '{first.results['task']}' run"
            )
        if list(run.task.label_names) != list(first.task.label_names):
            raise UsageError(f"--ensemble: {run.path} and {first.path} have different label sets")


def _softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.float(), dim=-1).numpy()


@torch.no_grad()
def text_probabilities(run: LoadedRun, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """[n_texts, n_labels] class probabilities (classification runs)."""
    out = []
    for start in range(0, len(texts), batch_size):
        batch = run.tokenizer(
            list(texts[start : start + batch_size]),
            truncation=True,
            max_length=run.max_length,
            padding=True,
            return_tensors="pt",
        )
        out.append(_softmax(run.model(**batch).logits))
    return np.concatenate(out) if out else np.zeros((0, len(run.task.label_names)))


@torch.no_grad()
def word_probabilities(run: LoadedRun, sentences: Sequence[Sequence[str]], batch_size: int = 64) -> list[np.ndarray]:
    """Per sentence, [n_words_kept, n_labels]: each word's probabilities at its first sub-token.

    Words that truncation at max_seq_length cut off get no row (the Trainer does not score them).
    """
    out: list[np.ndarray] = []
    for start in range(0, len(sentences), batch_size):
        chunk = [list(words) for words in sentences[start : start + batch_size]]
        batch = run.tokenizer(
            chunk,
            is_split_into_words=True,
            truncation=True,
            max_length=run.max_length,
            padding=True,
            return_tensors="pt",
        )
        probs = _softmax(run.model(**batch).logits)
        for i in range(len(chunk)):
            firsts, previous = [], None
            for position, word_id in enumerate(batch.word_ids(batch_index=i)):
                if word_id is not None and word_id != previous:
                    firsts.append(position)
                previous = word_id
            out.append(probs[i, firsts])
    return out


def ensemble_text_probabilities(runs: Sequence[LoadedRun], texts: Sequence[str]) -> np.ndarray:
    return np.mean([text_probabilities(run, texts) for run in runs], axis=0)


def ensemble_word_probabilities(runs: Sequence[LoadedRun], sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
    per_run = [word_probabilities(run, sentences) for run in runs]
    kept = [min(len(p[i]) for p in per_run) for i in range(len(sentences))]  # shortest truncation wins
    return [np.mean([p[i][: kept[i]] for p in per_run], axis=0) for i in range(len(sentences))]


def split_words(tokenizer: PreTrainedTokenizerBase, text: str) -> list[tuple[str, tuple[int, int]]]:
    """Words with character spans, by the tokenizer's own pre-tokenizer (what the model sees as words)."""
    return tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)


def tags_to_entities(
    tags: Sequence[str], spans: Sequence[tuple[int, int]], scores: Sequence[float], text: str
) -> list[dict[str, Any]]:
    """IOB2 word tags into entities with character spans (conlleval rules: an I-X after O or
    another type starts a new entity). score = mean probability of the entity's word tags."""
    entities: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for tag, (start, end), score in zip(tags, spans, scores, strict=True):
        kind = tag[2:] if tag[:2] in ("B-", "I-") else None
        if kind is None:
            current = None
            continue
        if tag.startswith("I-") and current is not None and current["type"] == kind:
            current["end"] = end
            current["_scores"].append(score)
            continue
        current = {"type": kind, "start": start, "end": end, "_scores": [score]}
        entities.append(current)
    for entity in entities:
        entity["text"] = text[entity["start"] : entity["end"]]
        entity["score"] = float(np.mean(entity.pop("_scores")))
    return [{k: e[k] for k in ("type", "text", "start", "end", "score")} for e in entities]


def label_texts(runs: Sequence[LoadedRun], texts: Sequence[str]) -> list[dict[str, Any]]:
    """One JSON-able record per text: label + probability, or entities with character spans."""
    first = runs[0]
    labels = list(first.task.label_names)
    if not first.is_token_task:
        probs = ensemble_text_probabilities(runs, texts)
        return [
            {
                "text": text,
                "label": labels[int(p.argmax())],
                "probability": float(p.max()),
                "probabilities": {name: float(v) for name, v in zip(labels, p, strict=True)},
            }
            for text, p in zip(texts, probs, strict=True)
        ]
    split = [split_words(first.tokenizer, text) for text in texts]
    probs = ensemble_word_probabilities(runs, [[w for w, _ in words] for words in split])
    records = []
    for text, words, p in zip(texts, split, probs, strict=True):
        kept = words[: len(p)]  # words cut off by truncation are not labelled
        tags = [labels[int(i)] for i in p.argmax(-1)]
        entities = tags_to_entities(tags, [s for _, s in kept], [float(v) for v in p.max(-1)], text)
        record = {"text": text, "entities": entities}
        if len(kept) < len(words):
            record["words_not_labelled"] = len(words) - len(kept)
        records.append(record)
    return records


# --- evaluation on the run's own test split ------------------------------------------------


def _data_arguments(results: dict[str, Any]) -> Any:
    from finetune_lab.arguments import RENAMED, DataArguments

    saved = (results.get("options") or {}).get("data") or {}
    saved = {RENAMED.get(k, k): v for k, v in saved.items()}  # runs saved before the HF names
    known = {f.name for f in fields(DataArguments)}
    return DataArguments(**{k: v for k, v in saved.items() if k in known})


def load_test_rows(run: LoadedRun) -> list[dict]:
    """The test rows the run was scored on: same data source, same --max_predict_samples."""
    from finetune_lab.tokenization import limit_samples

    data_args = _data_arguments(run.results)
    data = run.task.load(data_args)
    if "test" not in data.splits:
        raise UsageError(f"{run.path}: its data has no test split to evaluate the ensemble on")
    splits, _ = limit_samples(data.splits, data_args)
    return splits["test"].to_list()


def evaluate(runs: Sequence[LoadedRun], rows: list[dict] | None = None) -> dict[str, float]:
    """The task's own metrics (task.compute_metrics) of the averaged probabilities on the test rows."""
    first = runs[0]
    rows = load_test_rows(first) if rows is None else rows
    label2id = first.task.label2id
    if not first.is_token_task:
        probs = ensemble_text_probabilities(runs, [r["text"] for r in rows])
        labels = np.array([label2id[r["label"]] for r in rows])
        return first.task.compute_metrics(EvalPrediction(predictions=probs, label_ids=labels))
    probs = ensemble_word_probabilities(runs, [r["tokens"] for r in rows])
    width = max((len(p) for p in probs), default=0)
    predictions = np.zeros((len(rows), width, len(label2id)), dtype=np.float32)
    label_ids = np.full((len(rows), width), -100)
    for i, (row, p) in enumerate(zip(rows, probs, strict=True)):
        predictions[i, : len(p)] = p
        label_ids[i, : len(p)] = [label2id[tag] for tag in row["tags"][: len(p)]]
    return first.task.compute_metrics(EvalPrediction(predictions=predictions, label_ids=label_ids))
