"""Distillation (--teacher, --student_layers): the loss, the student moving toward its teacher, the teacher's
outputs computed once, gradient accumulation and two processes, and the one-line errors for a wrong teacher."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertTokenizerFast, pipeline, set_seed

from finetune_lab import distillation
from finetune_lab.arguments import ModelArguments
from finetune_lab.distillation import TeacherTargets, distillation_loss
from finetune_lab.errors import UsageError
from finetune_lab.inference import LoadedRun, load_run, text_probabilities, word_probabilities
from finetune_lab.modeling import build_model
from finetune_lab.readers import DataReport
from run import main
from tasks.ner import ConllNer
from tasks.sentiment import MovieReviewSentiment
from tests.conftest import TINY_TRAINING

SIZES = {"ner": ["--max_train_samples", "160", "--max_eval_samples", "40", "--max_test_samples", "30"]}
SIZES["sentiment"] = ["--max_train_samples", "240", "--max_eval_samples", "60", "--max_test_samples", "50"]
QUIET = ["--report_to", "none", "--seed", "7"]


# --- the loss, by hand -----------------------------------------------------------------------------
def test_the_loss_is_alpha_kl_at_temperature_times_t_squared_plus_the_gold_loss():
    student = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    teachers = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]], [[3.0, 0.0, 0.0], [1.0, -1.0, 2.0]]])
    gold, alpha, t = torch.tensor(0.7), 0.3, 2.0
    # soft targets: the mean of the teachers' softened probabilities (not the softmax of mean logits)
    p_teacher = torch.softmax(teachers / t, dim=-1).mean(dim=0)
    p_student = torch.softmax(student / t, dim=-1)
    kl = (p_teacher * (p_teacher.log() - p_student.log())).sum(dim=-1).mean()  # KL(teacher || student) per row
    expected = alpha * kl * t * t + (1 - alpha) * gold
    assert distillation_loss(student, teachers, gold, alpha, t).item() == pytest.approx(expected.item(), rel=1e-6)
    # the teacher term vanishes when the student already matches the averaged soft targets
    matching = (p_teacher.log() * t).requires_grad_()
    assert distillation_loss(matching, teachers, gold, 1.0, t).item() == pytest.approx(0.0, abs=1e-6)
    # regression (temperature None): MSE to the teachers' mean output
    out, targets = torch.tensor([[1.0], [3.0]]), torch.tensor([[[0.0], [2.0]], [[2.0], [2.0]]])
    assert distillation_loss(out, targets, gold, 0.5, None).item() == pytest.approx(0.5 * 0.5 + 0.5 * 0.7)


def test_teacher_rows_follow_the_examples_asked_for():
    values = torch.arange(12, dtype=torch.float32).reshape(1, 6, 2)  # example 0: rows 0-1, 1: row 2, 2: rows 3-5
    targets = TeacherTargets(values, torch.tensor([0, 2, 3, 6]))
    assert targets.for_examples(torch.tensor([2, 0]))[0, :, 0].tolist() == [6.0, 8.0, 10.0, 0.0, 2.0]


# --- the student -------------------------------------------------------------------------------------
def test_student_layers_keeps_the_first_layers_of_the_pretrained_encoder(tiny_model_dir):
    task = MovieReviewSentiment()
    built = build_model(task, ModelArguments(str(tiny_model_dir), student_layers=1), None)
    assert built.model.config.num_hidden_layers == 1 and "first 1 of 2 layers" in built.description
    pretrained = load_file(tiny_model_dir / "model.safetensors")
    mine = built.model.bert.state_dict()
    layer0 = [k for k in pretrained if ".layer.0." in k]
    assert layer0 and all(torch.equal(mine[k.removeprefix("bert.")], pretrained[k]) for k in layer0)
    with pytest.raises(UsageError, match=r"--student_layers 3: .* has 2 layers; choose 1 to 2"):
        build_model(task, ModelArguments(str(tiny_model_dir), student_layers=3), None)


def _kl(teacher: np.ndarray, student: np.ndarray) -> float:
    """Mean KL(teacher || student) over rows of probabilities."""
    return float(np.mean(np.sum(teacher * (np.log(teacher) - np.log(student)), axis=-1)))


def _probabilities(run: LoadedRun, rows: list[dict]) -> np.ndarray:
    if run.is_token_task:  # per word at its first sub-token: the positions the gold labels (and the KL) use
        return np.concatenate(word_probabilities(run, [r["tokens"] for r in rows]))
    return text_probabilities(run, [r["text"] for r in rows])


def _decisive_copy(run: Path, folder: Path) -> Path:
    """A copy of a tiny run with a new random classifier of large weights: its outputs depend on the input and
    are far from uniform (the tiny runs' own are nearly uniform), so matching them is a task a student can fail."""
    shutil.copytree(run, folder)
    model = load_run(folder).model
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.randn(model.classifier.weight.shape, generator=generator))
        model.classifier.bias.zero_()
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "task_class",
    [MovieReviewSentiment, ConllNer],
    ids=["sentiment", "ner"],
)
def test_distillation_moves_the_student_toward_its_teacher_and_saves_a_normal_run(
    task_class, tiny_runs, tiny_model_dir, tmp_path
):
    name = task_class.name
    teacher_dir = _decisive_copy(tiny_runs[name], tmp_path / "teacher")
    teacher = load_run(teacher_dir)
    held_out = task_class().load_embedded(DataReport())["test"][-64:]  # the runs score the first 50 test rows
    common = ["--task", name, "--model_name_or_path", str(tiny_model_dir), "--student_layers", "1"]
    common += [*SIZES[name], *TINY_TRAINING, *QUIET]
    # alpha 0.9: mostly the teacher's targets, so a few tiny steps move the student unmistakably (at the default
    # 0.5 the gold term pulls as hard, and distilled vs gold-only varied from 0.33x to 1.06x between runs)
    teacher_options = ["--teacher", str(teacher_dir), "--distill_alpha", "0.9"]
    distilled = main([*common, *teacher_options, "--output_dir", "runs/distilled"])
    main([*common, "--output_dir", "runs/gold"])

    set_seed(7)  # the student as it starts: the first layer of the pretrained encoder, a fresh head
    start = build_model(teacher.task, ModelArguments(str(tiny_model_dir), student_layers=1), None)
    start_run = LoadedRun(Path("."), teacher.results, teacher.task, start.tokenizer, start.model.eval())
    p_teacher = _probabilities(teacher, held_out)
    kl = {
        "start": _kl(p_teacher, _probabilities(start_run, held_out)),
        "distilled": _kl(p_teacher, _probabilities(load_run("runs/distilled"), held_out)),
        "gold only": _kl(p_teacher, _probabilities(load_run("runs/gold"), held_out)),
    }
    print(name, kl)
    assert kl["distilled"] < 0.7 * kl["start"], kl
    assert kl["distilled"] < 0.7 * kl["gold only"], kl  # and clearly closer than gold-only training

    # A normal run folder: results.json says what was distilled from what; predict.py and pipeline() load it.
    saved = json.loads(Path("runs/distilled/results.json").read_text())
    record = saved["distillation"]
    assert [t["run"] for t in record["teachers"]] == [str(teacher_dir)]
    assert record["alpha"] == 0.9 and record["temperature"] == 2.0 and record["student_layers"] == 1
    assert record["student_parameters"] == saved["parameters"] < record["teachers"][0]["parameters"]
    assert record["level"] == ("token" if name == "ner" else "text")
    assert saved["options"]["distill"]["teacher"] == str(teacher_dir) and distilled["test"] == saved["test"]
    student = load_run("runs/distilled")
    assert student.model.config.num_hidden_layers == 1
    kind = "token-classification" if name == "ner" else "text-classification"
    sentence = "EU rejects German call to boycott British lamb"
    if name == "ner":  # every token with its label, O included (a tiny student may find no entity at all)
        tagged = pipeline(kind, model="runs/distilled", ignore_labels=[])(sentence)
        assert len(tagged) == len(student.tokenizer.tokenize(sentence))
        assert {t["entity"] for t in tagged} <= set(student.task.label_names)
    else:
        assert pipeline(kind, model="runs/distilled")(sentence)[0]["label"] in student.task.label_names
    assert json.loads(Path("runs/gold/results.json").read_text())["distillation"] is None


