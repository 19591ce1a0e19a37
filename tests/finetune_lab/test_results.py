import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from finetune_lab.results import (
    REDACTED,
    current_umask,
    environment,
    git_state,
    honour_umask,
    move_hub_token_to_environment,
    redact,
    redact_argv,
    remove_stale_hf_files,
    run_results,
    save_hf_metrics,
    write_json,
    write_predictions,
)
from finetune_lab.rundir import save_model_atomically


def test_secret_keys_and_environment_secret_values_are_redacted(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-0123456789abcdef")
    config = {
        "hub_token": "hf_abc123",
        "token_accuracy": 0.9,
        "notes": "key fake-key-0123456789abcdef",
        "nested": [{"api_key": "x"}],
        "hub_model_id": None,
    }
    clean = redact(config)
    assert clean["hub_token"] == REDACTED and clean["nested"][0]["api_key"] == REDACTED
    assert clean["token_accuracy"] == 0.9 and clean["hub_model_id"] is None
    assert "fake-key" not in json.dumps(clean)


def test_write_json_replaces_atomically(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


WRITER = """
import sys
sys.path.insert(0, {root!r})
from finetune_lab.results import write_json
versions = [{{"v": "a" * 400_000}}, {{"v": "b" * 400_000}}]
i = 0
while True:
    write_json({path!r}, versions[i % 2])
    i += 1
"""


def test_a_reader_or_a_kill_never_sees_a_torn_results_file(tmp_path):
    """A writer rewrites a large results.json in a loop; every read, and the file after SIGKILL, is whole."""
    path = tmp_path / "results.json"
    write_json(path, {"v": "a" * 400_000})
    root = str(Path(__file__).resolve().parents[2])
    first = path.stat().st_mtime_ns
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(root=root, path=str(path))])
    try:
        # The writer imports torch first (seconds on a busy machine): read only once it writes.
        started = time.monotonic()
        while path.stat().st_mtime_ns == first and time.monotonic() < started + 120:
            time.sleep(0.01)
        assert path.stat().st_mtime_ns != first, "the writer never wrote"
        reads, deadline = 0, time.monotonic() + 3
        while time.monotonic() < deadline:
            value = json.loads(path.read_text())["v"]  # a torn file fails to parse
            assert value in ("a" * 400_000, "b" * 400_000)
            reads += 1
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert reads > 10
    assert json.loads(path.read_text())["v"][0] in "ab"


def test_the_final_model_is_staged_so_a_failed_save_leaves_the_old_one(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.safetensors").write_text("old")

    class FailingTrainer:
        args = SimpleNamespace(process_index=0)

        def save_model(self, folder):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "model.safetensors").write_text("half")
            raise KeyboardInterrupt  # killed mid-save

    with pytest.raises(KeyboardInterrupt):
        save_model_atomically(FailingTrainer(), run_dir)
    assert (run_dir / "model.safetensors").read_text() == "old"


def test_environment_names_library_versions():
    env = environment()
    assert env["packages"]["torch"] and env["packages"]["transformers"]
    assert set(env["git"]) == {"commit", "dirty"}


