import pytest
import torch

from finetune_lab.arguments import parse_arguments
from finetune_lab.errors import UsageError


def test_base_and_task_defaults(tmp_path):
    args = parse_arguments(["--task", "ner"])
    t = args.training
    # ner's own recipe, from its search (docs/search.md)
    assert (t.learning_rate, t.weight_decay, t.warmup_steps, t.label_smoothing_factor) == (1.5e-4, 0.005, 0.02, 0.04)
    assert (t.num_train_epochs, t.per_device_train_batch_size, t.seed) == (5, 32, 42)
    assert t.eval_strategy == "epoch" and t.save_strategy == "epoch" and t.load_best_model_at_end
    assert t.metric_for_best_model == "f1" and t.report_to == ["wandb"]
    assert t.save_total_limit == 2  # disk use stays bounded by default
    assert t.per_device_eval_batch_size == (256 if torch.cuda.is_available() else 32)  # measured fastest
    assert args.run.early_stopping_patience == 2
    assert args.task.name == "ner"
    base = parse_arguments(["--task", "sentiment"]).training  # sentiment sets only its learning rate
    assert (base.weight_decay, base.warmup_steps, base.label_smoothing_factor) == (0.01, 0.1, 0.0)
    assert (base.num_train_epochs, base.per_device_train_batch_size) == (3, 32)


def test_precedence_task_then_experiment_then_command_line(tmp_path):
    exp = tmp_path / "e.yaml"
    exp.write_text("task: ner\nlearning_rate: 3.0e-5\nnum_train_epochs: 5\nmax_seq_length: 64\n")
    args = parse_arguments(["--experiment", str(exp), "--num_train_epochs", "7"])
    assert args.training.learning_rate == 3e-5  # experiment beats the task default (1.5e-4)
    assert args.training.num_train_epochs == 7  # command line beats the experiment
    assert args.data.max_seq_length == 64
    assert args.training.weight_decay == 0.005  # the task default, untouched
    assert args.training.adam_beta2 == 0.999  # untouched base default


def test_json_experiment_files_work_too(tmp_path):
    exp = tmp_path / "e.json"
    exp.write_text('{"task": "sentiment", "per_device_train_batch_size": 8}')
    args = parse_arguments(["--experiment", str(exp)])
    assert args.task.name == "sentiment" and args.training.per_device_train_batch_size == 8


def test_pad_to_multiple_of(monkeypatch):
    assert parse_arguments(["--task", "ner"]).data.pad_to_multiple_of is None  # CPU default: no extra padding
    assert parse_arguments(["--task", "ner", "--pad_to_multiple_of", "8"]).data.pad_to_multiple_of == 8
    assert parse_arguments(["--task", "ner", "--pad_to_multiple_of", "0"]).data.pad_to_multiple_of is None
    with pytest.raises(UsageError, match="--pad_to_multiple_of -8"):
        parse_arguments(["--task", "ner", "--pad_to_multiple_of", "-8"])


def test_bf16_false_forces_fp32():
    assert parse_arguments(["--task", "ner", "--bf16", "false"]).training.bf16 is False


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--task", "nerr"],
            r"unknown task 'nerr' \(did you mean 'ner'\?\); available tasks: intent, ner, ner-zh, news-rating, "
            r"news-sentiment, opinion, sentiment, sentiment-zh, spam",
        ),
        ([], "--task is required; available tasks"),
        (
            ["--task", "ner", "--learning_rat", "1e-3"],
            r"unknown option --learning_rat \(did you mean '--learning_rate'\?\)",
        ),
        (["--task", "ner", "--learning_rate", "fast"], "invalid float value: 'fast'"),
    ],
)
def test_bad_options_are_usage_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_arguments(argv)


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "task: ner\nlearnig_rate: 1\n",
            r"e.yaml: unknown option 'learnig_rate' \(did you mean 'learning_rate'\?\)",
        ),
        ("task: ner\n  bad: [\n", r"e.yaml:\d+: not valid YAML"),
        ("- a\n- b\n", "e.yaml: expected a mapping"),
        # values of the wrong type: the file and the key named
        ("task: ner\nseed: [1, 2]\n", r"e.yaml: seed: expected an integer, got \[1, 2\]"),
        ("task: ner\nlabels: negative\n", r"e.yaml: labels: expected a list \(\[a, b\]\), got 'negative'"),
        ("task: ner\nlearning_rate: fast\n", r"e.yaml: learning_rate: expected a number, got 'fast'"),
        ("task: ner\nlearning_rate: -1\n", r"e.yaml: learning_rate: .*positive"),
        ("task: ner\nbf16: maybe\n", r"e.yaml: bf16: expected true or false, got 'maybe'"),
        ("task: ner\neval_strategy: often\n", r"e.yaml: eval_strategy: expected one of .*'epoch'.*, got 'often'"),
        ("task: ner\nmax_train_samples: 0\n", r"e.yaml: max_train_samples: .*at least 1"),
        ("task: ner\nlabels: [O, O]\n", "each label must be named once"),
    ],
)
def test_bad_experiment_files_name_the_file(tmp_path, content, message):
    exp = tmp_path / "e.yaml"
    exp.write_text(content)
    with pytest.raises(UsageError, match=message):
        parse_arguments(["--experiment", str(exp)])


