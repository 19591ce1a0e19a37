"""A run's model as ONNX (fp32) plus an int8 dynamically quantised copy, checked on the run's test set.

Writes RUN/onnx/: model.onnx, model.int8.onnx, the tokenizer, config.json (the label maps) and
export.json (what was checked, and how it came out). The folder is built aside and swapped in
whole, so an interrupted export never leaves a half-written RUN/onnx behind.

The exporter is `torch.onnx.export(dynamo=True)` (torch's default since 2.9; it needs `onnxscript`,
a plain PyPI package, so it works offline). The legacy TorchScript tracer (`dynamo=False`) was
tried and rejected: it bakes shape-dependent branches of transformers 5's attention-mask code into
the graph, and a tiny BERT's logits then differed from PyTorch by ~7e-3 on other batch shapes,
against ~3e-9 with the dynamo exporter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune_lab import inference
from finetune_lab.errors import TrainingError
from finetune_lab.metrics import greater_is_better

# The fp32 export must compute what PyTorch computes: a larger difference means a broken graph.
FP32_TOLERANCE = 1e-3
# The target for the quantised copy: at most half a point of the main metric lost.
INT8_MAX_POINTS_LOST = 0.5


class LogitsOnly(torch.nn.Module):
    """The model with plain tensor inputs and the logits as its one output (what ONNX needs)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


def input_names(run: inference.LoadedRun) -> list[str]:
    """The inputs the tokenizer produces and the model takes, in LogitsOnly's order."""
    optional = {"token_type_ids"} - set(run.tokenizer.model_input_names)  # e.g. RoBERTa has none
    return [name for name in inference.MODEL_INPUTS if name not in optional]


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporter's known noise, silenced by message: torchvision ops it cannot register (not installed,
    not needed), axis-renaming notes (the shared axes keep the names 'batch' and 'sequence'), a torch
    deprecation inside torch itself, and ORT's suggestion of a pre-processing step that fails on these
    graphs (its symbolic shape inference is incomplete for them) and was no faster when forced."""
    loggers = [logging.getLogger("torch.onnx._internal.exporter._registration"), logging.getLogger()]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"# The axis name: .* will not be used")
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def export_onnx(run: inference.LoadedRun, path: Path) -> None:
    """model.onnx with dynamic batch and sequence axes, weights inside the file (MiniLM: ~90 MB)."""
    names = input_names(run)
    # Two texts of different lengths: a batch and a sequence of size 1 would be specialised away.
    example = run.tokenizer(["an example", "a longer example text to export"], padding=True, return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with quiet_exporter():
        torch.onnx.export(
            LogitsOnly(run.model).eval(),
            (),
            str(path),
            kwargs={name: example[name] for name in names},
            input_names=names,
            output_names=["logits"],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic quantisation: int8 weights of the MatMul/Gemm layers, activations quantised on the fly."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_exporter():
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)


def test_inputs(run: inference.LoadedRun, rows: list[dict], batch_size: int) -> list[Any]:
    """The test rows as tokenizer batches (numpy), as inference tokenizes them."""
    items = [r["tokens"] if run.is_token_task else r["text"] for r in rows]
    return [inference.encode(run, items[start : start + batch_size]) for start in range(0, len(items), batch_size)]


def real_positions(run: inference.LoadedRun, batch: Any, values: np.ndarray) -> np.ndarray:
    """Token tasks: the values at real tokens only (padding's logits mean nothing); else all."""
    return values[batch["attention_mask"].astype(bool)] if run.is_token_task else values


def max_logit_difference(reference: inference.LoadedRun, other: inference.LoadedRun, batches: list[Any]) -> float:
    """The largest |logit difference| over the test batches."""
    worst = 0.0
    for batch in batches:
        diff = real_positions(reference, batch, np.abs(reference.logits(batch) - other.logits(batch)))
        worst = max(worst, float(diff.max(initial=0.0)))
    return worst


def export_run(path: str | Path, batch_size: int = 64) -> dict[str, Any]:
    """Export, quantise, check on the test set; returns (and writes) the export.json record."""
    import onnx
    import onnxruntime

    started = time.time()
    run = inference.load_run(path, "torch")
    folder = run.path / inference.ONNX_DIR
    staging = run.path / ".onnx-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        fp32_file, int8_file = staging / inference.ONNX_FILES["onnx-fp32"], staging / inference.ONNX_FILES["onnx-int8"]
        export_onnx(run, fp32_file)
        quantize_int8(fp32_file, int8_file)
        run.tokenizer.save_pretrained(staging)
        run.model.config.save_pretrained(staging)  # id2label / label2id: the label maps
        record = check_export(run, staging, batch_size)
        record.update({
            "run": str(run.path),
            "task": run.results["task"],
            "labels": list(run.task.label_names),
            "exporter": "torch.onnx.export(dynamo=True)",
            "opset": int(next(o.version for o in onnx.load(fp32_file, load_external_data=False).opset_import
                              if o.domain in ("", "ai.onnx"))),
            "quantization": "onnxruntime.quantization.quantize_dynamic(weight_type=QInt8)",
            "files_bytes": {
                "model.safetensors": inference.model_bytes(run),
                "model.onnx": fp32_file.stat().st_size,
                "model.int8.onnx": int8_file.stat().st_size,
            },
            "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
            "seconds": round(time.time() - started, 1),
        })  # fmt: skip
        (staging / "export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        fp32_diff = record["max_abs_logit_diff"]["onnx-fp32"]
        if not fp32_diff <= FP32_TOLERANCE:
            raise TrainingError(
                f"export check failed: ONNX fp32 logits differ from PyTorch by {fp32_diff:.2e} "
                f"(tolerance {FP32_TOLERANCE:g}) on {run.path}'s test set; nothing installed"
            )
        old = run.path / ".onnx-old"
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record


def check_export(run: inference.LoadedRun, staging: Path, batch_size: int) -> dict[str, Any]:
    """PyTorch fp32 vs ONNX fp32 vs ONNX int8 on the run's own test rows: logit differences and metrics."""
    import onnxruntime

    rows = inference.load_test_rows(run)
    batches = test_inputs(run, rows, batch_size)
    metric = run.results.get("main_metric")
    record: dict[str, Any] = {
        "test_examples": len(rows),
        "main_metric": metric,
        "max_abs_logit_diff": {},
        # the scale the differences compare with: the largest |logit| PyTorch gives on the test set
        "max_abs_logit_torch": max(
            float(real_positions(run, b, np.abs(run.logits(b))).max(initial=0.0)) for b in batches
        ),
        "test": {"torch": inference.evaluate([run], rows)},
    }
    for backend, name in inference.ONNX_FILES.items():
        session = onnxruntime.InferenceSession(str(staging / name), providers=["CPUExecutionProvider"])
        onnx_run = inference.LoadedRun(run.path, run.results, run.task, run.tokenizer, None, backend, session)
        record["max_abs_logit_diff"][backend] = max_logit_difference(run, onnx_run, batches)
        record["test"][backend] = inference.evaluate([onnx_run], rows)
    main = {backend: scores.get(metric) for backend, scores in record["test"].items()}
    record["main"] = main
    if main["torch"] is not None and main["onnx-int8"] is not None:
        sign = 1 if greater_is_better(metric) else -1
        lost = 100 * sign * (main["torch"] - main["onnx-int8"])  # points of the main metric
        record["int8_points_lost"] = round(lost, 4)
        record["int8_within_target"] = lost <= INT8_MAX_POINTS_LOST
    return record
