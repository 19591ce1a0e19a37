"""The techniques study (benchmarks/study.py): its cells, resuming, and the document it writes from the cells'
results. Real cells on a tiny model check that every variant's options run; no score is checked here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import study  # noqa: E402


def _fake_results(test: float, perturbed: float, trainable: int | None = None) -> dict:
    """A results.json of a sentiment cell, with what the document reads."""
    results = {
        "main_metric": "accuracy",
        "parameters": 1000,
        "trainable_parameters": 1000 if trainable is None else trainable,
        "test": {"accuracy": test},
        "perturbed_eval": {study.PERTURBATION: {"accuracy": perturbed}},
        "train": {"epoch_seconds": [10.0, 12.0], "peak_memory_mb": 500.0, "seconds": 22.0},
    }
    if trainable is not None:
        results["peft"] = {"trainable_parameters": trainable, "all_parameters": 1000}
    return results


def _finish(runs_dir: Path, cell: study.Cell, results: dict, run_args: list[str] = ()) -> None:
    folder = study.cell_dir(runs_dir, cell)
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    (folder / study.CELL_FILE).write_text(json.dumps([*cell.options(runs_dir), *run_args]))


def test_finished_cells_are_not_run_again_and_changed_options_are_refused(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(study, "run_cell", lambda runs_dir, cell, run_args, log: ran.append(cell.name) or 1.0)
    monkeypatch.setattr(study, "machine_line", lambda: "Machine: test")
    runs = tmp_path / "runs"
    cells = study.plan(["sentiment"], ["low"], ["full fine-tuning", "FGM"], {"low": [1, 2]})
    _finish(runs, cells[0], _fake_results(0.8, 0.7))
    argv = ["--tasks", "sentiment", "--regimes", "low", "--variants", "full fine-tuning,FGM", "--seeds", "1,2"]
    doc = str(tmp_path / "a.md")
    study.main([*argv, "--runs_dir", str(runs), "--doc", doc])
    assert ran == ["low-fgm-seed1", "low-full-ft-seed2", "low-fgm-seed2"]  # the finished cell is skipped
    with pytest.raises(SystemExit, match=r"ran with other options .*--rerun"):
        study.main([*argv, "--runs_dir", str(runs), "--run_args", "--learning_rate 1e-3", "--doc", doc])


def test_the_document_reports_mean_and_std_over_seeds_and_keeps_the_rest_of_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "machine_line", lambda: "Machine: test")
    runs = tmp_path / "runs"
    variants = ["full fine-tuning", "LoRA", "FGM"]
    cells = study.plan(["sentiment"], ["low"], variants, {"low": [1, 2, 3]})
    scores = {"full fine-tuning": [0.80, 0.81, 0.82], "LoRA": [0.70, 0.71, 0.72], "FGM": [0.80, 0.82, 0.81]}
    for cell in cells:
        test = scores[cell.variant][cell.seed - 1]
        _finish(runs, cell, _fake_results(test, test - 0.1, trainable=10 if cell.variant == "LoRA" else None))
    doc = tmp_path / "techniques.md"
    doc.write_text("# Techniques\n\n## Options\n\nkept as written\n")
    argv = ["--tasks", "sentiment", "--regimes", "low", "--variants", ",".join(variants), "--seeds", "1,2,3"]
    study.main([*argv, "--runs_dir", str(runs), "--doc", str(doc), "--report_only"])
    text = doc.read_text()
    assert "## Options\n\nkept as written" in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "| 3 | 0.8100 ± 0.0100 | 0.7100 ± 0.0100 | 0.1000 ± 0.0000 |" in rows["full fine-tuning"]
    assert "-0.1000: hurts" in rows["LoRA"] and "10 (1.00%)" in rows["LoRA"]
    assert "within seed noise" in rows["FGM"] and "1,000 (100.00%)" in rows["FGM"]
    assert "| 11 | 500 |" in rows["FGM"]  # median seconds per epoch, peak memory
    assert "9 of 9 cells finished" in text
    # written again: the study's part is replaced, not appended
    study.main([*argv, "--runs_dir", str(runs), "--doc", str(doc), "--report_only"])
    assert doc.read_text().count(study.START) == 1


def test_every_cell_is_a_valid_run_and_a_real_one_fills_its_row(tiny_model_dir, tmp_path):
    from finetune_lab.arguments import parse_arguments

    runs = tmp_path / "runs"
    study.write_domain_shift_sets(runs)  # the --extra_eval files the sentiment cells name
    for cell in study.plan(["ner", "sentiment"], ["low", "full"], list(study.VARIANTS), {"low": [1], "full": [1]}):
        parse_arguments([*cell.options(runs), "--output_dir", str(tmp_path / "x")])  # a bad option: exit 2

    small = f"--model_name_or_path {tiny_model_dir} --max_train_samples 24 --max_eval_samples 16"
    small += " --max_predict_samples 16 --num_train_epochs 1 --per_device_train_batch_size 8"
    argv = ["--tasks", "sentiment", "--regimes", "low", "--variants", "LoRA", "--seeds", "1", "--runs_dir", str(runs)]
    study.main([*argv, "--run_args", small, "--doc", str(tmp_path / "t.md")])
    results = study.finished(runs, study.Cell("sentiment", "low", "LoRA", 1))
    assert study.perturbed_score(results) is not None and study.extra_score(results, "amazon") is not None
    count, share = study.trainable(results)
    assert 0 < share < 50
    text = (tmp_path / "t.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| LoRA |"))
    assert f"{count:,} ({share:.2f}%)" in row and "1 of 1 cells finished" in text