def test_teacher_outputs_are_computed_once_and_then_read_from_the_cache(tiny_runs, tiny_model_dir, monkeypatch):
    calls = []
    real = distillation.teacher_outputs

    def counted(model, dataset, *args, **kwargs):
        calls.append(len(dataset))
        return real(model, dataset, *args, **kwargs)

    monkeypatch.setattr(distillation, "teacher_outputs", counted)
    teacher = str(tiny_runs["sentiment"])
    common = ["--task", "sentiment", "--model_name_or_path", str(tiny_model_dir), "--student_layers", "1"]
    common += [*SIZES["sentiment"], *TINY_TRAINING, *QUIET]
    # two epochs, an ensemble of the same teacher twice: one pass over the 240 training examples in all
    first = main([*common, "--teacher", f"{teacher},{teacher}", "--output_dir", "runs/a"])
    assert calls == [240]
    outputs = [t["outputs"] for t in first["distillation"]["teachers"]]
    assert [o["computed"] for o in outputs] == [True, False] and Path(outputs[0]["cache"]).exists()
    # another student on the same data: read back, not recomputed
    second = main([*common, "--teacher", teacher, "--distill_alpha", "0.9", "--output_dir", "runs/b"])
    assert calls == [240] and second["distillation"]["teachers"][0]["outputs"]["computed"] is False
    # other training data: other outputs
    main([*common, "--teacher", teacher, "--max_train_samples", "200", "--output_dir", "runs/c"])
    assert calls == [240, 200]


