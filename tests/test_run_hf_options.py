"""Every option of Hugging Face's token- and text-classification example scripts either has an
effect here, as it has there, or stops the run with a one-line error saying what to use instead.

The option lists are pinned from the scripts themselves (their ModelArguments and
DataTrainingArguments fields), plus the TrainingArguments fields transformers leaves to scripts.
Each option has a probe: an observation of the prepared run (data, model, tokenized splits,
collated batch, Trainer) that must change when the option is given, or the error it must raise.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from transformers import TrainingArguments

import finetune_lab.modeling as modeling
from finetune_lab.arguments import CHECKPOINT_FILES, parse_arguments
from finetune_lab.errors import UsageError
from finetune_lab.preparation import prepare
from finetune_lab.rundir import resume_checkpoint
from finetune_lab.trainer import build_trainer
from run import main

# Source: github.com/huggingface/transformers, the fields of ModelArguments + DataTrainingArguments in
#   examples/pytorch/token-classification/run_ner.py (commit 049d2bf1220747b6d39e2a978b9f5fe0defa1dca)
#   examples/pytorch/text-classification/run_classification.py (commit 005c23ae8f6dca810fa2a0e5cecabe0cfb24aaf3)
RUN_NER_OPTIONS = (
    # ModelArguments
    "model_name_or_path",
    "config_name",
    "tokenizer_name",
    "cache_dir",
    "model_revision",
    "token",
    "trust_remote_code",
    "ignore_mismatched_sizes",
    # DataTrainingArguments
    "task_name",
    "dataset_name",
    "dataset_config_name",
    "train_file",
    "validation_file",
    "test_file",
    "text_column_name",
    "label_column_name",
    "overwrite_cache",
    "preprocessing_num_workers",
    "max_seq_length",
    "pad_to_max_length",
    "max_train_samples",
    "max_eval_samples",
    "max_predict_samples",
    "label_all_tokens",
    "return_entity_level_metrics",
)
RUN_CLASSIFICATION_OPTIONS = (
    # DataTrainingArguments
    "dataset_name",
    "dataset_config_name",
    "do_regression",
    "text_column_names",
    "text_column_delimiter",
    "train_split_name",
    "validation_split_name",
    "test_split_name",
    "remove_splits",
    "remove_columns",
    "label_column_name",
    "max_seq_length",
    "preprocessing_num_workers",
    "overwrite_cache",
    "pad_to_max_length",
    "shuffle_train_dataset",
    "shuffle_seed",
    "max_train_samples",
    "max_eval_samples",
    "max_predict_samples",
    "metric_name",
    "train_file",
    "validation_file",
    "test_file",
    # ModelArguments
    "model_name_or_path",
    "config_name",
    "tokenizer_name",
    "cache_dir",
    "use_fast_tokenizer",
    "model_revision",
    "token",
    "trust_remote_code",
    "ignore_mismatched_sizes",
)


def script_training_fields() -> list[str]:
    """TrainingArguments fields Trainer itself never reads ("intended for training/evaluation scripts")."""
    return [
        f.name
        for f in dataclasses.fields(TrainingArguments)
        if "Not directly used by Trainer" in f.metadata.get("help", "")
    ]


HF_OPTIONS = sorted({*RUN_NER_OPTIONS, *RUN_CLASSIFICATION_OPTIONS, *script_training_fields()})


# --- the data, models and fake Hub the probes use ------------------------------------------------


def write_csv(path: Path, header: str, rows: list[str]) -> str:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return str(path)


class Env:
    """Files and models for the probes, and observations of a prepared run."""

    def __init__(self, root: Path, tiny: Path) -> None:
        from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

        self.root, self.tiny = root, str(tiny)
        words = ["good", "bad", "fine", "awful", "great", "poor", "nice", "dull", "superb", "weak", "lovely", "grim"]
        pairs = list(zip(words, ["positive", "negative"] * 6, strict=True))
        long_text = " ".join(["film"] * 40)
        self.csv = write_csv(root / "a.csv", "text,label", [f"{w} {long_text},{lab}" for w, lab in pairs])
        self.csv2 = write_csv(root / "b.csv", "text,label", [f"other {w},{lab}" for w, lab in pairs])
        self.renamed = write_csv(root / "c.csv", "sentence,sentiment", [f"{w},{lab}" for w, lab in pairs])
        self.two_columns = write_csv(
            root / "d.csv", "title,body,label", [f"{w},text {i},{lab}" for i, (w, lab) in enumerate(pairs)]
        )
        self.conll = root / "a.conll"
        self.conll.write_text("".join("EU B-ORG\nrejects O\nGermanization B-MISC\n\n" for _ in range(6)))
        tokenizer = AutoTokenizer.from_pretrained(tiny)
        small = dict(vocab_size=tokenizer.vocab_size, num_hidden_layers=1, num_attention_heads=2)
        self.other_model = root / "other-model"  # another width than the conftest tiny model (32)
        BertModel(BertConfig(**small, hidden_size=16, intermediate_size=32)).save_pretrained(self.other_model)
        tokenizer.save_pretrained(self.other_model)
        self.config_dir = root / "config"  # the tiny model's shape, another dropout
        BertConfig.from_pretrained(tiny, hidden_dropout_prob=0.37).save_pretrained(self.config_dir)
        self.tokenizer_dir = root / "tokenizer"
        AutoTokenizer.from_pretrained(tiny, model_max_length=200).save_pretrained(self.tokenizer_dir)
        self.three_labels = root / "three-labels"  # a head for 3 labels: sentiment has 2
        config = BertConfig.from_pretrained(tiny, num_labels=3)
        BertForSequenceClassification(config).save_pretrained(self.three_labels)
        tokenizer.save_pretrained(self.three_labels)

    def base(self, task: str = "sentiment") -> list[str]:
        data = ["--train_file", self.csv, "--validation_file", self.csv] if task == "sentiment" else []
        if task == "ner":
            data = ["--train_file", str(self.conll), "--validation_file", str(self.conll)]
        out = str(self.root / "runs" / "probe")
        return ["--task", task, "--model_name_or_path", self.tiny, *data, "--report_to", "none", "--output_dir", out]

    def args(self, argv: list[str]):
        return parse_arguments(argv)

    def prepared(self, argv: list[str]):
        return prepare(self.args(argv))

    def outcome(self, observe, argv: list[str]):
        """observe(argv), or the error it raised: an error is an outcome too (e.g. a missing column)."""
        try:
            return observe(argv)
        except UsageError as err:
            return f"UsageError: {err}"


class FakeHub:
    """datasets.load_dataset for a Hub set that is not there: rows by config, calls recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, name, config=None, **kwargs):
        self.calls.append((name, config, kwargs))
        features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
        prefix = f"{config or 'default'}"

        def split(tag: str, n: int = 6) -> Dataset:
            rows = {"text": [f"{prefix} {tag} text {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}
            return Dataset.from_dict(rows, features=features)

        return DatasetDict(
            {
                "train": split("train"),
                "validation": split("validation"),
                "test": split("test"),
                "train_b": split("train_b"),
                "validation_b": split("validation_b"),
                "test_b": split("test_b"),
            }
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_model_dir) -> Env:
    return Env(tmp_path_factory.mktemp("hf-options"), tiny_model_dir)


@pytest.fixture
def hub(monkeypatch) -> FakeHub:
    fake = FakeHub()
    monkeypatch.setattr("datasets.load_dataset", fake)
    return fake


@pytest.fixture
def loads(monkeypatch) -> list[dict]:
    """The keyword arguments of every from_pretrained call build_model makes (the calls still load)."""
    calls: list[dict] = []

    def spy(original):
        def wrapper(*args, **kwargs):
            calls.append({k: v for k, v in kwargs.items() if isinstance(v, str | bool | int | type(None))})
            return original(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(modeling.AutoTokenizer, "from_pretrained", spy(modeling.AutoTokenizer.from_pretrained))
    monkeypatch.setattr(modeling.AutoConfig, "from_pretrained", spy(modeling.AutoConfig.from_pretrained))
    import transformers

    cls = transformers.AutoModelForSequenceClassification
    monkeypatch.setattr(cls, "from_pretrained", spy(cls.from_pretrained))
    return calls


# --- observations --------------------------------------------------------------------------------


def rows(env: Env, argv: list[str]) -> dict:
    args = env.args(argv)
    data = args.task.load(args.data, hub_options={"cache_dir": args.model.cache_dir, "token": args.model.token})
    return {split: data.splits[split].to_list() for split in data.splits}


def model_summary(env: Env, argv: list[str]) -> dict:
    args = env.args(argv)
    built = modeling.build_model(args.task, args.model, None)
    config = built.model.config
    return {
        "hidden": config.hidden_size,
        "dropout": config.hidden_dropout_prob,
        "tokenizer_max": built.tokenizer.model_max_length,
        "fast": built.tokenizer.is_fast,
    }


def tokenized(env: Env, argv: list[str]) -> dict:
    prepared = env.prepared(argv)
    return {split: prepared.tokenized[split].to_dict() for split in prepared.tokenized}


def batch_width(env: Env, argv: list[str]) -> int:
    """The width of the first training batch the run's Trainer collates."""
    args = env.args(argv)
    prepared = prepare(args)
    trainer = build_trainer(
        prepared.task, prepared.built.model, prepared.built.tokenizer, args.training, args.data,
        prepared.tokenized["train"], prepared.tokenized["validation"],
    )  # fmt: skip
    batch = next(iter(trainer.get_train_dataloader()))
    return batch["input_ids"].shape[1]


def changes(env: Env, observe, extra: list[str], setup: list[str] | None = None, task: str = "sentiment"):
    """The option has an effect: observe(base + setup) differs from observe(base + setup + extra)."""
    argv = [*env.base(task), *(setup or [])]
    before = env.outcome(lambda a: observe(env, a), argv)
    after = env.outcome(lambda a: observe(env, a), [*argv, *extra])
    assert not (isinstance(after, str) and after.startswith("UsageError")), after
    assert before != after, f"{extra} changed nothing"
    return before, after


def rejected(env: Env, extra: list[str], message: str, task: str = "sentiment") -> None:
    """The option stops the run with a one-line error saying what to use instead."""
    with pytest.raises(UsageError, match=message) as caught:
        prepare(parse_arguments([*env.base(task), *extra]))
    assert "\n" not in str(caught.value)


# --- one probe per option ------------------------------------------------------------------------


def probe_model_name_or_path(env, request):
    before, after = changes(env, model_summary, ["--model_name_or_path", str(env.other_model)])
    assert (before["hidden"], after["hidden"]) == (32, 16)


def probe_config_name(env, request):
    before, after = changes(env, model_summary, ["--config_name", str(env.config_dir)])
    assert after["dropout"] == pytest.approx(0.37)


def probe_tokenizer_name(env, request):
    before, after = changes(env, model_summary, ["--tokenizer_name", str(env.tokenizer_dir)])
    assert after["tokenizer_max"] == 200


def _passed_to_from_pretrained(env, request, extra, key, value):
    calls = request.getfixturevalue("loads")
    model_summary(env, env.base())
    plain = list(calls)
    calls.clear()
    model_summary(env, [*env.base(), *extra])
    assert len(calls) == len(plain) >= 3  # tokenizer (which reads the config too), config, model
    assert all(c.get(key) == value for c in calls) and all(c.get(key) != value for c in plain)


def probe_cache_dir(env, request):
    folder = str(env.root / "hub-cache")
    _passed_to_from_pretrained(env, request, ["--cache_dir", folder], "cache_dir", folder)
    hub = request.getfixturevalue("hub")
    _hub_rows(env, ["--cache_dir", folder])  # and to datasets.load_dataset, as HF's scripts do
    assert hub.calls[-1][2] == {"cache_dir": folder}


def probe_model_revision(env, request):
    _passed_to_from_pretrained(env, request, ["--model_revision", "v1.0"], "revision", "v1.0")


def probe_token(env, request):
    _passed_to_from_pretrained(env, request, ["--token", "hf_probe_token_123"], "token", "hf_probe_token_123")
    hub = request.getfixturevalue("hub")
    _hub_rows(env, ["--token", "hf_probe_token_123"])
    assert hub.calls[-1][2] == {"token": "hf_probe_token_123"}


def probe_trust_remote_code(env, request):
    _passed_to_from_pretrained(env, request, ["--trust_remote_code", "true"], "trust_remote_code", True)


def probe_ignore_mismatched_sizes(env, request):
    setup = ["--model_name_or_path", str(env.three_labels)]
    before, after = changes(env, model_summary, ["--ignore_mismatched_sizes", "true"], setup)
    assert before.startswith("UsageError") and "--ignore_mismatched_sizes true" in before


def probe_task_name(env, request):
    rejected(env, ["--task_name", "ner"], r"--task_name is not taken by run.py: use --task")


def probe_dataset_name(env, request):
    request.getfixturevalue("hub")
    argv = ["--task", "sentiment", "--model_name_or_path", env.tiny, "--report_to", "none"]
    embedded = rows(env, argv)
    from_hub = rows(env, [*argv, "--dataset_name", "org/reviews"])
    assert embedded != from_hub and from_hub["train"][0]["text"] == "default train text 0"
    with pytest.raises(UsageError, match="--dataset_name and --train_file: two data sources"):
        parse_arguments([*env.base(), "--dataset_name", "org/reviews"])


def _hub_base(env):
    return ["--task", "sentiment", "--model_name_or_path", env.tiny, "--report_to", "none"]


def _hub_rows(env, extra):
    return rows(env, [*_hub_base(env), "--dataset_name", "org/reviews", *extra])


def probe_dataset_config_name(env, request):
    hub = request.getfixturevalue("hub")
    assert _hub_rows(env, []) != _hub_rows(env, ["--dataset_config_name", "small"])
    assert hub.calls[-1][:2] == ("org/reviews", "small")


def probe_train_file(env, request):
    changes(env, rows, ["--train_file", env.csv2])


def probe_validation_file(env, request):
    changes(env, rows, ["--validation_file", env.csv2])


def probe_test_file(env, request):
    before, after = changes(env, rows, ["--test_file", env.csv2])
    assert "test" not in before and len(after["test"]) == 12


def probe_text_column_name(env, request):
    setup = ["--train_file", env.renamed, "--validation_file", env.renamed, "--label_column_name", "sentiment"]
    before, after = changes(env, rows, ["--text_column_name", "sentence"], setup)
    assert "no column 'text' (it has: sentence, sentiment)" in before and after["train"][0]["text"] == "good"


def probe_text_column_names(env, request):
    setup = ["--train_file", env.two_columns, "--validation_file", env.two_columns]
    before, after = changes(env, rows, ["--text_column_names", "title,body"], setup)
    assert after["train"][0]["text"] == "good text 0"


def probe_text_column_delimiter(env, request):
    setup = ["--train_file", env.two_columns, "--validation_file", env.two_columns, "--text_column_name", "title,body"]
    before, after = changes(env, rows, ["--text_column_delimiter", " | "], setup)
    assert after["train"][0]["text"] == "good | text 0"


def probe_label_column_name(env, request):
    setup = ["--train_file", env.renamed, "--validation_file", env.renamed, "--text_column_name", "sentence"]
    before, after = changes(env, rows, ["--label_column_name", "sentiment"], setup)
    assert "no column 'label'" in before and after["train"][0]["label"] == "positive"


def probe_overwrite_cache(env, request):
    cache = env.root / "tokenized-cache"

    def stamps(env, argv):
        env.prepared(argv)
        return sorted((p.name, p.stat().st_mtime_ns) for p in cache.rglob("*.arrow"))

    changes(env, stamps, ["--overwrite_cache", "true"], ["--tokenized_cache_dir", str(cache)])


def probe_preprocessing_num_workers(env, request, monkeypatch=None):
    monkeypatch = request.getfixturevalue("monkeypatch")
    seen = []
    original = Dataset.map

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("num_proc"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Dataset, "map", spy)
    argv = [*env.base(), "--tokenized_cache_dir", "none"]
    env.prepared(argv)
    env.prepared([*argv, "--preprocessing_num_workers", "2"])
    assert seen == [None, None, 2, 2]  # train and validation, without then with


def probe_max_seq_length(env, request):
    def longest(env, argv):
        return max(len(ids) for ids in tokenized(env, argv)["train"]["input_ids"])

    before, after = changes(env, longest, ["--max_seq_length", "8"])
    assert after == 8 < before


def probe_pad_to_max_length(env, request):
    before, after = changes(env, batch_width, ["--pad_to_max_length", "true"])
    assert after == 128 > before


def _sizes(env, argv):
    return {split: len(columns["input_ids"]) for split, columns in tokenized(env, argv).items()}


def probe_max_train_samples(env, request):
    assert changes(env, _sizes, ["--max_train_samples", "3"])[1]["train"] == 3


def probe_max_eval_samples(env, request):
    assert changes(env, _sizes, ["--max_eval_samples", "3"])[1]["validation"] == 3


def probe_max_predict_samples(env, request):
    setup = ["--test_file", env.csv]
    assert changes(env, _sizes, ["--max_predict_samples", "3"], setup)[1]["test"] == 3


def probe_label_all_tokens(env, request):
    def labelled(env, argv):
        return sum(label != -100 for labels in tokenized(env, argv)["train"]["labels"] for label in labels)

    before, after = changes(env, labelled, ["--label_all_tokens", "true"], task="ner")
    assert after > before  # 'Germanization' is several pieces


def probe_return_entity_level_metrics(env, request):
    import numpy as np
    from transformers import EvalPrediction

    task = parse_arguments([*env.base("ner"), "--return_entity_level_metrics", "true"]).task  # HF's non-default
    labels = np.array([[1, 0, 7]])  # B-PER O B-MISC
    scores = task.compute_metrics(EvalPrediction(predictions=np.eye(9)[labels], label_ids=labels))
    assert "per_class/PER/f1" in scores and "per_class/MISC/f1" in scores  # the entity-level scores
    rejected(env, ["--return_entity_level_metrics", "false"], "per-class scores are always computed", task="ner")


def probe_use_fast_tokenizer(env, request):
    assert model_summary(env, [*env.base(), "--use_fast_tokenizer", "true"])["fast"]
    rejected(env, ["--use_fast_tokenizer", "false"], "a fast tokenizer is required")


def probe_do_regression(env, request):
    rejected(env, ["--do_regression", "true"], r"--do_regression true: task 'sentiment' predicts a label")
    argv = ["--task", "news-rating", "--report_to", "none", "--do_regression", "true"]
    assert parse_arguments(argv).task.regression
    with pytest.raises(UsageError, match="--do_regression false: task 'news-rating' predicts a number"):
        parse_arguments(["--task", "news-rating", "--do_regression", "false"])


def _split_probe(env, request, split):
    request.getfixturevalue("hub")
    before = _hub_rows(env, [])
    after = _hub_rows(env, [f"--{split}_split_name", f"{split}_b"])
    assert before[split][0]["text"] == f"default {split} text 0"
    assert after[split][0]["text"] == f"default {split}_b text 0"
    with pytest.raises(UsageError, match=f"--{split}_split_name nope: --dataset_name org/reviews has splits"):
        _hub_rows(env, [f"--{split}_split_name", "nope"])


def probe_train_split_name(env, request):
    _split_probe(env, request, "train")


def probe_validation_split_name(env, request):
    _split_probe(env, request, "validation")


def probe_test_split_name(env, request):
    _split_probe(env, request, "test")


def probe_remove_splits(env, request):
    rejected(env, ["--remove_splits", "test"], r"--remove_splits is not taken by run.py: leave out --test_file")


def probe_remove_columns(env, request):
    rejected(env, ["--remove_columns", "id"], r"--remove_columns is not taken by run.py: only the text and label")


def probe_metric_name(env, request):
    rejected(env, ["--metric_name", "f1"], r"--metric_name is not taken by run.py: .*--metric_for_best_model")


def probe_shuffle_train_dataset(env, request):
    setup = ["--max_train_samples", "4"]
    before, after = changes(env, rows_after_limits, ["--shuffle_train_dataset", "true"], setup)
    assert sorted(map(str, after)) != sorted(map(str, before))  # other examples, not the first four reordered


def probe_shuffle_seed(env, request):
    setup = ["--max_train_samples", "4", "--shuffle_train_dataset", "true"]
    changes(env, rows_after_limits, ["--shuffle_seed", "1"], setup)
    with pytest.raises(UsageError, match="--shuffle_seed is the seed of --shuffle_train_dataset"):
        parse_arguments([*env.base(), "--shuffle_seed", "1"])


def rows_after_limits(env, argv):
    return env.prepared(argv).tokenized["train"]["input_ids"]


def probe_do_train(env, request):
    before, after = changes(env, lambda env, a: sorted(env.prepared(a).tokenized), ["--do_train", "false"])
    assert "train" in before and "train" not in after


def probe_do_eval(env, request):
    def plan(env, argv):
        args = env.args(argv)
        strategy = getattr(args.training.eval_strategy, "value", args.training.eval_strategy)
        return sorted(prepare(args).tokenized), strategy, args.training.load_best_model_at_end

    before, after = changes(env, plan, ["--do_eval", "false"])
    assert after == (["train"], "no", False) and before == (["train", "validation"], "epoch", True)
    # the end-to-end effect (nothing scored on dev, no dev curve) is test_do_eval_and_do_predict_false_score_nothing


def probe_do_predict(env, request):
    splits = ["--test_file", env.csv]
    before, after = changes(env, lambda env, a: sorted(env.prepared(a).tokenized), ["--do_predict", "false"], splits)
    assert before == ["test", "train", "validation"] and after == ["train", "validation"]


def probe_resume_from_checkpoint(env, request):
    run_dir = env.root / "runs" / "probe"
    checkpoint = run_dir / "checkpoint-4"
    checkpoint.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        (checkpoint / name).write_text("{}")

    def resumed_from(env, argv):
        return resume_checkpoint(env.args(argv), run_dir)

    before, after = changes(env, resumed_from, ["--resume_from_checkpoint", str(checkpoint)])
    assert (before, after) == (None, str(checkpoint))
    # the end-to-end effect (training continues from that checkpoint) is test_resume_from_checkpoint_path


PROBES = {name.removeprefix("probe_"): fn for name, fn in dict(globals()).items() if name.startswith("probe_")}


def test_every_hf_script_option_has_a_probe():
    assert set(script_training_fields()) >= {"do_train", "do_eval", "do_predict", "resume_from_checkpoint"}
    missing = [name for name in HF_OPTIONS if name not in PROBES]
    assert not missing, f"options of HF's scripts with no probe (silently dropped?): {missing}"


@pytest.mark.parametrize("option", HF_OPTIONS)
def test_hf_script_option_is_honoured_or_rejected(option, env, request):
    PROBES[option](env, request)


# --- end to end ----------------------------------------------------------------------------------

QUICK = ["--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--disable_tqdm", "true"]


def test_do_eval_and_do_predict_false_score_nothing(env, capsys):
    argv = [*env.base(), "--test_file", env.csv, "--output_dir", str(env.root / "runs" / "no-eval"), *QUICK]
    results = main([*argv, "--do_eval", "false", "--do_predict", "false"])
    assert results["dev"] == {} and results["test"] == {} and results["dev_history"] == []
    assert results["settings"]["scored"] == [] and results["train"]["steps"] == 2
    printed = capsys.readouterr().out
    assert "nothing scored (--do_eval false, --do_predict false)" in printed
    assert "switched_off                 eval_strategy (--do_eval false skips dev evaluation); " in printed
    assert "'eval_loss'" not in printed  # no evaluation ran, at any point


def test_explicit_do_predict_without_a_test_split_is_an_error(env):
    argv = [*env.base(), "--output_dir", str(env.root / "runs" / "no-test"), *QUICK]
    with pytest.raises(UsageError, match="--do_predict true: the data has no test split; pass --test_file"):
        main([*argv, "--do_predict", "true"])


def test_every_training_argument_not_at_transformers_default_is_reported(env):
    """What Trainer really ran with (training_args.bin) against transformers' defaults: each difference
    is in results.json's training_overrides, with its value and who set it."""
    run_dir = env.root / "runs" / "overrides"
    argv = [*env.base(), "--output_dir", str(run_dir), *QUICK, "--hub_token", "hf_probe_hub_token_456"]
    argv += ["--token", "hf_probe_model_token_789"]  # HF's --token: used for loading, written nowhere
    results = main(argv)
    ran = torch.load(run_dir / "training_args.bin", weights_only=False).to_dict()
    defaults = TrainingArguments().to_dict()
    reported = {entry["field"]: entry for entry in results["training_overrides"]}
    differing = {name for name, value in ran.items() if value != defaults[name]}
    assert differing and differing <= set(reported), differing - set(reported)
    for name in differing:
        assert reported[name]["value"] == ran[name], name
    assert reported["learning_rate"]["set_by"] == "task default (sentiment)"
    assert reported["num_train_epochs"]["set_by"] == "command line"
    assert reported["load_best_model_at_end"]["set_by"] == "project default"
    assert reported["run_name"]["set_by"] == "runner"
    assert reported["hub_token"]["set_by"].startswith("runner: moved to the HF_TOKEN environment variable")
    written = "".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())
    assert "hf_probe_hub_token_456" not in written and "hf_probe_model_token_789" not in written


def test_resume_from_checkpoint_path(env, capsys, monkeypatch):
    import finetune_lab.callbacks as callbacks

    first = env.root / "runs" / "first"
    argv = [*env.base(), *QUICK, "--num_train_epochs", "2", "--per_device_train_batch_size", "4"]
    main([*argv, "--output_dir", str(first)])  # 3 steps an epoch: checkpoint-3 and checkpoint-6
    steps = []
    monkeypatch.setattr(
        callbacks.EpochTimer, "on_step_end", lambda self, a, state, c, **k: steps.append(state.global_step)
    )
    second = env.root / "runs" / "second"
    results = main([*argv, "--output_dir", str(second), "--resume_from_checkpoint", str(first / "checkpoint-3")])
    assert steps == [4, 5, 6] and results["train"]["steps"] == 6  # epoch 2 only, from the checkpoint
    assert f"resume: continuing from {first / 'checkpoint-3'}" in capsys.readouterr().out
    with pytest.raises(UsageError, match=r"--resume_from_checkpoint .*first: not a checkpoint \(no "):
        parse_arguments([*argv, "--resume_from_checkpoint", str(first)])
