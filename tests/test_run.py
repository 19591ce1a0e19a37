"""End to end: run.py on a tiny BERT and a few hundred examples, then reload what it saved."""

from __future__ import annotations

import csv
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

from finetune_lab.families import align_labels_to_words
from finetune_lab.metrics import entity_metrics
from finetune_lab.threads import usable_cores
from run import main
from tasks.ner import ConllNer
from tasks.sentiment import MovieReviewSentiment
from tests.conftest import ROOT, wandb_inspect

HF_METRIC_FILES = ("train_results", "eval_results", "predict_results", "all_results")

QUICK = [
    "--num_train_epochs",
    "2",
    "--per_device_train_batch_size",
    "16",
    "--learning_rate",
    "5e-3",
    "--disable_tqdm",
    "true",
    "--logging_steps",
    "5",
]


def wandb_summary(wandb_dir: Path) -> dict:
    """The offline run, read back with wandb's own reader (`wandb leet inspect`)."""
    runs = sorted(wandb_dir.glob("wandb/offline-run-*"))
    assert len(runs) == 1, runs
    return json.loads(wandb_inspect(runs[0], "--summary", "--json"))


def test_ner_end_to_end(tiny_model_dir, tmp_path):
    results = main(
        [
            "--task",
            "ner",
            "--model_name_or_path",
            str(tiny_model_dir),
            "--max_train_samples",
            "240",
            "--max_eval_samples",
            "50",
            "--max_test_samples",
            "40",
            *QUICK,
        ]
    )
    run_dir = Path(results["output_dir"])
    assert run_dir.parent == Path("outputs/ner")
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["data"]["kept"] == {"train": 14041, "validation": 3250, "test": 3453}
    assert saved["dev"]["examples"] == 50 and saved["test"]["examples"] == 40
    assert set(saved["test"]) >= {"precision", "recall", "f1", "token_accuracy", "per_class/PER/f1"}
    assert [round(e["epoch"]) for e in saved["dev_history"]] == [1, 2]
    assert saved["train"]["samples_per_second"] > 0 and len(saved["train"]["epoch_seconds"]) == 2
    assert saved["environment"]["packages"]["transformers"] and "commit" in saved["environment"]["git"]
    assert saved["options"]["training"]["learning_rate"] == 5e-3

    # Reload the saved model and score the same test sentences by hand: the same entity F1.
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    model = AutoModelForTokenClassification.from_pretrained(run_dir).eval()
    assert model.config.id2label == dict(enumerate(ConllNer.label_names))
    test = ConllNer().load_embedded(__import__("finetune_lab.readers").readers.DataReport())["test"][:40]
    true, pred = [], []
    for row in test:
        enc = align_labels_to_words(
            {"tokens": [row["tokens"]], "tags": [row["tags"]]}, tokenizer, ConllNer().label2id, 128
        )
        labels = np.array(enc["labels"][0])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([enc["input_ids"][0]])).logits[0].numpy()
        keep = labels != -100
        true.append([model.config.id2label[i] for i in labels[keep]])
        pred.append([model.config.id2label[i] for i in logits.argmax(-1)[keep]])
    assert entity_metrics(true, pred)["f1"] == pytest.approx(saved["test"]["f1"], abs=1e-9)
    assert entity_metrics(true, pred)["token_accuracy"] == pytest.approx(saved["test"]["token_accuracy"], abs=1e-9)

    tagger = pipeline("token-classification", model=str(run_dir))
    assert all(e["entity"] in ConllNer.label_names for e in tagger("EU rejects German call"))

    # predictions.conll: the same test sentences, word by word; scored again, the same entity F1
    blocks = (run_dir / "predictions.conll").read_text().strip("\n").split("\n\n")
    words = [[line.split(" ") for line in block.splitlines()] for block in blocks]
    assert [[w[0] for w in s] for s in words] == [row["tokens"] for row in test]
    assert [[w[1] for w in s] for s in words] == [row["tags"] for row in test]
    rescored = entity_metrics([[w[1] for w in s] for s in words], [[w[2] for w in s] for s in words])
    assert rescored["f1"] == pytest.approx(saved["test"]["f1"], abs=1e-9)
    assert json.loads((run_dir / "predict_results.json").read_text())["predict_f1"] == pytest.approx(
        saved["test"]["f1"]
    )

    run = wandb_summary(tmp_path)
    assert run["project"] == "finetune-lab" and run["name"] == f"{saved['run_name']} · embedded"
    assert {"ner", "fp32", "seed42"} <= set(run["tags"]) or {"ner", "bf16"} <= set(run["tags"])
    assert run["summary"]["test/f1"] == pytest.approx(saved["test"]["f1"])
    assert run["summary"]["eval/best_f1"] == pytest.approx(saved["dev"]["f1"])
    assert run["config"]["data"]["kept"]["train"] == 14041 and run["config"]["data"]["used"]["train"] == 240
    assert run["summary"]["data/train/examples"] == 240


