"""--augment: more training examples made from the training split itself, seeded, counted, nothing downloaded.

Text classification (EDA-style, Wei & Zou 2019, without its WordNet synonyms: no synonym dictionary
installs offline from PyPI here), each op changing n = max(1, round(rate x words)) words:

    swap     swap two random words, n times
    delete   delete n random words (at least one word stays)
    insert   insert a random training word at a random place, n times
    replace  replace n random words with random training words

NER (tokens and tags change together, the tags stay valid BIO):

    mention  replace max(1, round(rate x mentions)) entity mentions, each with another mention of the
             same type from the training split (its tokens and tags, as they were tagged there)
    replace  replace n random tokens with training tokens that carry the same tag

Training words, tokens and mentions come from the training examples used (after
--max_train_samples), so a low-resource slice learns from nothing outside itself. Each copy of each
example takes one op at random (of those given); a copy that comes out identical to its original
(say, a sentence without entities and only `mention`) tries the other ops, and is left out and
counted when none changes it. Copies go after the originals; dev and test are never touched. The
random draws follow --seed, so every process of a DDP run makes the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from finetune_lab.errors import UsageError

TEXT_OPS = ("swap", "delete", "insert", "replace")
TOKEN_OPS = ("mention", "replace")
DEFAULT_COPIES, DEFAULT_RATE = 1, 0.1


@dataclass(frozen=True)
class Augmentation:
    """What --augment, --augment_copies and --augment_rate ask for."""

    ops: tuple[str, ...]
    copies: int = DEFAULT_COPIES
    rate: float = DEFAULT_RATE


def parse_ops(spec: str) -> tuple[str, ...]:
    """'swap,delete' -> ('swap', 'delete'); an unknown or repeated op is a UsageError naming --augment."""
    ops = tuple(op.strip() for op in spec.split(","))
    known = dict.fromkeys((*TEXT_OPS, *TOKEN_OPS))
    for op in ops:
        if op not in known:
            raise UsageError(
                f"--augment {spec}: unknown operation {op!r}; text classification takes {','.join(TEXT_OPS)}, "
                f"NER takes {','.join(TOKEN_OPS)}"
            )
    if len(set(ops)) != len(ops):
        raise UsageError(f"--augment {spec}: name each operation once")
    return ops


def check_options(data_args: Any, training: Any, task: Any = None) -> Augmentation | None:
    """The --augment options as one Augmentation (None without --augment); what cannot work (an op that
    does not fit `task`'s family, say) is an error now.

    Fills in the defaults of --augment_copies and --augment_rate when --augment is given, so results.json
    (and `make compare`'s seed groups) record the values used.
    """
    spec = data_args.augment
    if not spec:
        given = [name for name in ("augment_copies", "augment_rate") if getattr(data_args, name) is not None]
        if given:
            raise UsageError(f"--{given[0]} applies only with --augment OPS (e.g. --augment swap,delete)")
        return None
    ops = parse_ops(spec)
    if task is not None:
        check_fits(ops, task)
    if not training.do_train:
        raise UsageError(f"--augment {spec} with --do_train false: nothing is trained; leave out one or the other")
    copies = DEFAULT_COPIES if data_args.augment_copies is None else data_args.augment_copies
    rate = DEFAULT_RATE if data_args.augment_rate is None else data_args.augment_rate
    if copies < 1:
        raise UsageError(f"--augment_copies {copies}: must be at least 1")
    if not 0 < rate <= 1:
        raise UsageError(f"--augment_rate {rate:g}: must be in (0, 1] (the share of words changed)")
    data_args.augment_copies, data_args.augment_rate = copies, rate
    return Augmentation(ops, copies, rate)


def family_ops(task: Any) -> tuple[str, tuple[str, ...]]:
    """The task's family name and the ops that fit it."""
    from finetune_lab.families import TokenClassificationTask

    if isinstance(task, TokenClassificationTask):
        return "NER (token classification)", TOKEN_OPS
    return "text classification", TEXT_OPS


def check_fits(ops: Sequence[str], task: Any) -> None:
    family, fitting = family_ops(task)
    wrong = [op for op in ops if op not in fitting]
    if wrong:
        raise UsageError(
            f"--augment {','.join(ops)}: {wrong[0]!r} does not apply to task '{task.name}' ({family}); "
            f"it takes {','.join(fitting)}"
        )


# --- text classification -------------------------------------------------------------------------


def _count(rate: float, n: int) -> int:
    return max(1, round(rate * n))


def draw_other(pool: Sequence[Any], current: Any, rng: random.Random, tries: int = 5) -> Any:
    """A random item of `pool` unlike `current` where a few draws find one (else the last draw)."""
    item = current
    for _ in range(tries):
        item = rng.choice(pool)
        if item != current:
            break
    return item


def text_op(op: str, words: list[str], vocabulary: Sequence[str], rate: float, rng: random.Random) -> list[str]:
    """One EDA-style op on a text's words (a new list); `vocabulary`: every training word, repeats kept."""
    words = list(words)
    n = _count(rate, len(words))
    if op == "swap" and len(words) >= 2:
        for _ in range(n):
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
    elif op == "delete" and len(words) >= 2:
        for i in sorted(rng.sample(range(len(words)), min(n, len(words) - 1)), reverse=True):
            del words[i]
    elif op == "insert" and vocabulary:
        for _ in range(n):
            words.insert(rng.randrange(len(words) + 1), rng.choice(vocabulary))
    elif op == "replace" and vocabulary:
        for i in rng.sample(range(len(words)), min(n, len(words))):
            words[i] = draw_other(vocabulary, words[i], rng)
    return words


# --- NER ---------------------------------------------------------------------------------------------


def mention_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) of each entity mention in IOB2 tags: B-X starts one, I-X continues it.

    A bare tag (no B-/I- prefix, a user's own label set) makes a mention of its run of equal tags.
    """
    spans: list[tuple[int, int, str]] = []
    start, kind = None, None
    for i, tag in enumerate([*tags, "O"]):
        inside = tag.startswith("I-") and kind == tag[2:]
        same_bare = kind is not None and tag == kind and not tag.startswith(("B-", "I-"))
        if start is not None and not (inside or same_bare):
            spans.append((start, i, kind))
            start, kind = None, None
        if start is None and tag != "O":
            start, kind = i, tag[2:] if tag.startswith(("B-", "I-")) else tag
    return spans


@dataclass
class TokenPools:
    """What NER ops draw from: training mentions by type, training tokens by tag (repeats kept)."""

    mentions: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]]
    tokens: dict[str, list[str]]

    @classmethod
    def of(cls, rows: Sequence[dict]) -> TokenPools:
        mentions: dict[str, list] = {}
        tokens: dict[str, list[str]] = {}
        for row in rows:
            for token, tag in zip(row["tokens"], row["tags"], strict=True):
                tokens.setdefault(tag, []).append(token)
            for start, end, kind in mention_spans(row["tags"]):
                mention = (tuple(row["tokens"][start:end]), tuple(row["tags"][start:end]))
                mentions.setdefault(kind, []).append(mention)
        return cls(mentions, tokens)


def token_op(
    op: str, tokens: list[str], tags: list[str], pools: TokenPools, rate: float, rng: random.Random
) -> tuple[list[str], list[str]]:
    """One NER op: new (tokens, tags), always of equal length, tags valid where they were."""
    tokens, tags = list(tokens), list(tags)
    if op == "replace":
        for i in rng.sample(range(len(tokens)), min(_count(rate, len(tokens)), len(tokens))):
            pool = pools.tokens.get(tags[i])
            if pool:
                tokens[i] = draw_other(pool, tokens[i], rng)
    elif op == "mention":
        spans = mention_spans(tags)
        chosen = sorted(rng.sample(spans, min(_count(rate, len(spans)), len(spans))), reverse=True) if spans else []
        for start, end, kind in chosen:  # from the end: earlier spans keep their positions
            if not pools.mentions.get(kind):
                continue
            current = (tuple(tokens[start:end]), tuple(tags[start:end]))
            new_tokens, new_tags = draw_other(pools.mentions[kind], current, rng)
            tokens[start:end], tags[start:end] = list(new_tokens), list(new_tags)
    return tokens, tags


# --- the training split ------------------------------------------------------------------------------


def augmented_rows(task: Any, rows: list[dict], settings: Augmentation, seed: int) -> tuple[list[dict], dict]:
    """The copies made from `rows` (the training split used), and the counts for the data report."""
    from finetune_lab.families import TokenClassificationTask

    check_fits(settings.ops, task)
    rng = random.Random(f"augment:{seed}")
    ner = isinstance(task, TokenClassificationTask)
    if ner:
        pools = TokenPools.of(rows)

        def apply(op: str, row: dict) -> dict:
            tokens, tags = token_op(op, row["tokens"], row["tags"], pools, settings.rate, rng)
            return {**row, "tokens": tokens, "tags": tags}
    else:
        vocabulary = [word for row in rows for word in row["text"].split()]

        def apply(op: str, row: dict) -> dict:
            words = text_op(op, row["text"].split(), vocabulary, settings.rate, rng)
            return {**row, "text": " ".join(words)}

    copies, by_op, unchanged = [], dict.fromkeys(settings.ops, 0), 0
    for _ in range(settings.copies):
        for row in rows:
            made = first_change(row, settings.ops, apply, rng)
            if made is None:
                unchanged += 1
                continue
            op, copy = made
            by_op[op] += 1
            copies.append(copy)
    record = {
        "ops": list(settings.ops),
        "copies": settings.copies,
        "rate": settings.rate,
        "seed": seed,
        "original": len(rows),
        "added": len(copies),
        "by_op": by_op,
        "unchanged_not_added": unchanged,
    }
    return copies, record


def first_change(
    row: dict, ops: Sequence[str], apply: Callable[[str, dict], dict], rng: random.Random
) -> tuple[str, dict] | None:
    """(op, copy) for the first op, in random order, whose copy differs from `row`; None if none does."""
    for op in rng.sample(list(ops), len(ops)):
        copy = apply(op, row)
        if copy != row:
            return op, copy
    return None


def augment_train(task: Any, train: Any, settings: Augmentation, seed: int) -> tuple[Any, dict]:
    """The training Dataset with its augmented copies after the originals, and the data report's record."""
    from datasets import Dataset, concatenate_datasets

    rows = train.to_list()
    copies, record = augmented_rows(task, rows, settings, seed)
    if not copies:
        return train, record
    added = Dataset.from_list(copies, features=train.features)
    return concatenate_datasets([train, added]), record


def report_line(record: dict) -> str:
    """The data report's line: how many copies, of what, and how many examples training then sees."""
    ops = ", ".join(f"{op} {n}" for op, n in record["by_op"].items())
    left_out = record["unchanged_not_added"]
    left = f"; {left_out} came out unchanged, not added" if left_out else ""
    total = record["original"] + record["added"]
    return (
        f"  train      +{record['added']} augmented copies (--augment {','.join(record['ops'])}, "
        f"{record['copies']} per example, rate {record['rate']:g}, seed {record['seed']}: {ops}{left}), "
        f"made from the {record['original']} training examples used (after any --max_train_samples): "
        f"trains on {total}"
    )