# --- gradient accumulation and two processes: the same training as one plain batch ------------------
@pytest.fixture
def no_dropout_model(tiny_model_dir, tmp_path) -> Path:
    """The tiny BERT without dropout, so runs that see the same examples compute the same losses."""
    model = tmp_path / "no-dropout"
    shutil.copytree(tiny_model_dir, model)
    config = BertConfig.from_pretrained(model)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(model)
    return model


def _same_training(one: dict, other: dict) -> None:
    losses_one = [e["loss"] for e in one["train_history"]]
    assert [e["loss"] for e in other["train_history"]] == pytest.approx(losses_one, abs=1e-5)
    assert max(losses_one) - min(losses_one) > 1e-3  # a trajectory, not a flat line that anything would match
    assert other["test"]["accuracy"] == one["test"]["accuracy"]


def _exact_common(model: Path, teacher: Path) -> list[str]:
    common = ["--task", "sentiment", "--model_name_or_path", str(model), "--student_layers", "1"]
    common += ["--teacher", str(teacher), "--train_sampling_strategy", "random", "--logging_steps", "1"]
    common += ["--max_train_samples", "128", "--max_eval_samples", "32", "--max_test_samples", "32"]
    return [*common, "--num_train_epochs", "1", "--learning_rate", "5e-3", "--disable_tqdm", "true", *QUIET]


def test_gradient_accumulation_distils_like_one_large_batch(no_dropout_model, tiny_runs):
    common = _exact_common(no_dropout_model, tiny_runs["sentiment"])
    one = main([*common, "--per_device_train_batch_size", "32", "--output_dir", "runs/one"])
    accumulated = main(
        [
            *common,
            "--per_device_train_batch_size",
            "16",
            "--gradient_accumulation_steps",
            "2",
            "--output_dir",
            "runs/ga",
        ]
    )
    assert one["train"]["steps"] == accumulated["train"]["steps"] == 4
    _same_training(one, accumulated)


