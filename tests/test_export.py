"""export.py: ONNX fp32 + int8 that agree with PyTorch, reload, keep dynamic axes; refusals are clear."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from finetune_lab import export, inference
from finetune_lab.errors import TrainingError, UsageError
from predict import main as predict_main

TEXTS = ["EU rejects German call to boycott British lamb .", "a fine film", "Peter Blackburn", "dull, slow and long"]


@pytest.mark.parametrize("task", ["sentiment", "ner"])
def test_export_agrees_with_pytorch_and_reloads(deploy_runs, task):
    folder = deploy_runs[task]
    record = json.loads((folder / "onnx" / "export.json").read_text())
    for name in ("model.onnx", "model.int8.onnx", "config.json", "tokenizer.json"):
        assert (folder / "onnx" / name).is_file(), name
    assert record["files_bytes"]["model.int8.onnx"] < record["files_bytes"]["model.onnx"] / 2
    # batch and sequence axes are symbolic in the graph, not the export example's 2 x N
    graph = onnx.load(folder / "onnx" / "model.onnx", load_external_data=False).graph
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"] and not any(d.dim_value for d in dims)

    torch_run = inference.load_run(folder)
    fp32, int8 = inference.load_run(folder, "onnx-fp32"), inference.load_run(folder, "onnx-int8")
    assert fp32.model is None and int8.model is None  # the PyTorch weights are not loaded for ONNX
    # the check recorded in export.json, recomputed: the metrics on the test set, backend by backend
    rows = inference.load_test_rows(torch_run)
    assert record["test_examples"] == len(rows) == torch_run.results["test"]["examples"]
    for backend, run in (("torch", torch_run), ("onnx-fp32", fp32), ("onnx-int8", int8)):
        assert record["test"][backend] == pytest.approx(inference.evaluate([run], rows)), backend
    assert record["max_abs_logit_diff"]["onnx-fp32"] < 1e-4
    scale = record["max_abs_logit_torch"]
    assert scale > 3  # the loud head: logits far from 0
    assert 0 < record["max_abs_logit_diff"]["onnx-int8"] < 0.5 * scale  # quantised: close, not equal

    # int8 over the whole test set: errors a small part of the logits' spread, nearly the same argmax
    batches = export.test_inputs(torch_run, rows, 64)
    reference, quantised = (
        np.concatenate([export.real_positions(torch_run, b, run.logits(b)).reshape(-1, len(run.task.label_names))
                        for b in batches])
        for run in (torch_run, int8)
    )  # fmt: skip
    error = np.sqrt(np.mean((quantised - reference) ** 2)) / np.std(reference)
    agree = np.mean(quantised.argmax(-1) == reference.argmax(-1))
    assert 0 < error < 0.15 and agree >= 0.9, (error, agree)  # measured: ~0.05 and ~0.97

    # shapes the export never saw: batch 1 and 4, short and long texts
    for texts in (TEXTS[:1], TEXTS):
        batch = inference.encode(torch_run, [t.split() for t in texts] if torch_run.is_token_task else texts)
        reference = torch_run.logits(batch)
        np.testing.assert_allclose(fp32.logits(batch), reference, atol=1e-4)
        assert int8.logits(batch).shape == reference.shape
        assert np.abs(int8.logits(batch) - reference).max() < scale  # an approximation, not garbage


def test_onnx_backend_takes_int8_when_exported(deploy_runs, tmp_path):
    run = inference.load_run(deploy_runs["sentiment"], "onnx")
    assert run.backend == "onnx-int8" and run.model_file.name == "model.int8.onnx"
    folder = tmp_path / "fp32-only"
    shutil.copytree(deploy_runs["sentiment"], folder)
    (folder / "onnx" / "model.int8.onnx").unlink()
    assert inference.load_run(folder, "onnx").backend == "onnx-fp32"
    with pytest.raises(UsageError, match=r"--backend onnx-int8: .*model.int8.onnx not found; export the run first"):
        inference.load_run(folder, "onnx-int8")


def test_a_failed_check_installs_nothing(deploy_runs, tmp_path, monkeypatch):
    folder = tmp_path / "run"
    shutil.copytree(deploy_runs["sentiment"], folder)
    before = (folder / "onnx" / "export.json").read_text()
    monkeypatch.setattr(export, "FP32_TOLERANCE", -1.0)  # no difference passes
    with pytest.raises(TrainingError, match="ONNX fp32 logits differ from PyTorch by .*; nothing installed"):
        export.export_run(folder)
    assert (folder / "onnx" / "export.json").read_text() == before  # the previous export is untouched
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no staging left


def test_adapter_only_and_unexported_runs_are_usage_errors(deploy_runs, tmp_path):
    adapter = tmp_path / "lora-run"
    adapter.mkdir()
    shutil.copy(deploy_runs["sentiment"] / "results.json", adapter)
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(UsageError, match="holds a PEFT adapter only .* merge the adapter"):
        export.export_run(adapter)
    plain = tmp_path / "plain"
    shutil.copytree(deploy_runs["ner"], plain, ignore=shutil.ignore_patterns("onnx"))
    with pytest.raises(UsageError, match=r"--backend onnx-fp32: .* not found; export the run first: make export RUN="):
        predict_main([str(plain), "--backend", "onnx", "--input", "x"])


def test_torch_bf16_backend_loads_bf16_weights(deploy_runs):
    """The benchmark's bf16 row (run only where the CPU has native bf16); the backend itself works anywhere."""
    import torch

    fp32, bf16 = inference.load_run(deploy_runs["ner"]), inference.load_run(deploy_runs["ner"], "torch-bf16")
    assert bf16.model.dtype == torch.bfloat16 and bf16.backend == "torch-bf16"
    batch = inference.encode(fp32, [t.split() for t in TEXTS])
    reference = fp32.logits(batch)
    assert bf16.logits(batch).dtype == np.float32
    np.testing.assert_allclose(bf16.logits(batch), reference, atol=0.05 * np.abs(reference).max())
