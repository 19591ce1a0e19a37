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
from transformers import AutoConfig, AutoTokenizer, EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from finetune_lab.errors import UsageError
from finetune_lab.families import TokenClassificationTask

# Backends: the PyTorch model as trained, or the ONNX export (`export.py`) run by ONNX Runtime.
# "onnx" takes the int8 copy when the export has one (the fast one), else fp32; the resolved
# name ("onnx-int8", "onnx-fp32") is what a run reports. "torch-bf16" is for the benchmark:
# it only pays off on CPUs with native bf16 (hardware.cpu_has_fast_bf16).
BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-fp32", "onnx-int8")
ONNX_DIR = "onnx"
ONNX_FILES = {"onnx-fp32": "model.onnx", "onnx-int8": "model.int8.onnx"}


@dataclass
class LoadedRun:
    path: Path
    results: dict[str, Any]
    task: Any
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel | None  # None on an ONNX backend: the PyTorch weights are never loaded
    backend: str = "torch"
    session: Any = None  # onnxruntime.InferenceSession on an ONNX backend
    model_file: Path | None = None  # the weights file this backend reads

    @property
    def max_length(self) -> int:
        return int(((self.results.get("options") or {}).get("data") or {}).get("max_seq_length") or 128)

    @property
    def is_token_task(self) -> bool:
        return isinstance(self.task, TokenClassificationTask)

    @property
    def is_regression(self) -> bool:
        return bool(getattr(self.task, "regression", False))

    def logits(self, batch: Any) -> np.ndarray:
        """float32 logits for a tokenizer batch (numpy arrays), on this run's backend."""
        if self.session is not None:
            wanted = [i.name for i in self.session.get_inputs()]
            return self.session.run(None, {name: np.asarray(batch[name], dtype=np.int64) for name in wanted})[0]
        inputs = {k: torch.as_tensor(np.asarray(v)) for k, v in batch.items() if k in MODEL_INPUTS}
        with torch.inference_mode():
            return self.model(**inputs).logits.float().numpy()


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def check_full_weights(folder: Path) -> None:
    """A folder holding a PEFT adapter but no full model: say so, instead of a loader's stack of errors."""
    if (folder / "adapter_config.json").exists() and not any(
        (folder / name).exists() for name in ("model.safetensors", "model.safetensors.index.json")
    ):
        raise UsageError(
            f"{folder} holds a PEFT adapter only (adapter_config.json, no model.safetensors): predicting, exporting "
            "and serving need full weights; merge the adapter into its base model (peft merge_and_unload) and "
            "save that run folder"
        )


def onnx_file(folder: Path, backend: str) -> tuple[str, Path]:
    """The resolved ONNX backend name and its file, or a UsageError saying how to export."""
    onnx_dir = folder / ONNX_DIR
    if backend == "onnx":
        backend = "onnx-int8" if (onnx_dir / ONNX_FILES["onnx-int8"]).exists() else "onnx-fp32"
    path = onnx_dir / ONNX_FILES[backend]
    if not path.exists():
        raise UsageError(f"--backend {backend}: {path} not found; export the run first: make export RUN={folder}")
    return backend, path