def test_sentiment_end_to_end(tiny_model_dir, tmp_path, capsys):
    saved_umask = os.umask(0o027)  # a group-readable run folder: every file it writes is rw-r-----
    try:
        results = run_sentiment(tiny_model_dir)
    finally:
        os.umask(saved_umask)
    check_sentiment_run(results, tmp_path, capsys)


def run_sentiment(tiny_model_dir):
    return main(
        [
            "--task",
            "sentiment",
            "--model_name_or_path",
            str(tiny_model_dir),
            "--max_train_samples",
            "400",
            "--max_eval_samples",
            "80",
            "--max_test_samples",
            "64",
            "--report_to",
            "none",
            "--output_dir",
            "runs/s1",
            *QUICK,
        ]
    )


def check_sentiment_run(results, tmp_path, capsys):
    saved = json.loads(Path("runs/s1/results.json").read_text())
    assert results["test"] == saved["test"] and saved["test"]["examples"] == 64
    # the resolved settings: printed before training starts, stored in results.json (and W&B config)
    settings = saved["settings"]
    assert settings["examples"] == {"train": 400, "validation": 80, "test": 64}  # after the limits
    assert (settings["learning_rate"], settings["num_train_epochs"], settings["per_device_train_batch_size"]) == (
        5e-3,
        2,
        16,
    )
    assert (settings["max_seq_length"], settings["seed"], settings["task"]) == (128, 42, "sentiment")
    assert settings["data"].startswith("embedded movie-review sentences") and settings["experiment_file"] is None
    printed = capsys.readouterr().out
    block = printed[printed.index("settings:") : printed.index("'train_runtime'")]
    assert "  examples                     train 400, validation 80, test 64" in block
    assert "  learning_rate                5e-3" in block and "'loss'" not in printed[: printed.index("settings:")]
    assert set(saved["test"]) >= {
        "accuracy",
        "macro_f1",
        "per_class/positive/f1",
        "per_class/negative/support",
    }
    support = saved["test"]["per_class/positive/support"] + saved["test"]["per_class/negative/support"]
    assert support == 64
    assert saved["data"]["dropped"] == {"all": {"neutral (rating 0)": 37}}
    assert not list(tmp_path.glob("wandb/offline-run-*"))  # --report_to none: no W&B run

    # Reload through pipeline() and recompute test accuracy on the same sentences.
    from finetune_lab.readers import DataReport

    test = MovieReviewSentiment().load_embedded(DataReport())["test"][:64]
    classify = pipeline("text-classification", model="runs/s1")
    predicted = [p["label"] for p in classify([r["text"] for r in test], batch_size=1)]
    accuracy = np.mean([p == r["label"] for p, r in zip(predicted, test, strict=True)])
    assert accuracy == pytest.approx(saved["test"]["accuracy"], abs=1.01 / 64)  # at most one near-tie flip

    # What HF users look for, beside results.json
    run_dir = Path("runs/s1")
    with open(run_dir / "predictions.tsv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["text"] for r in rows] == [t["text"] for t in test] and [r["gold"] for r in rows] == [
        t["label"] for t in test
    ]
    assert np.mean([r["gold"] == r["predicted"] for r in rows]) == pytest.approx(saved["test"]["accuracy"])
    assert all(0.5 <= float(r["probability"]) <= 1 for r in rows)
    hf = {name: json.loads((run_dir / f"{name}.json").read_text()) for name in HF_METRIC_FILES}
    assert hf["train_results"]["train_samples"] == 400 and hf["train_results"]["train_loss"] == saved["train"]["loss"]
    assert hf["eval_results"]["eval_accuracy"] == saved["dev"]["accuracy"] and hf["eval_results"]["eval_samples"] == 80
    assert hf["predict_results"]["predict_accuracy"] == saved["test"]["accuracy"]
    assert hf["all_results"] == {**hf["train_results"], **hf["eval_results"], **hf["predict_results"]}
    state = json.loads((run_dir / "trainer_state.json").read_text())
    assert (
        state["global_step"] == saved["train"]["steps"] and state["best_model_checkpoint"] == saved["best_checkpoint"]
    )
    card = (run_dir / "README.md").read_text()
    assert card.startswith("---\n") and "generated_from_trainer" in card and "- sentiment" in card
    assert "embedded movie-review sentences" in card and "400 / 80 / 64" in card
    assert f"| test | {saved['test']['accuracy']:.4f} |" in card and f"| dev | {saved['dev']['accuracy']:.4f} |" in card
    assert "trained from scratch" not in card  # fine-tuned from a local model folder
    # umask 027: every file group-readable, none world-readable (results.json was 0600, the weights too)
    modes = {str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode) for p in run_dir.rglob("*") if p.is_file()}
    assert {"results.json", "model.safetensors", "predictions.tsv", "README.md"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode != 0o640} == {}


