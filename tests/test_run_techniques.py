"""End to end through run.py: a --peft lora run with --adversarial fgm: their records, the folder loaded by
predict.py like any run, the run resumed from its adapter checkpoint to the same scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import predict
from finetune_lab import export
from run import main
from tests.conftest import TINY_TRAINING

NER = ["--task", "ner", "--max_train_samples", "64", "--max_eval_samples", "20", "--max_test_samples", "20"]
QUIET = ["--report_to", "none", "--seed", "7", *TINY_TRAINING]


def test_a_lora_fgm_run_records_both_loads_like_any_run_and_resumes(tiny_model_dir, capsys):
    argv = [*NER, "--model_name_or_path", str(tiny_model_dir), *QUIET, "--output_dir", "runs/lora"]
    argv += ["--peft", "lora", "--lora_r", "4", "--adversarial", "fgm", "--adv_epsilon", "0.5"]
    results = main(argv)
    run_dir = Path("runs/lora")
    saved = json.loads((run_dir / "results.json").read_text())
    peft = saved["peft"]
    assert peft["method"] == "lora" and peft["r"] == 4 and peft["target_modules"] == ["query", "value"]
    assert 0 < peft["trainable_parameters"] == saved["trainable_parameters"] < 0.1 * saved["parameters"]
    assert saved["options"]["peft"]["peft"] == "lora" and saved["options"]["adversarial"]["adv_epsilon"] == 0.5
    assert saved["adversarial"] == {
        "method": "fgm",
        "epsilon": 0.5,
        "perturbs": "word embedding output (the embeddings are frozen)",
        "norm": "L2 over the batch's whole perturbation",
    }
    assert "lora adapters" in saved["model"]
    printed = capsys.readouterr().out
    assert f"{peft['trainable_parameters']:,} of {peft['all_parameters']:,} parameters trainable" in printed
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists() and (run_dir / "model.safetensors").exists()

    # predict.py loads the folder like any run: its test score is the run's own
    (run_dir.parent / "in.txt").write_text("EU rejects German call\n")
    out = predict.main([str(run_dir), "--evaluate", "--input", str(run_dir.parent / "in.txt"), "--format", "jsonl"])
    assert out["test"]["f1"] == pytest.approx(results["test"]["f1"], abs=1e-9)
    assert len(out["records"]) == 1
    # and exports like any run (issue 15: PEFT runs export their merged weights)
    record = export.export_run(run_dir)
    assert record["max_abs_logit_diff"]["onnx-fp32"] < 1e-4
    assert record["test"]["onnx-fp32"]["f1"] == pytest.approx(results["test"]["f1"], abs=1e-9)

    # cut short after epoch 1: --resume continues from its checkpoint (the adapter) to the same result
    checkpoints = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert [p.name for p in checkpoints] == ["checkpoint-4", "checkpoint-8"]
    assert (checkpoints[0] / "adapter_model.safetensors").exists()
    shutil.rmtree(checkpoints[1])
    (run_dir / "results.json").unlink()
    resumed = main([*argv, "--resume"])
    assert "resume: continuing from runs/lora/checkpoint-4" in capsys.readouterr().out
    assert resumed["train"]["steps"] == 8
    for split in ("dev", "test"):  # the same scores (timings aside)
        assert scores(resumed[split]) == scores(results[split]) and "f1" in scores(results[split])


def scores(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("runtime", "samples_per_second", "steps_per_second")}
