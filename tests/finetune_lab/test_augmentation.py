"""--augment: copies of the training examples used, seeded, counted; dev and test untouched; NER tags aligned."""

from __future__ import annotations

import random

import pytest

from finetune_lab.arguments import parse_arguments
from finetune_lab.augmentation import Augmentation, TokenPools, augmented_rows, mention_spans, token_op
from finetune_lab.errors import UsageError
from finetune_lab.preparation import prepare
from finetune_lab.tokenization import tokenized_cache_key
from tasks.ner import ConllNer
from tasks.sentiment import MovieReviewSentiment

TEXTS = [
    {"text": "a quietly moving film about two brothers and their long road home", "label": "positive"},
    {"text": "the plot is thin and the jokes land with a dull thud", "label": "negative"},
    {"text": "superb acting cannot rescue a script this lazy", "label": "negative"},
    {"text": "one of the warmest comedies of the year", "label": "positive"},
]
# Mentions of different lengths and types, so a replacement can lengthen or shorten a sentence.
SENTENCES = [
    {"tokens": ["Peter", "Blackburn", "visited", "Paris", "."], "tags": ["B-PER", "I-PER", "O", "B-LOC", "O"]},
    {"tokens": ["EU", "rejects", "German", "call"], "tags": ["B-ORG", "O", "B-MISC", "O"]},
    {
        "tokens": ["The", "European", "Commission", "met", "Jo", "in", "New", "York", "City"],
        "tags": ["O", "B-ORG", "I-ORG", "O", "B-PER", "O", "B-LOC", "I-LOC", "I-LOC"],
    },
    {"tokens": ["Nothing", "happened", "today", "."], "tags": ["O", "O", "O", "O"]},
    {"tokens": ["Smith", "and", "Bank", "of", "England"], "tags": ["B-PER", "O", "B-ORG", "I-ORG", "I-ORG"]},
]


def valid_bio(tags: list[str]) -> bool:
    """IOB2: every I-X follows a B-X or an I-X of the same type."""
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


@pytest.mark.parametrize(
    ("task", "rows", "ops"),
    [
        (MovieReviewSentiment(), TEXTS * 5, ("swap", "delete", "insert", "replace")),
        (ConllNer(), SENTENCES * 4, ("mention", "replace")),
    ],
    ids=["text", "ner"],
)
def test_augmentation_is_deterministic_per_seed_and_counted(task, rows, ops):
    settings = Augmentation(ops, copies=2, rate=0.3)
    first, record = augmented_rows(task, rows, settings, seed=1)
    again, _ = augmented_rows(task, rows, settings, seed=1)
    other, _ = augmented_rows(task, rows, settings, seed=2)
    assert first == again  # same seed, same rows
    assert first != other  # another seed, other rows
    assert record["added"] == len(first) == sum(record["by_op"].values())
    assert record["added"] + record["unchanged_not_added"] == 2 * len(rows)
    assert all(copy not in rows for copy in first)  # every copy added differs from every original
    assert all(record["by_op"][op] > 0 for op in ops)  # each op is used


def test_ner_mention_replacement_keeps_tags_aligned_valid_and_typed():
    pools = TokenPools.of(SENTENCES)
    rng = random.Random(0)
    lengths_changed = replaced = 0
    for _ in range(40):
        for row in SENTENCES:
            tokens, tags = token_op("mention", row["tokens"], row["tags"], pools, 1.0, rng)
            assert len(tokens) == len(tags)
            assert valid_bio(tags)
            # rate 1: every mention replaced by one of the same type, in the same order
            assert [kind for _, _, kind in mention_spans(tags)] == [kind for _, _, kind in mention_spans(row["tags"])]
            for start, end, kind in mention_spans(tags):  # each new mention is a training mention of its type
                assert (tuple(tokens[start:end]), tuple(tags[start:end])) in pools.mentions[kind]
            lengths_changed += len(tokens) != len(row["tokens"])
            replaced += tokens != row["tokens"]
    assert lengths_changed > 20 and replaced > 100  # the check above saw mentions of other lengths