def test_a_finished_run_is_not_overwritten(tiny_model_dir):
    Path("runs/done").mkdir(parents=True)
    Path("runs/done/results.json").write_text("{}")
    from finetune_lab.errors import UsageError

    with pytest.raises(UsageError, match="already holds a finished run"):
        main(
            [
                "--task",
                "sentiment",
                "--model_name_or_path",
                str(tiny_model_dir),
                "--output_dir",
                "runs/done",
                "--max_train_samples",
                "32",
                "--max_eval_samples",
                "16",
                "--max_test_samples",
                "16",
                *QUICK,
                "--report_to",
                "none",
            ]
        )
    assert Path("runs/done/results.json").read_text() == "{}"


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["--task", "nre"], "unknown task 'nre' (did you mean 'ner'?)"),
        (lambda d: ["--task", "ner", "--epochs", "3"], "unknown option --epochs"),
        (
            lambda d: [
                "--task",
                "ner",
                "--train_file",
                f"{d}/missing.txt",
                "--validation_file",
                f"{d}/missing.txt",
            ],
            "data file not found",
        ),
        (
            lambda d: ["--task", "ner", "--train_file", f"{d}/bad.txt", "--validation_file", f"{d}/bad.txt"],
            "bad.txt:2: expected 'TOKEN ... TAG'",
        ),
        (
            lambda d: [
                "--task",
                "ner",
                "--train_file",
                f"{d}/label.txt",
                "--validation_file",
                f"{d}/label.txt",
            ],
            "label.txt:1: tag 'B-CITY' is not in the label set",
        ),
        (
            lambda d: [
                "--task",
                "sentiment",
                "--train_file",
                f"{d}/empty.csv",
                "--validation_file",
                f"{d}/empty.csv",
            ],
            "empty.csv:3: empty text",
        ),
    ],
)
def test_cli_errors_exit_2_with_one_readable_line(run_cli, tmp_path, make_args, message):
    (tmp_path / "bad.txt").write_text("John B-PER\nlives\n")
    (tmp_path / "label.txt").write_text("Paris B-CITY\n")
    (tmp_path / "empty.csv").write_text('text,label\ngood,positive\n"",negative\n')
    done = run_cli(*make_args(tmp_path), "--report_to", "none")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr  # one line


def test_help_is_one_screen_with_the_tasks_and_their_defaults(run_cli):
    done = run_cli("--help")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(lines) <= 80
    task_lines = [i for i, line in enumerate(lines) if line.startswith("  ner ")]
    # ner's own defaults, on the line right below it
    assert task_lines and "learning_rate 1.5e-4, num_train_epochs 5" in lines[task_lines[0] + 1]
    assert task_lines[0] < next(i for i, line in enumerate(lines) if line.startswith("  --"))  # tasks first
    for option in ("--max_train_samples", "--text_column_name", "--do_eval", "--resume_from_checkpoint"):
        assert f"  {option} " in done.stdout
    assert "--adam_beta1" not in done.stdout and "run.py --help-all" in done.stdout
    everything = run_cli("--help-all")
    assert everything.returncode == 0 and "--adam_beta1" in everything.stdout and "--task_name" in everything.stdout
    assert len(everything.stdout.splitlines()) > 300


