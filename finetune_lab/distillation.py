"""Knowledge distillation: train a (smaller) student on finished teacher runs' soft targets plus the gold labels.

    python run.py --task sentiment --teacher outputs/sentiment/RUN --student_layers 3

Classification, per text, or per labelled token for token classification (every position whose
gold label is not -100, the positions the task loss and the metrics use):

    loss = alpha * T^2 * KL(p_teacher || p_student) + (1 - alpha) * CE(gold),   p = softmax(logits / T)

Several teachers: p_teacher is the mean of their softened probabilities. The T^2 factor keeps the
soft term's gradients on the scale of the gold term's whatever T is (Hinton et al., 2015).
Regression: loss = alpha * MSE(student, mean teacher output) + (1 - alpha) * MSE(student, gold).
Evaluation uses the task's own loss, so a student's dev loss compares with any other run's.

The teachers' outputs on the training split are computed once, before training, and cached on
disk beside the tokenized data, keyed on the teacher's weights and the exact model inputs: every
epoch, every process and the next student on the same data read them back. Each training example
carries its row number (`teacher_index`), so shuffling, length grouping, gradient accumulation and
several processes all find its targets.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import PreTrainedModel, Trainer

from finetune_lab.errors import UsageError
from finetune_lab.families import TokenClassificationTask
from finetune_lab.tokenization import _tokenizer_digest, tokenized_cache_root

TEACHER_INDEX = "teacher_index"
DEFAULT_ALPHA, DEFAULT_TEMPERATURE = 0.5, 2.0
# Bump when the cached arrays change meaning without the teacher or the inputs changing.
CACHE_FORMAT = 1
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


# --- the loss ------------------------------------------------------------------------------------
def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, gold_loss: torch.Tensor, alpha: float, temperature: float | None
) -> torch.Tensor:
    """alpha * soft term + (1 - alpha) * `gold_loss`, the soft term a mean over the rows.

    `student` [rows, outputs]; `teacher` [teachers, rows, outputs]. `temperature` None: regression
    (MSE to the teachers' mean output); else KL(p_teacher || p_student) at that temperature, times T^2.
    """
    student = student.float()
    teacher = teacher.float()
    if student.shape[0] == 0:  # a batch with no labelled token: nothing to match, keep the graph
        soft = student.sum() * 0.0
    elif temperature is None:
        soft = F.mse_loss(student, teacher.mean(dim=0))
    else:
        target = torch.softmax(teacher / temperature, dim=-1).mean(dim=0)
        log_student = F.log_softmax(student / temperature, dim=-1)
        soft = F.kl_div(log_student, target, reduction="batchmean") * temperature**2
    return alpha * soft + (1 - alpha) * gold_loss


@dataclasses.dataclass(frozen=True)
class TeacherTargets:
    """Every teacher's outputs on the training split, `values` [teachers, rows, outputs]; example i owns
    rows offsets[i]:offsets[i+1] (one row per text; one per labelled token in token classification)."""

    values: torch.Tensor
    offsets: torch.Tensor

    def for_examples(self, index: torch.Tensor) -> torch.Tensor:
        """[teachers, rows, outputs] for the examples `index`, in order (row-major, as a boolean mask takes them)."""
        spans = zip(self.offsets[index].tolist(), self.offsets[index + 1].tolist(), strict=True)
        rows = torch.cat([torch.arange(start, end) for start, end in spans])
        return self.values[:, rows]


class DistillationTrainer(Trainer):
    """A Trainer whose training loss mixes the teachers' soft targets with the gold labels (see the module doc)."""

    # compute_loss returns a mean over its own batch: Trainer divides it by the gradient accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self, *args: Any, targets: TeacherTargets, alpha: float, temperature: float | None, token_level: bool, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.targets, self.alpha, self.temperature, self.token_level = targets, alpha, temperature, token_level

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if TEACHER_INDEX not in self._signature_columns:  # keep the column, though the model does not take it
            self._signature_columns.append(TEACHER_INDEX)

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        index = inputs.pop(TEACHER_INDEX, None)
        if index is None:  # evaluation data carries no teacher rows: the task's own loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        outputs = model(**inputs)  # with labels: the model's own gold loss, a mean over this batch
        labels = inputs["labels"]
        student = outputs.logits[labels != -100] if self.token_level else outputs.logits
        teacher = self.targets.for_examples(index.cpu()).to(student.device)
        if teacher.shape[1] != student.shape[0]:
            raise RuntimeError(
                f"distillation: {student.shape[0]} student rows but {teacher.shape[1]} teacher rows in a batch; "
                "the cached teacher outputs do not match the training data"
            )
        loss = distillation_loss(student, teacher, outputs.loss, self.alpha, self.temperature)
        return (loss, outputs) if return_outputs else loss


# --- teacher outputs, computed once ----------------------------------------------------------
@torch.inference_mode()
def teacher_outputs(
    model: PreTrainedModel, dataset: Dataset, collator: Callable, batch_size: int, token_level: bool
) -> tuple[np.ndarray, np.ndarray]:
    """`model`'s outputs on every example of `dataset` in eval mode: (rows [n, outputs], offsets [examples + 1]).

    Batches of similar length (sorted), so little padding is computed; rows come back in dataset order.
    """
    model.eval()
    device = next(model.parameters()).device
    data = dataset.select_columns([c for c in (*MODEL_INPUTS, "labels") if c in dataset.column_names])
    order = np.argsort([len(ids) for ids in data["input_ids"]], kind="stable")
    per_example: list[np.ndarray] = [np.zeros((0, model.config.num_labels), np.float32)] * len(data)
    for start in range(0, len(order), batch_size):
        chosen = [int(i) for i in order[start : start + batch_size]]
        batch = collator([data[i] for i in chosen])
        labels = batch.pop("labels")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
        for row, i in enumerate(chosen):
            per_example[i] = (logits[row][labels[row] != -100] if token_level else logits[row : row + 1]).numpy()
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in per_example])]).astype(np.int64)
    return np.concatenate(per_example).astype(np.float32), offsets