def test_ner_token_replacement_keeps_each_tag_and_draws_same_tag_tokens():
    pools = TokenPools.of(SENTENCES)
    rng = random.Random(0)
    changed = 0
    for row in SENTENCES * 10:
        tokens, tags = token_op("replace", row["tokens"], row["tags"], pools, 0.5, rng)
        assert tags == row["tags"]
        assert all(token in pools.tokens[tag] for token, tag in zip(tokens, tags, strict=True))
        changed += tokens != row["tokens"]
    assert changed > 20


def tiny_args(tiny_model_dir, task: str, *extra: str):
    return parse_arguments(
        ["--task", task, "--model_name_or_path", str(tiny_model_dir), "--report_to", "none"]
        + ["--max_train_samples", "12", "--max_eval_samples", "6", "--max_test_samples", "6", *extra]
    )


def test_augment_adds_copies_to_train_only_and_keys_the_cache(tiny_model_dir):
    plain_args = tiny_args(tiny_model_dir, "sentiment")
    plain = prepare(plain_args)
    args = tiny_args(tiny_model_dir, "sentiment", "--augment", "swap,delete", "--augment_copies", "2")
    augmented = prepare(args)
    train, original = augmented.splits["train"], plain.splits["train"]
    assert len(train) == 36 and train.to_list()[:12] == original.to_list()  # originals first, then 2 x 12 copies
    assert augmented.truncation["train"]["examples"] == 36 and len(augmented.tokenized["train"]) == 36
    for split in ("validation", "test"):  # never touched
        assert augmented.splits[split].to_list() == plain.splits[split].to_list()
        assert augmented.tokenized[split]["input_ids"] == plain.tokenized[split]["input_ids"]
    record = augmented.data.report.to_dict()["augmentation"]
    assert record["original"] == 12 and record["added"] == 24 and record["seed"] == 42
    assert any("+24 augmented copies" in line and "trains on 36" in line for line in augmented.data.report.lines())
    assert "augmentation" not in plain.data.report.to_dict()

    def key(prepared, data_args):
        return tokenized_cache_key(prepared.task, prepared.splits, prepared.built.tokenizer, data_args)

    reseeded_args = tiny_args(tiny_model_dir, "sentiment", "--augment", "swap,delete", "--augment_copies", "2")
    reseeded_args.training.seed = 3
    reseeded = prepare(reseeded_args)
    assert reseeded.splits["train"].to_list()[12:] != train.to_list()[12:]  # --seed draws other copies
    keys = [key(plain, plain_args.data), key(augmented, args.data), key(reseeded, reseeded_args.data)]
    assert len(set(keys)) == 3
    # the options alone change the key too (no cache is shared across augmentation settings)
    args.data.augment_rate = 0.2
    assert key(augmented, args.data) != keys[1]


def test_augment_options_that_cannot_work_are_one_line_errors(tiny_model_dir):
    cases = {
        ("--task", "ner", "--augment", "swap"): "--augment swap: 'swap' does not apply to task 'ner'",
        ("--task", "sentiment", "--augment", "mention"): "--augment mention: 'mention' does not apply",
        ("--task", "sentiment", "--augment", "shuffle"): "--augment shuffle: unknown operation 'shuffle'",
        ("--task", "sentiment", "--augment_copies", "2"): "--augment_copies applies only with --augment",
        ("--task", "sentiment", "--augment", "swap", "--augment_rate", "1.5"): "--augment_rate 1.5: must be in (0, 1]",
        ("--task", "sentiment", "--augment", "swap", "--augment_copies", "0"): "--augment_copies 0: must be at least 1",
    }
    for argv, message in cases.items():
        with pytest.raises(UsageError) as caught:
            parse_arguments([*argv, "--model_name_or_path", str(tiny_model_dir)])
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value), argv
