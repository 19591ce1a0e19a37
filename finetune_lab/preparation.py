"""Steps 2 and 3 of a run: the data, the task with its final labels, the model, the tokenized splits it uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from finetune_lab.errors import UsageError


@dataclass
class Prepared:
    """What the run trains and scores: the data, the task with its final labels, the model, tokenized splits."""

    data: Any  # families.LoadedData
    task: Any
    built: Any  # modeling.BuiltModel
    splits: Any  # DatasetDict: the used splits after --max_*_samples, as text
    tokenized: Any  # DatasetDict: train, and validation / test where they are scored
    truncation: dict[str, dict[str, int]]
    notes: list[str]
    robustness: Any = field(default=None)  # robustness.RobustnessSets: --extra_eval, --perturbed_eval, tokenized


def scored_splits(args: Any, data: Any) -> tuple[str, ...]:
    """The splits this run uses: train, dev unless --do_eval false, test unless --do_predict false.

    A test split asked for with an explicit --do_predict true that the data lacks is an error (as in
    HF's scripts); the default just finds none, and says so.
    """
    training = args.training
    splits = ["train"] if training.do_train else []
    if training.do_eval:
        splits.append("validation")
    if training.do_predict:
        if "test" in data.splits:
            splits.append("test")
        elif args.explicit("do_predict"):
            raise UsageError("--do_predict true: the data has no test split; pass --test_file or drop the option")
    return tuple(splits)


def prepare(args: Any) -> Prepared:
    """Steps 2 and 3: load the data, build the model (a from-scratch vocabulary comes from the whole
    training split), limit the splits this run uses, augment its training examples (--augment), tokenize
    them and the more sets scored at the end (--extra_eval, --perturbed_eval)."""
    from datasets import DatasetDict

    from finetune_lab import augmentation, robustness
    from finetune_lab.modeling import build_model, check_max_seq_length
    from finetune_lab.peft_tuning import apply_peft
    from finetune_lab.tokenization import limit_samples, tokenize_splits

    training = args.training
    data = args.task.load(args.data, hub_options={"cache_dir": args.model.cache_dir, "token": args.model.token})
    task = args.task.with_labels(data.label_names)
    built = build_model(task, args.model, data.splits["train"])
    check_max_seq_length(built, args.data.max_seq_length)
    built = apply_peft(built, task, args.peft)  # --peft: adapters, the head trained in full
    used = scored_splits(args, data)
    splits, notes = limit_samples(DatasetDict({s: data.splits[s] for s in used}), args.data)
    settings = augmentation.check_options(args.data, training, task)
    if settings is not None and "train" in splits:  # after the limits: N examples and their copies
        splits["train"], data.report.augmentation = augmentation.augment_train(
            task, splits["train"], settings, training.seed
        )
    if training.do_predict and "test" not in data.splits:
        notes.append("  test: this data has no test split (--test_file): nothing scored at the end")
    notes += [f"  {split}: {why}" for split, why in skipped_splits(args).items()]
    with training.main_process_first(desc="tokenizing"):
        tokenized, truncation = tokenize_splits(task, splits, built.tokenizer, args.data)
    robust = robustness.prepare_sets(args, task, splits, built.tokenizer, data.report)
    return Prepared(data, task, built, splits, tokenized, truncation, notes, robust)


def skipped_splits(args: Any) -> dict[str, str]:
    """Splits left out by --do_eval false / --do_predict false, and why."""
    training = args.training
    skipped = {}
    if not training.do_eval:
        skipped["validation"] = "not scored (--do_eval false)"
    if not training.do_predict:
        skipped["test"] = "not scored (--do_predict false)"
    return skipped