def test_secret_options_and_values_are_redacted_from_a_command_line(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-0123456789abcdef")
    argv = ["--task", "ner", "--hub_token", "hf_abc", "--hub-token=hf_def", "--notes", "fake-key-0123456789abcdef!"]
    argv += ["--token_accuracy_goal", "0.9", "--api_key"]
    assert redact_argv(argv) == [
        "--task",
        "ner",
        "--hub_token",
        REDACTED,
        f"--hub-token={REDACTED}",
        "--notes",
        f"{REDACTED}!",
        "--token_accuracy_goal",
        "0.9",
        "--api_key",
    ]


def test_the_hub_token_leaves_the_training_arguments_for_the_environment(monkeypatch):
    from huggingface_hub import get_token
    from transformers import TrainingArguments

    monkeypatch.setenv("HF_TOKEN", "hf_fromTheEnvironment0123456789")
    training = TrainingArguments(output_dir="unused", hub_token="hf_fromTheCommandLine0123456789", report_to=[])
    move_hub_token_to_environment(training)
    assert training.hub_token is None  # Trainer pickles these arguments into every training_args.bin
    assert get_token() == "hf_fromTheCommandLine0123456789"  # what --push_to_hub uses when hub_token is None
    clean = json.dumps(redact({"notes": "hf_fromTheEnvironment0123456789 hf_fromTheCommandLine0123456789"}))
    assert "hf_from" not in clean  # both stay known as secrets


def test_git_state_is_what_git_says(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    (repo / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD").strip()
    assert len(head) == 40
    assert git_state(repo) == {"commit": head, "dirty": False}
    (repo / "untracked.txt").write_text("not part of the code\n")
    assert git_state(repo) == {"commit": head, "dirty": False}
    (repo / "a.txt").write_text("two\n")
    assert git_state(repo) == {"commit": head, "dirty": True}
    (tmp_path / "plain").mkdir()
    assert git_state(tmp_path / "plain") == {"commit": None, "dirty": None}


def refuse_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def test_results_json_is_strict_json_undefined_scores_are_null_with_the_reason(tmp_path):
    nan = float("nan")
    trainer = SimpleNamespace(state=SimpleNamespace(best_model_checkpoint=None))
    results = run_results(
        {"task": "spam"},
        trainer,
        dev={"eval_accuracy": 1.0, "eval_roc_auc": nan},
        test={"test_roc_auc": nan, "test_pearson": float("inf")},
        train={"loss": nan},
        history=[{"eval_loss": 0.5, "eval_roc_auc": nan, "epoch": 1.0}],
        code_state={},
    )
    path = tmp_path / "results.json"
    write_json(path, results)
    saved = json.loads(path.read_text(), parse_constant=refuse_constant)  # no NaN, Infinity
    assert saved["dev"] == {"accuracy": 1.0, "roc_auc": None}
    assert saved["test"] == {"roc_auc": None, "pearson": None} and saved["train"]["loss"] is None
    assert saved["dev_history"][0]["eval_roc_auc"] is None
    why = saved["undefined"]
    assert "one class" in why["test.roc_auc"] and "one class" in why["dev.roc_auc"]
    assert "constant" in why["test.pearson"] and why["train.loss"] and why["dev_history.0.eval_roc_auc"]


def test_write_json_never_writes_nan(tmp_path):
    write_json(tmp_path / "a.json", {"x": [1.0, float("nan")]})
    assert json.loads((tmp_path / "a.json").read_text(), parse_constant=refuse_constant) == {"x": [1.0, None]}


# --- issue 10: group-readable files, the files HF users look for ---------------------------------


@pytest.fixture
def umask():
    """Set a umask for one test (the process's umask is restored after)."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mask, mode):
    umask(mask)
    write_json(tmp_path / "results.json", {"a": 1})
    write_json(tmp_path / "results.json", {"a": 2})  # replacing keeps it so
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == mode
    assert current_umask() == mask
    private = tmp_path / "model.safetensors"
    private.write_bytes(b"weights")
    private.chmod(0o600)  # how safetensors leaves its file
    honour_umask([private])
    assert stat.S_IMODE(private.stat().st_mode) == mode


def test_the_saved_model_is_group_readable_under_a_group_umask(tmp_path, umask):
    umask(0o027)
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    class PrivateSaver:
        args = SimpleNamespace(process_index=0)

        def save_model(self, folder):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "model.safetensors").write_bytes(b"w")
            (Path(folder) / "model.safetensors").chmod(0o600)

    save_model_atomically(PrivateSaver(), run_dir)
    assert stat.S_IMODE((run_dir / "model.safetensors").stat().st_mode) == 0o640


class FakeTask(SimpleNamespace):
    """What the prediction writers read from a task."""


TEXTS = ["plain", "a\ttab inside", "two\nlines", 'say "hi"', "ends with \\", "\r\nodd"]


def test_text_predictions_read_back_whole_with_the_csv_module(tmp_path):
    task = FakeTask(example_columns=("text", "label"), regression=False, label_names=("negative", "positive"))
    rows = [{"text": t, "label": "positive" if i % 2 else "negative"} for i, t in enumerate(TEXTS)]
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.5], [3.0, -1.0], [0.0, 0.0], [-2.0, 2.0]])
    assert write_predictions(tmp_path, task, rows, SimpleNamespace(predictions=logits), None, 128) == []
    with open(tmp_path / "predictions.tsv", newline="", encoding="utf-8") as handle:
        header, *read = list(csv.reader(handle, delimiter="\t"))
    assert header == ["text", "gold", "predicted", "probability"]
    assert [r[0] for r in read] == TEXTS and [r[1] for r in read] == [r["label"] for r in rows]
    assert [r[2] for r in read] == ["negative", "positive", "positive", "negative", "negative", "positive"]
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert [float(r[3]) for r in read] == pytest.approx(softmax.max(-1), abs=1e-6)


def test_regression_predictions_have_no_probability(tmp_path):
    task = FakeTask(example_columns=("text", "label"), regression=True, label_names=("score",))
    rows = [{"text": "good", "label": 2.5}, {"text": "bad", "label": -1.0}]
    write_predictions(tmp_path, task, rows, SimpleNamespace(predictions=np.array([[2.25], [-0.5]])), None, 128)
    assert (tmp_path / "predictions.tsv").read_text() == "text\tgold\tpredicted\ngood\t2.5\t2.25\nbad\t-1.0\t-0.5\n"


def test_token_predictions_take_each_words_first_piece_and_count_what_had_none(tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from finetune_lab.modeling import embedded_model_path

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    names = ("O", "B-PER", "I-PER")
    task = FakeTask(example_columns=("tokens", "tags"), label_names=names)
    tokens = [["Angela", "Merkel", "spoke"], ["unbelievably", "long", "words", "here"], ["New York", "x"]]
    gold = [["B-PER", "I-PER", "O"], ["O", "O", "O", "O"], ["O", "O"]]
    rows = Dataset.from_dict({"tokens": tokens, "tags": gold})
    max_length = 6  # [CLS] + 4 pieces + [SEP]: the second sentence loses its last words
    encoded = tokenizer(tokens, is_split_into_words=True, truncation=True, max_length=max_length)
    logits = np.zeros((3, max_length, 3))
    want = [["B-PER", "I-PER", "B-PER"], ["I-PER", "B-PER", "O", "O"], ["B-PER", "I-PER"]]
    expected_cut = 0
    for i, tags in enumerate(want):
        word_ids = encoded.word_ids(i)
        for word, tag in enumerate(tags):
            if word not in word_ids:
                expected_cut += 1
                continue
            first = word_ids.index(word)
            logits[i, first, names.index(tag)] = 5.0
            if first + 1 < max_length and word_ids[first + 1] == word:  # later pieces must not count
                logits[i, first + 1, names.index("O")] = 9.0
    assert expected_cut > 0
    notes = write_predictions(tmp_path, task, rows, SimpleNamespace(predictions=logits), tokenizer, max_length)
    text = (tmp_path / "predictions.conll").read_text()
    sentences = [[line.split(" ") for line in block.splitlines()] for block in text.strip("\n").split("\n\n")]
    assert [[w[0] for w in s] for s in sentences] == [
        ["Angela", "Merkel", "spoke"],
        ["unbelievably", "long", "words", "here"],
        ["New_York", "x"],  # whitespace inside a token would split the line
    ]
    assert [[w[1] for w in s] for s in sentences] == gold
    cut_words = [[w for w, t in enumerate(tags) if w not in encoded.word_ids(i)] for i, tags in enumerate(want)]
    predicted = [[("O" if w in cut_words[i] else tag) for w, tag in enumerate(tags)] for i, tags in enumerate(want)]
    assert [[w[2] for w in s] for s in sentences] == predicted
    assert text.endswith(" I-PER\n\n") and all(len(w) == 3 for s in sentences for w in s)
    assert notes == [
        f"predictions.conll: {expected_cut} words past --max_seq_length 6 have no prediction, written as O",
        "predictions.conll: 1 empty tokens or tokens with whitespace written with '_' for it",
    ]


def test_hf_metric_files_as_the_example_scripts_write_them(tmp_path):
    from transformers import Trainer

    trainer = SimpleNamespace(args=SimpleNamespace(output_dir=str(tmp_path)), is_world_process_zero=lambda: True)
    trainer.save_metrics = lambda split, metrics: Trainer.save_metrics(trainer, split, metrics)
    (tmp_path / "all_results.json").write_text('{"predict_f1": 0.1, "stale": 1}')  # an earlier run's
    remove_stale_hf_files(tmp_path)
    train = {"train_loss": 0.5, "train_runtime": 3.0, "epoch": 2.0}
    dev = {"eval_f1": 0.75, "eval_roc_auc": float("nan"), "epoch": 2.0}
    test = {"test_f1": 0.5, "test_loss": 0.25}
    save_hf_metrics(trainer, train, dev, test, {"train": 100, "validation": 20, "test": 10})
    read = {
        name: json.loads((tmp_path / f"{name}.json").read_text(), parse_constant=refuse_constant)
        for name in ("train_results", "eval_results", "predict_results", "all_results")
    }
    assert read["train_results"] == {**train, "train_samples": 100}
    assert read["eval_results"] == {"eval_f1": 0.75, "eval_roc_auc": None, "epoch": 2.0, "eval_samples": 20}
    assert read["predict_results"] == {"predict_f1": 0.5, "predict_loss": 0.25, "predict_samples": 10}
    assert read["all_results"] == {**read["train_results"], **read["eval_results"], **read["predict_results"]}
    remove_stale_hf_files(tmp_path)
    save_hf_metrics(trainer, {}, dev, {}, {})  # --do_train false, no test split: no train or predict file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all_results.json", "eval_results.json"]