def load_run(path: str | Path, backend: str = "torch", threads: int | None = None) -> LoadedRun:
    """A finished run folder: results.json, model and tokenizer; UsageError naming what is missing.

    `threads`: intra-op threads of PyTorch (process-wide) or of the ONNX Runtime session; None keeps
    the libraries' defaults (one per core)."""
    from tasks import get_task_class

    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
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
    check_full_weights(folder)
    task_class = get_task_class(results["task"])
    saved_options = ((results.get("options") or {}).get("task")) or {}
    known = {f.name for f in fields(task_class.Options)}
    options = task_class.Options(**{k: v for k, v in saved_options.items() if k in known})
    task = task_class(options).with_labels(results["labels"])
    model, session, model_dir = None, None, folder
    try:
        if backend.startswith("onnx"):
            import onnxruntime

            backend, model_file = onnx_file(folder, backend)
            model_dir = model_file.parent  # the export's own copy of the tokenizer and label maps
            config = AutoConfig.from_pretrained(model_dir)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default
            session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        else:
            if threads:
                torch.set_num_threads(threads)
            # safetensors only: a pickled checkpoint can run code when loaded
            dtype = torch.bfloat16 if backend == "torch-bf16" else torch.float32
            model = task.model_class.from_pretrained(folder, use_safetensors=True, dtype=dtype).eval()
            config, model_file = model.config, folder / "model.safetensors"
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except OSError as err:
        raise UsageError(f"cannot load the model saved in {model_dir}: {err}") from None
    saved_labels = [config.id2label[i] for i in range(config.num_labels)]
    if saved_labels != list(task.label_names):
        raise UsageError(f"{model_dir}: the model's labels {saved_labels} differ from results.json {task.label_names}")
    return LoadedRun(folder, results, task, tokenizer, model, backend, session, model_file)


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


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)), dim=-1).numpy()


def encode(run: LoadedRun, items: Sequence[str] | Sequence[Sequence[str]]) -> Any:
    """One padded batch (numpy) of texts, or of pre-split sentences on a token task, as the model saw them."""
    return run.tokenizer(
        [list(item) if run.is_token_task else item for item in items],
        is_split_into_words=run.is_token_task,
        truncation=True,
        max_length=run.max_length,
        padding=True,
        return_tensors="np",
    )


def model_bytes(run: LoadedRun) -> int:
    """Size on disk of the weights this backend reads (safetensors shards, or the ONNX file)."""
    if run.session is not None:
        return run.model_file.stat().st_size
    return sum(f.stat().st_size for f in run.path.glob("model*.safetensors"))