def test_missing_experiment_file(tmp_path):
    with pytest.raises(UsageError, match="cannot read experiment file .*nope.yaml"):
        parse_arguments(["--task", "ner", "--experiment", str(tmp_path / "nope.yaml")])


def test_every_shipped_experiment_parses():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.yaml"))
    assert files
    for f in files:
        assert parse_arguments(["--experiment", str(f)]).task.name


# --- issue 11: impossible values are one-line errors naming the option -------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num_train_epochs", "0"], r"--num_train_epochs 0: nothing would be trained.*--do_train false"),
        (["--num_train_epochs", "-2"], r"--num_train_epochs -2"),
        (["--learning_rate", "-1"], r"--learning_rate -1: .*positive"),
        (["--learning_rate", "nan"], r"--learning_rate nan: .*positive"),
        (["--per_device_train_batch_size", "0"], r"--per_device_train_batch_size 0: .*at least 1"),
        (["--per_device_eval_batch_size", "-1"], r"--per_device_eval_batch_size -1: .*at least 1"),
        (["--max_train_samples", "0"], r"--max_train_samples 0: .*at least 1"),
        (["--max_train_samples", "-5"], r"--max_train_samples -5: .*at least 1"),
        (["--max_eval_samples", "0"], r"--max_eval_samples 0: .*at least 1"),
        (["--max_seq_length", "0"], r"--max_seq_length 0: .*at least"),
        (["--model_name_or_path", "./no/such/model"], r"--model_name_or_path ./no/such/model: no such folder"),
        (["--model_name_or_path", "/no/such/model"], r"--model_name_or_path /no/such/model: no such folder"),
        (["--model_name_or_path", "outputs/ner/old-run"], r"--model_name_or_path outputs/ner/old-run: no such folder"),
        (["--labels", "pos", "neg", "pos"], "each label must be named once"),
    ],
)
def test_impossible_values_are_usage_errors_naming_the_option(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_arguments(["--task", "sentiment", *argv])


def test_epochs_zero_is_fine_when_nothing_is_trained_or_steps_are_given():
    assert parse_arguments(["--task", "sentiment", "--do_train", "false", "--num_train_epochs", "0"])
    assert parse_arguments(["--task", "sentiment", "--max_steps", "5", "--num_train_epochs", "0"])


def test_an_output_dir_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    for folder in (tmp_path / "taken", tmp_path / "taken" / "run"):
        with pytest.raises(UsageError, match=f"--output_dir {folder}: .*taken is a file"):
            parse_arguments(["--task", "sentiment", "--output_dir", str(folder)])


def test_an_existing_local_model_folder_and_hub_ids_pass(tmp_path):
    (tmp_path / "model").mkdir()
    assert parse_arguments(["--task", "sentiment", "--model_name_or_path", str(tmp_path / "model")])
    assert parse_arguments(["--task", "sentiment", "--model_name_or_path", "hfl/rbt3"])  # a Hub id: checked on load
    assert parse_arguments(["--task", "sentiment", "--model_name_or_path", "bert-base-uncased"])


# --- issue 10: HF's option names, evaluation switches, resume -----------------------------------


def test_hf_spellings_and_old_spellings_are_one_option(tmp_path):
    for spelling in ("--text_column_name", "--text_column", "--text_column_names"):
        args = parse_arguments(["--task", "sentiment", "--train_file", "a.csv", spelling, "body"])
        assert args.data.text_column_name == "body"
    for spelling in ("--max_predict_samples", "--max_test_samples"):
        assert parse_arguments(["--task", "ner", spelling, "7"]).data.max_predict_samples == 7
    assert parse_arguments(["--task", "ner", "--model_revision", "v2"]).model.revision == "v2"
    exp = tmp_path / "e.yaml"
    exp.write_text("task: ner\nmax_test_samples: 9\n")  # experiment files written before the rename
    assert parse_arguments(["--experiment", str(exp)]).data.max_predict_samples == 9
    exp.write_text("task: ner\nmax_test_samples: 9\nmax_predict_samples: 8\n")
    with pytest.raises(UsageError, match="max_test_samples and max_predict_samples are one option"):
        parse_arguments(["--experiment", str(exp)])


def test_plain_run_scores_dev_every_epoch_and_test_at_the_end():
    t = parse_arguments(["--task", "sentiment"]).training
    assert (t.do_train, t.do_eval, t.do_predict) == (True, True, True)
    assert t.eval_strategy == "epoch" and t.load_best_model_at_end


def test_do_eval_false_switches_off_the_defaults_that_need_evaluation_and_says_why():
    args = parse_arguments(["--task", "sentiment", "--do_eval", "false"])
    t = args.training
    assert (t.do_eval, t.eval_strategy, t.load_best_model_at_end) == (False, "no", False)
    assert args.run.early_stopping_patience == 0
    assert set(args.followed) == {"eval_strategy", "load_best_model_at_end", "early_stopping_patience"}
    assert args.sources["eval_strategy"] == "follows: --do_eval false skips dev evaluation"
    # --eval_strategy no keeps the evaluation at the end, so do_eval stays on
    args = parse_arguments(["--task", "sentiment", "--eval_strategy", "no"])
    assert args.training.do_eval and not args.training.load_best_model_at_end
    assert args.run.early_stopping_patience == 0


def test_a_teacher_switches_off_the_task_default_label_smoothing_and_says_why(tmp_path):
    args = parse_arguments(["--task", "ner", "--teacher", str(tmp_path)])  # ner's default smooths by 0.04
    assert args.training.label_smoothing_factor == 0.0
    assert args.sources["label_smoothing_factor"] == (
        "follows: --teacher: the teacher's soft targets already smooth the labels"
    )
    assert parse_arguments(["--task", "ner"]).training.label_smoothing_factor == 0.04  # only under --teacher
    exp = tmp_path / "e.yaml"
    exp.write_text("task: ner\nlabel_smoothing_factor: 0.1\n")
    for given in (["--task", "ner", "--label_smoothing_factor", "0.1"], ["--experiment", str(exp)]):
        with pytest.raises(UsageError, match=r"--label_smoothing_factor 0.1 with --teacher: .* leave it out"):
            parse_arguments([*given, "--teacher", str(tmp_path)])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--do_eval", "false", "--eval_strategy", "epoch"], "--eval_strategy epoch evaluates dev during training"),
        (["--do_eval", "false", "--load_best_model_at_end", "true"], "--load_best_model_at_end true needs dev"),
        (["--do_eval", "false", "--eval_on_start", "true"], "--eval_on_start true evaluates dev before training"),
        (["--eval_strategy", "no", "--early_stopping_patience", "3"], "--early_stopping_patience 3 needs dev"),
        (["--load_best_model_at_end", "false", "--early_stopping_patience", "2"], "false keeps the last model"),
        (["--do_train", "false", "--do_eval", "false", "--do_predict", "false"], "all false: nothing to do"),
    ],
)  # fmt: skip
def test_a_combination_that_cannot_work_is_an_error_not_a_silent_change(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_arguments(["--task", "sentiment", *argv])


def test_an_experiment_file_setting_is_explicit_too(tmp_path):
    exp = tmp_path / "e.yaml"
    exp.write_text("task: sentiment\nload_best_model_at_end: true\n")
    with pytest.raises(UsageError, match="--load_best_model_at_end true needs"):
        parse_arguments(["--experiment", str(exp), "--do_eval", "false"])


def test_resume_from_checkpoint(tmp_path):
    from finetune_lab.arguments import CHECKPOINT_FILES

    for word in ("true", "True"):
        args = parse_arguments(["--task", "sentiment", "--resume_from_checkpoint", word])
        assert args.run.resume and args.sources["resume"] == "follows: --resume_from_checkpoint"
    assert not parse_arguments(["--task", "sentiment", "--resume_from_checkpoint", "false"]).run.resume
    folder = tmp_path / "checkpoint-6"
    folder.mkdir()
    with pytest.raises(UsageError, match=r"checkpoint-6: not a checkpoint \(no trainer_state.json, model.safetensors"):
        parse_arguments(["--task", "sentiment", "--resume_from_checkpoint", str(folder)])
    for name in CHECKPOINT_FILES:
        (folder / name).write_text("{}")
    assert parse_arguments(["--task", "sentiment", "--resume_from_checkpoint", str(folder)]).run.resume
    with pytest.raises(UsageError, match="no such folder; give a checkpoint-N folder of a run, or true"):
        parse_arguments(["--task", "sentiment", "--resume_from_checkpoint", str(tmp_path / "nope")])
    with pytest.raises(UsageError, match="nothing is trained with --do_train false"):
        parse_arguments(["--task", "sentiment", "--resume_from_checkpoint", str(folder), "--do_train", "false"])
    with pytest.raises(UsageError, match="--resume true contradicts --resume_from_checkpoint false"):
        parse_arguments(["--task", "sentiment", "--resume", "--resume_from_checkpoint", "false"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--text_column_name", "body"], "--text_column_name body: names a column of your data"),
        (["--label_column_name", "y"], "--label_column_name y: names a column of your data"),
        (["--train_split_name", "tr"], "--train_split_name tr: names a split of a Hub data set"),
        (["--dataset_name", "x/y", "--train_file", "a.csv"], "--dataset_name and --train_file: two data sources"),
        (["--train_file", "a.csv", "--text_column_delimiter", "|"], "--text_column_delimiter joins the columns"),
        (["--shuffle_seed", "3"], "--shuffle_seed is the seed of --shuffle_train_dataset"),
        (["--task_name", "ner"], "--task_name is not taken by run.py: use --task"),
        (["--use_fast_tokenizer", "false"], "--use_fast_tokenizer false: a fast tokenizer is required"),
        (["--config_name", "./no/config"], "--config_name ./no/config: no such folder"),
    ],
)
def test_options_that_would_do_nothing_are_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_arguments(["--task", "sentiment", *argv])


def test_sources_say_where_each_value_came_from(tmp_path):
    exp = tmp_path / "e.yaml"
    exp.write_text("task: ner\nnum_train_epochs: 5\n")
    args = parse_arguments(["--experiment", str(exp), "--seed", "3", "--max-train-samples", "8"])
    assert args.sources["learning_rate"] == "task default (ner)"
    assert args.sources["num_train_epochs"] == f"experiment {exp}"
    assert args.sources["seed"] == args.sources["max_train_samples"] == "command line"
    assert args.sources["eval_strategy"] == "project default"
    assert args.sources["adam_beta1"] == "default"
    assert args.explicit("seed") and args.explicit("num_train_epochs") and not args.explicit("learning_rate")


def test_your_files_replace_a_tasks_default_hub_set(monkeypatch):
    from tasks.sentiment import MovieReviewSentiment

    monkeypatch.setattr(MovieReviewSentiment, "defaults", {**MovieReviewSentiment.defaults, "dataset_name": "x/y"})
    assert parse_arguments(["--task", "sentiment"]).data.dataset_name == "x/y"
    assert parse_arguments(["--task", "sentiment", "--train_file", "a.csv"]).data.dataset_name is None


def test_transformers_defaults_leave_accelerates_process_state_alone():
    """Building TrainingArguments() resets accelerate's shared state; under a launcher the other
    processes then took themselves for the main one (test_two_process_ddp_scores_every_example_once)."""
    from accelerate.state import PartialState

    import finetune_lab.arguments as arguments

    training = parse_arguments(["--task", "sentiment"]).training
    assert training.device.type in ("cpu", "cuda")  # sets the state up
    before = dict(PartialState._shared_state)
    arguments._TRANSFORMERS_DEFAULTS.clear()
    assert arguments.transformers_defaults()["learning_rate"] == 5e-5
    assert PartialState._shared_state == before


@pytest.mark.parametrize("value", ["-0.1", "1", "1.5"])
def test_attention_dropout_outside_0_to_1_is_rejected(value):
    with pytest.raises(UsageError, match=f"--attention_dropout {float(value)}: must be at least 0 and below 1"):
        parse_arguments(["--task", "ner", "--attention_dropout", value])
    assert parse_arguments(["--task", "ner", "--attention_dropout", "0"]).model.attention_dropout == 0.0