def inputs_digest(dataset: Dataset) -> str:
    """A digest of what the teacher sees and which rows are kept: the model inputs and the labels, by content
    (the same however the data was cached or chunked)."""
    digest = hashlib.sha256()
    table = dataset.with_format("arrow")[:]
    for name in [c for c in (*MODEL_INPUTS, "labels") if c in dataset.column_names]:
        column = table.column(name)
        nested = pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
        parts = [pc.list_value_length(column), pc.list_flatten(column)] if nested else [column]
        for part in parts:
            values = np.ascontiguousarray(part.to_numpy())
            digest.update(f"{name}:{values.dtype}:{values.size};".encode())
            digest.update(values.tobytes())
    return digest.hexdigest()


def weights_digest(run_dir: Path) -> str:
    """A digest of a run folder's model: its config and every safetensors file."""
    digest = hashlib.sha256()
    for path in sorted([run_dir / "config.json", *run_dir.glob("*.safetensors")]):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez via a temporary file and a rename: a reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the teachers of a run ---------------------------------------------------------------------
@dataclasses.dataclass
class Teacher:
    run: Any  # inference.LoadedRun; its model is dropped once its outputs are known
    parameters: int
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)  # where they came from, how long they took


class Distillation:
    """What --teacher adds to a run. Without teachers it changes nothing: the data as it is, a plain Trainer."""

    def __init__(self, teachers: list[Teacher], task: Any, built: Any, args: Any) -> None:
        self.teachers, self.task, self.built, self.args = teachers, task, built, args
        self.token_level = isinstance(task, TokenClassificationTask)
        self.regression = bool(getattr(task, "regression", False))
        distill = args.distill
        self.alpha = DEFAULT_ALPHA if distill.distill_alpha is None else distill.distill_alpha
        self.temperature = None if self.regression else (distill.distill_temperature or DEFAULT_TEMPERATURE)
        self.targets: TeacherTargets | None = None

    def attach(self, train: Dataset, training: Any, data_args: Any) -> Dataset:
        """The training split with each example's row number; the teachers' outputs on it computed (or read back)."""
        if not self.teachers:
            return train
        inputs = inputs_digest(train)
        tables = [self._outputs(teacher, train, inputs, training, data_args) for teacher in self.teachers]
        offsets = tables[0][1]
        if any(not np.array_equal(o, offsets) for _, o in tables):
            raise RuntimeError("distillation: the teachers' outputs cover different rows of the same data")
        values = torch.from_numpy(np.stack([v for v, _ in tables]))
        self.targets = TeacherTargets(values, torch.from_numpy(offsets))
        return train.add_column(TEACHER_INDEX, list(range(len(train))))

    def _outputs(
        self, teacher: Teacher, train: Dataset, inputs: str, training: Any, data_args: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        root = tokenized_cache_root(data_args)
        key_parts = {"format": CACHE_FORMAT, "teacher": weights_digest(teacher.run.path), "inputs": inputs}
        key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:24]
        path = root / "teacher-outputs" / f"{self.task.name}-{key}.npz" if root is not None else None
        main = training.process_index == 0
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as saved:
                values, offsets = saved["values"], saved["offsets"]
            teacher.outputs = {"cache": str(path), "computed": False}
            if main:
                print(f"distillation: outputs of teacher {teacher.run.path} read from the cache {path}", flush=True)
        else:
            started = time.perf_counter()
            model = teacher.run.model.to(training.device)
            collator = self.task.data_collator(self.built.tokenizer)
            values, offsets = teacher_outputs(
                model, train, collator, training.per_device_eval_batch_size, self.token_level
            )
            seconds = round(time.perf_counter() - started, 2)
            if path is not None:
                _save_npz(path, values=values, offsets=offsets)
            teacher.outputs = {"cache": str(path) if path else None, "computed": True, "seconds": seconds}
            if main:
                where = f", cached in {path}" if path else " (cache off: not kept)"
                print(
                    f"distillation: outputs of teacher {teacher.run.path} on {len(train):,} training examples "
                    f"computed in {seconds:.1f} s{where}",
                    flush=True,
                )
        teacher.run.model = None  # no longer needed: free its memory before training
        return values, offsets

    @property
    def trainer_class(self) -> Callable[..., Trainer]:
        """For build_trainer: a plain Trainer, or one whose loss learns from the teachers."""
        if not self.teachers:
            return Trainer
        if self.targets is None:
            raise RuntimeError("distillation: attach() the training data before building the Trainer")
        return functools.partial(
            DistillationTrainer,
            targets=self.targets,
            alpha=self.alpha,
            temperature=self.temperature,
            token_level=self.token_level,
        )

    def record(self) -> dict[str, Any] | None:
        """For results.json: the teachers, alpha, T, the student's size; None without --teacher."""
        if not self.teachers:
            return None
        return {
            "teachers": [
                {
                    "run": str(t.run.path),
                    "model": t.run.results.get("model"),
                    "parameters": t.parameters,
                    "main_metric": t.run.results.get("main_metric"),
                    "test": (t.run.results.get("test") or {}).get(t.run.results.get("main_metric")),
                    "outputs": t.outputs,
                }
                for t in self.teachers
            ],
            "alpha": self.alpha,
            "temperature": self.temperature,
            "loss": "MSE to the teachers' mean output" if self.regression else "KL(p_teacher || p_student) * T^2",
            "level": "token" if self.token_level else "text",
            "student_layers": self.args.model.student_layers,
            "student_parameters": self.built.model.num_parameters(),
        }