def text_logits(run: LoadedRun, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """[n_texts, n_outputs] raw model outputs (logits; the score itself for regression)."""
    out = []
    for start in range(0, len(texts), batch_size):
        out.append(run.logits(encode(run, texts[start : start + batch_size])))
    return np.concatenate(out) if out else np.zeros((0, len(run.task.label_names)), dtype=np.float32)


def text_probabilities(run: LoadedRun, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """[n_texts, n_labels] class probabilities (classification runs)."""
    return _softmax(text_logits(run, texts, batch_size))


def word_logits(
    run: LoadedRun, sentences: Sequence[Sequence[str]], batch_size: int = 64
) -> list[tuple[np.ndarray, list[int]]]:
    """Per sentence, ([n_words_scored, n_labels] logits at each word's first sub-token, those words' indices).

    A word gets no row when truncation at max_seq_length cut it off or when it has no sub-token at
    all (e.g. a lone zero-width space): the Trainer does not score those words either.
    """
    out: list[tuple[np.ndarray, list[int]]] = []
    for start in range(0, len(sentences), batch_size):
        chunk = [list(words) for words in sentences[start : start + batch_size]]
        batch = encode(run, chunk)
        logits = run.logits(batch)
        for i in range(len(chunk)):
            firsts, ids, previous = [], [], None
            for position, word_id in enumerate(batch.word_ids(batch_index=i)):
                if word_id is not None and word_id != previous:
                    firsts.append(position)
                    ids.append(word_id)
                previous = word_id
            out.append((logits[i, firsts], ids))
    return out


def word_probabilities(run: LoadedRun, sentences: Sequence[Sequence[str]], batch_size: int = 64) -> list[np.ndarray]:
    """Per sentence, [n_words_scored, n_labels]: the scored words' probabilities (see word_logits)."""
    return [_softmax(logits) for logits, _ in word_logits(run, sentences, batch_size)]


def ensemble_text_probabilities(runs: Sequence[LoadedRun], texts: Sequence[str]) -> np.ndarray:
    return np.mean([text_probabilities(run, texts) for run in runs], axis=0)


def ensemble_text_scores(runs: Sequence[LoadedRun], texts: Sequence[str]) -> np.ndarray:
    """Regression: the mean of the runs' predicted numbers, [n_texts]."""
    return np.mean([text_logits(run, texts)[:, 0] for run in runs], axis=0)


def ensemble_word_probabilities_with_ids(
    runs: Sequence[LoadedRun], sentences: Sequence[Sequence[str]]
) -> list[tuple[np.ndarray, list[int]]]:
    """Per sentence, the runs' mean probabilities over the words every run scored, and those words' indices."""
    per_run = [[(_softmax(logits), ids) for logits, ids in word_logits(run, sentences)] for run in runs]
    out = []
    for i in range(len(sentences)):
        common = set.intersection(*(set(p[i][1]) for p in per_run))  # shortest truncation wins
        ids = [w for w in per_run[0][i][1] if w in common]
        probs = [p[i][0][[p[i][1].index(w) for w in ids]] for p in per_run]
        out.append((np.mean(probs, axis=0), ids))
    return out


def ensemble_word_probabilities(runs: Sequence[LoadedRun], sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
    return [probs for probs, _ in ensemble_word_probabilities_with_ids(runs, sentences)]


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


def empty_record(run: LoadedRun, text: str = "") -> dict[str, Any]:
    """The prediction for a blank input line: the record's shape, with nothing predicted."""
    if run.is_token_task:
        return {"text": text, "entities": []}
    if run.is_regression:
        return {"text": text, "score": None}
    return {"text": text, "label": None, "probability": None, "probabilities": {}}


def label_texts(runs: Sequence[LoadedRun], texts: Sequence[str]) -> list[dict[str, Any]]:
    """One JSON-able record per text: label + probability, a score (regression), or entities with character spans."""
    first = runs[0]
    labels = list(first.task.label_names)
    if first.is_regression:
        scores = ensemble_text_scores(runs, texts)
        return [{"text": text, "score": float(v)} for text, v in zip(texts, scores, strict=True)]
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
    scored = ensemble_word_probabilities_with_ids(runs, [[w for w, _ in words] for words in split])
    records = []
    for text, words, (p, ids) in zip(texts, split, scored, strict=True):
        tags = [labels[int(i)] for i in p.argmax(-1)] if ids else []
        scores = [float(v) for v in p.max(-1)] if ids else []
        entities = tags_to_entities(tags, [words[w][1] for w in ids], scores, text)
        record = {"text": text, "entities": entities}
        if len(ids) < len(words):  # cut off by truncation, or no sub-token at all
            record["words_not_labelled"] = len(words) - len(ids)
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
    if first.is_regression:
        scores = ensemble_text_scores(runs, [r["text"] for r in rows])
        gold = np.array([float(r["label"]) for r in rows], dtype=np.float32)
        return first.task.compute_metrics(EvalPrediction(predictions=scores[:, None], label_ids=gold))
    label2id = first.task.label2id
    if not first.is_token_task:
        probs = ensemble_text_probabilities(runs, [r["text"] for r in rows])
        labels = np.array([label2id[r["label"]] for r in rows])
        return first.task.compute_metrics(EvalPrediction(predictions=probs, label_ids=labels))
    scored = ensemble_word_probabilities_with_ids(runs, [r["tokens"] for r in rows])
    width = max((len(ids) for _, ids in scored), default=0)
    predictions = np.zeros((len(rows), width, len(label2id)), dtype=np.float32)
    label_ids = np.full((len(rows), width), -100)
    for i, (row, (p, ids)) in enumerate(zip(rows, scored, strict=True)):
        predictions[i, : len(ids)] = p
        label_ids[i, : len(ids)] = [label2id[row["tags"][w]] for w in ids]
    return first.task.compute_metrics(EvalPrediction(predictions=predictions, label_ids=label_ids))