def test_two_processes_distil_like_one(no_dropout_model, tiny_runs, run_cli):
    common = _exact_common(no_dropout_model, tiny_runs["sentiment"])
    # two processes first: the main one computes the teacher outputs and caches them, the other reads them
    launcher = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2"]
    done = run_cli(*common, "--per_device_train_batch_size", "16", "--output_dir", "runs/two", launcher=launcher)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads(Path("runs/two/results.json").read_text())
    assert two["distillation"]["teachers"][0]["outputs"]["computed"] is True
    one = main([*common, "--per_device_train_batch_size", "32", "--output_dir", "runs/one"])
    assert two["processes"] == 2 and two["train"]["steps"] == one["train"]["steps"] == 4
    _same_training(one, two)


# --- a teacher that cannot teach this run: one line, naming the option --------------------------------
def _relabelled_copy(run: Path, folder: Path, labels: list[str]) -> Path:
    shutil.copytree(run, folder)
    results = json.loads((folder / "results.json").read_text())
    results["labels"] = labels
    (folder / "results.json").write_text(json.dumps(results))
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = dict(enumerate(labels))
    config["label2id"] = {label: i for i, label in enumerate(labels)}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _retokenized_copy(run: Path, folder: Path) -> Path:
    shutil.copytree(run, folder)
    vocab = AutoTokenizer.from_pretrained(run).get_vocab()
    del vocab["movie"]  # one word fewer: another tokenizer
    BertTokenizerFast(vocab={t: i for i, t in enumerate(sorted(vocab, key=vocab.get))}).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "teacher, extra, message",
    [
        (lambda runs, tmp: runs["ner"], [], r"--teacher .*ner.*: a 'ner' run; this run's task is 'sentiment'"),
        (
            lambda runs, tmp: _relabelled_copy(runs["sentiment"], tmp / "relabelled", ["neg", "pos"]),
            [],
            r"--teacher .*relabelled: its labels \['neg', 'pos'\] differ from this run's \['negative', 'positive'\]",
        ),
        (
            lambda runs, tmp: _retokenized_copy(runs["sentiment"], tmp / "retokenized"),
            [],
            r"--teacher .*retokenized: its tokenizer differs from the student's",
        ),
        (lambda runs, tmp: tmp / "missing", [], r"--teacher .*missing: run folder not found"),
        (lambda runs, tmp: runs["sentiment"], ["--distill_alpha", "1.5"], r"--distill_alpha 1.5: must be between"),
        (lambda runs, tmp: runs["sentiment"], ["--do_train", "false"], r"--teacher with --do_train false"),
    ],
    ids=["other task", "other labels", "other tokenizer", "no run", "alpha out of range", "nothing to train"],
)
def test_a_teacher_that_cannot_teach_is_a_one_line_error(teacher, extra, message, tiny_runs, tiny_model_dir, tmp_path):
    argv = ["--task", "sentiment", "--model_name_or_path", str(tiny_model_dir), "--teacher"]
    argv += [str(teacher(tiny_runs, tmp_path)), *extra, *SIZES["sentiment"], *QUIET]
    with pytest.raises(UsageError, match=message) as caught:
        main(argv)
    assert "\n" not in str(caught.value)
    assert not list(Path("outputs").glob("*/*/results.json"))


def test_distillation_options_without_a_teacher_are_rejected_not_ignored(run_cli, tiny_runs):
    done = run_cli("--task", "sentiment", "--distill_temperature", "4", "--report_to", "none")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "run.py: error: --distill_temperature applies only with --teacher RUN[,RUN...]"
    ], done.stderr
    with pytest.raises(UsageError, match="predicts a number; its student matches the teacher's output by MSE"):
        main(["--task", "news-rating", "--teacher", str(tiny_runs["sentiment"]), "--distill_temperature", "3"])