def _load_teacher(path: str) -> Any:
    from finetune_lab.inference import load_run

    try:
        return load_run(path)
    except UsageError as err:
        raise UsageError(f"--teacher {path}: {err}") from None


def prepare_distillation(args: Any, task: Any, built: Any) -> Distillation:
    """The --teacher runs, each checked against this run: same task, labels and tokenizer (else a UsageError)."""
    spec = args.distill.teacher
    paths = [p.strip() for p in spec.split(",")] if spec else []
    if spec and not all(paths):
        raise UsageError(f"--teacher {spec}: an empty run folder in the list; give RUN[,RUN...]")
    if paths and getattr(task, "regression", False) and args.distill.distill_temperature is not None:
        raise UsageError(
            f"--distill_temperature: task '{task.name}' predicts a number; its student matches the teacher's "
            "output by MSE, with no temperature: leave the option out"
        )
    teachers = []
    student_tokenizer = _tokenizer_digest(getattr(built.tokenizer, "backend_tokenizer", None))
    for path in paths:
        run = _load_teacher(path)
        if run.results["task"] != task.name:
            raise UsageError(
                f"--teacher {path}: a '{run.results['task']}' run; this run's task is '{task.name}' "
                "(a teacher must be a run of the same task)"
            )
        if list(run.task.label_names) != list(task.label_names):
            raise UsageError(
                f"--teacher {path}: its labels {list(run.task.label_names)} differ from this run's "
                f"{list(task.label_names)} (a teacher must predict the same label set, in the same order)"
            )
        if _tokenizer_digest(getattr(run.tokenizer, "backend_tokenizer", None)) != student_tokenizer:
            raise UsageError(
                f"--teacher {path}: its tokenizer differs from the student's ({built.description}); distillation "
                "needs the same tokenizer: take a student of the teacher's model family (--student_layers K, or a "
                "--model_name_or_path with that tokenizer)"
            )
        teachers.append(Teacher(run, run.model.num_parameters()))
    return Distillation(teachers, task, built, args)