def test_two_process_ddp_scores_every_example_once(run_cli, tiny_model_dir, tmp_path):
    launcher = [
        str(Path(sys.executable).with_name("accelerate")),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
    ]
    done = run_cli(
        "--task",
        "sentiment",
        "--model_name_or_path",
        str(tiny_model_dir),
        "--max_train_samples",
        "200",
        "--max_eval_samples",
        "51",
        "--max_test_samples",
        "37",
        "--output_dir",
        "runs/ddp",
        *QUICK,
        launcher=launcher,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads(Path("runs/ddp/results.json").read_text())
    # 51 and 37 do not split evenly over 2 processes: padding duplicates must not be scored
    assert saved["dev"]["examples"] == 51 and saved["test"]["examples"] == 37
    assert saved["processes"] == 2
    assert saved["threads_per_process"] == max(usable_cores() // 2, 1)  # the cores, shared
    assert len(list(tmp_path.glob("wandb/offline-run-*"))) == 1  # one W&B run, from the main process
    # the main process writes the HF files: every test example once, in order
    lines = Path("runs/ddp/predictions.tsv").read_text().splitlines()
    assert (
        len(lines) == 1 + 37 and json.loads(Path("runs/ddp/predict_results.json").read_text())["predict_samples"] == 37
    )


def test_accelerate_launch_uses_every_core_not_its_default_of_one(run_cli, tiny_model_dir, monkeypatch):
    """`make ner` goes through `accelerate launch`, which sets OMP_NUM_THREADS=1 when it is unset."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    launcher = [accelerate, "launch", "--config_file", str(ROOT / "accelerate_config.yaml")]
    common = ["--task", "sentiment", "--model_name_or_path", str(tiny_model_dir), "--max_train_samples", "32"]
    common += ["--max_eval_samples", "16", "--max_test_samples", "16", "--report_to", "none", *QUICK]
    done = run_cli(*common, "--output_dir", "runs/launched", launcher=launcher)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(Path("runs/launched/results.json").read_text())["threads_per_process"] == usable_cores()


# --- issue 11 ---------------------------------------------------------------------------------


def tiny_csv(folder: Path) -> Path:
    path = folder / "tiny.csv"
    path.write_text("text,label\n" + "".join(f"text {i},{'positive' if i % 2 else 'negative'}\n" for i in range(8)))
    return path


def test_max_seq_length_above_the_models_positions_is_an_error_before_training(tiny_model_dir, tmp_path):
    from finetune_lab.errors import UsageError

    data = tiny_csv(tmp_path)
    with pytest.raises(UsageError, match=r"--max_seq_length 100000: .*256 positions"):
        main(
            ["--task", "sentiment", "--model_name_or_path", str(tiny_model_dir), "--max_seq_length", "100000"]
            + ["--train_file", str(data), "--validation_file", str(data), "--report_to", "none", *QUICK]
        )
    assert not list(Path("outputs").glob("*/*/results.json"))


def test_two_processes_print_a_bad_data_file_once(run_cli, tiny_model_dir, tmp_path):
    launcher = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2"]
    (tmp_path / "bad.csv").write_text("text,label\ngood,positive\nbad,meh\n")
    done = run_cli(
        "--task",
        "sentiment",
        "--model_name_or_path",
        str(tiny_model_dir),
        "--train_file",
        str(tmp_path / "bad.csv"),
        "--validation_file",
        str(tmp_path / "bad.csv"),
        "--report_to",
        "none",
        launcher=launcher,
    )
    assert done.returncode != 0
    line = "bad.csv:3: label 'meh' is not in the label set"
    assert done.stderr.count(line) == 1, done.stderr[-3000:]


# --- issue 10: a run that learned nothing says so ----------------------------------------------


def test_a_run_at_chance_level_says_so(tiny_model_dir, tmp_path, capsys):
    train = tiny_csv(tmp_path)
    test = tmp_path / "one-class.csv"  # every gold label 'negative': always predicting it is perfect
    test.write_text("text,label\n" + "".join(f"review {i},negative\n" for i in range(6)))
    results = main(
        ["--task", "sentiment", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(train)]
        + ["--validation_file", str(train), "--test_file", str(test), "--report_to", "none", *QUICK]
    )
    assert len(results["warnings"]) == 1 and "at chance level" in results["warnings"][0]
    assert "warning: test accuracy" in capsys.readouterr().out
