"""--extra_eval NAME=FILE and --perturbed_eval KIND:RATE: the final model scored on more sets than test.

Extra sets are read with the task's own file reader (the --test_file formats, labels checked
against the task's) and used whole. A perturbed set is a seeded copy of the test split used
(after --max_predict_samples), each eligible word hit with probability RATE:

    typos   one character edit inside the word (swap two neighbours, delete, insert, substitute,
            drawing letters from the test split's own alphabet); NER keeps every token and tag
    words   the word is dropped or swapped with its right neighbour; NER: O tokens only, dropped
            together with their tag or swapped with an O neighbour, so tags stay aligned and valid

Both are loaded and tokenized before training (a bad file fails at once, not after training), then
scored after test by the run's own Trainer (`trainer.predict`). Scores land in results.json under
`extra_eval` / `perturbed_eval` {name: metrics}, in W&B's summary (extra_eval/NAME/..., perturbed_eval/
KIND:RATE/...) and in `make compare`; what each set is (file, counts, share of words hit) in
results.json's data.robustness.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune_lab.errors import UsageError

KINDS = ("typos", "words")
SECTIONS = ("extra_eval", "perturbed_eval")  # results.json keys, in the order they are scored
NAME = re.compile(r"[A-Za-z0-9_.-]+")  # a W&B key, a column header and a file name all take these


@dataclass(frozen=True)
class Perturbation:
    kind: str
    rate: float

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.rate:g}"


def parse_extra_eval(specs: Sequence[str]) -> dict[str, str]:
    """['ood=data/ood.csv', ...] -> {name: path}; a malformed spec or a missing file is a UsageError."""
    extras: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise UsageError(f"--extra_eval {spec}: expected NAME=FILE (e.g. --extra_eval tweets=data/tweets.csv)")
        if not NAME.fullmatch(name):
            raise UsageError(f"--extra_eval {spec}: name the set with letters, digits, '_', '-' or '.' (NAME=FILE)")
        if name in extras:
            raise UsageError(f"--extra_eval {spec}: the name {name!r} is given twice; name each set once")
        if not Path(path).is_file():
            raise UsageError(f"--extra_eval {spec}: no such file {path}")
        extras[name] = path
    return extras


def parse_perturbed(specs: Sequence[str]) -> list[Perturbation]:
    """['typos:0.1,words:0.05', ...] -> Perturbations; an unknown kind or a rate outside (0, 1] is a UsageError."""
    out: list[Perturbation] = []
    for spec in specs:
        for item in spec.split(","):
            kind, sep, rate_text = item.strip().partition(":")
            if kind not in KINDS:
                kinds = " or ".join(KINDS)
                raise UsageError(f"--perturbed_eval {spec}: unknown kind {kind!r}; use {kinds} (KIND:RATE)")
            try:
                rate = float(rate_text)
            except ValueError:
                rate = float("nan")
            if not sep or not 0 < rate <= 1:  # NaN fails this too
                raise UsageError(f"--perturbed_eval {spec}: expected KIND:RATE with RATE in (0, 1], e.g. {kind}:0.1")
            if any(p.name == Perturbation(kind, rate).name for p in out):
                raise UsageError(f"--perturbed_eval {spec}: {kind}:{rate:g} is given twice")
            out.append(Perturbation(kind, rate))
    return out


def check_options(data_args: Any, training: Any, explicit: Any) -> None:
    """What cannot work is an error now, before anything is loaded or trained."""
    parse_extra_eval(data_args.extra_eval or [])
    perturbations = parse_perturbed(data_args.perturbed_eval or [])
    if perturbations and not training.do_predict:
        raise UsageError("--perturbed_eval perturbs the test split, which --do_predict false leaves out; drop one")
    if explicit("perturbed_eval_seed") and not perturbations:
        raise UsageError("--perturbed_eval_seed applies only with --perturbed_eval KIND:RATE")


# --- perturbations --------------------------------------------------------------------------------


def typo(word: str, alphabet: Sequence[str], rng: random.Random) -> str:
    """One character edit that changes `word` (a neighbour swap, a deletion, an insertion or a substitution)."""
    edits = ["swap", "delete", "insert", "substitute"]
    rng.shuffle(edits)
    for edit in edits:
        new = word
        if edit == "swap" and len(word) >= 2:
            i = rng.randrange(len(word) - 1)
            new = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif edit == "delete" and len(word) >= 2:
            i = rng.randrange(len(word))
            new = word[:i] + word[i + 1 :]
        elif edit == "insert" and alphabet:
            i = rng.randrange(len(word) + 1)
            new = word[:i] + rng.choice(alphabet) + word[i:]
        elif edit == "substitute" and alphabet:
            i = rng.randrange(len(word))
            new = word[:i] + rng.choice(alphabet) + word[i + 1 :]
        if new != word:
            return new
    return word


def perturb(
    words: list[str], eligible: list[bool], kind: str, rate: float, alphabet: Sequence[str], rng: random.Random
) -> tuple[list[int], list[str], int]:
    """Which positions of `words` stay, in what order, the new words, and how many eligible words were hit.

    typos keeps every position; words drops a hit word or swaps it with its right neighbour (when that
    one is eligible and not hit itself); at least one word always stays.
    """
    hit = [ok and rng.random() < rate for ok in eligible]
    if kind == "typos":
        new = [typo(w, alphabet, rng) if h else w for w, h in zip(words, hit, strict=True)]
        return list(range(len(words))), new, sum(hit)
    order, i = [], 0
    while i < len(words):
        if not hit[i]:
            order.append(i)
        elif rng.random() < 0.5 and i + 1 < len(words) and eligible[i + 1] and not hit[i + 1]:
            order += [i + 1, i]
            i += 1
        i += 1
    order = order or [0]
    return order, [words[j] for j in order], sum(hit)


def alphabet_of(texts: Sequence[str]) -> list[str]:
    """Every letter of the texts, repeats kept: a typo draws letters as often as the data uses them."""
    return [c for text in texts for c in text if c.isalpha()]


def perturbed_rows(task: Any, rows: list[dict], perturbation: Perturbation, seed: int) -> tuple[list[dict], dict]:
    """A perturbed copy of `rows` (the test split used), and what was done."""
    from finetune_lab.families import TokenClassificationTask

    rng = random.Random(f"perturb:{perturbation.name}:{seed}")
    ner = isinstance(task, TokenClassificationTask)
    words_of = (lambda row: list(row["tokens"])) if ner else (lambda row: row["text"].split())
    alphabet = alphabet_of([w for row in rows for w in words_of(row)])
    out, words, hits = [], 0, 0
    for row in rows:
        items = words_of(row)
        has_letter = [any(c.isalpha() for c in w) for w in items]
        eligible = has_letter if perturbation.kind == "typos" else [True] * len(items)
        if ner and perturbation.kind == "words":
            eligible = [tag == "O" for tag in row["tags"]]
        order, new, hit = perturb(items, eligible, perturbation.kind, perturbation.rate, alphabet, rng)
        words, hits = words + sum(eligible), hits + hit
        if ner:
            out.append({**row, "tokens": new, "tags": [row["tags"][j] for j in order]})
        else:
            out.append({**row, "text": " ".join(new)})
    record = {
        "kind": perturbation.kind,
        "rate": perturbation.rate,
        "seed": seed,
        "of": "test",
        "examples": len(out),
        "eligible_words": words,
        "words_hit": hits,
    }
    return out, record


# --- loading, scoring ---------------------------------------------------------------------------------


@dataclass
class RobustnessSets:
    """The extra and perturbed sets, tokenized: entries (section, name, key into `tokenized`)."""

    entries: list[tuple[str, str, str]] = field(default_factory=list)
    tokenized: Any = None  # DatasetDict


def load_sets(args: Any, task: Any, splits: Any, report: Any) -> tuple[Any, list[tuple[str, str, str]]]:
    """The extra and perturbed sets as text Datasets (a DatasetDict keyed by file-safe names), their entries;
    what each one is goes into `report.robustness`."""
    from datasets import Dataset, DatasetDict

    from finetune_lab.readers import DataReport, rows_checksum

    data_args = args.data
    sets, entries = DatasetDict(), []
    for name, path in parse_extra_eval(data_args.extra_eval or []).items():
        read = DataReport()
        rows = task.read_file(Path(path), data_args, read, name)
        if not rows:
            raise UsageError(f"--extra_eval {name}={path}: no labelled examples in the file")
        key = f"extra_eval-{name}"
        sets[key] = Dataset.from_list(rows)
        info = read.to_dict()
        report.robustness[name] = {
            "file": path,
            "examples": len(rows),
            **{k: info[k][name] for k in ("dropped", "repaired") if name in info[k]},
            "checksum": rows_checksum(rows),
        }
        entries.append(("extra_eval", name, key))
    perturbations = parse_perturbed(data_args.perturbed_eval or [])
    if perturbations and "test" not in splits:
        raise UsageError(
            f"--perturbed_eval {','.join(p.name for p in perturbations)}: the data has no test split to perturb; "
            "pass --test_file or leave the option out"
        )
    for perturbation in perturbations:
        rows, record = perturbed_rows(task, splits["test"].to_list(), perturbation, data_args.perturbed_eval_seed)
        key = f"perturbed_eval-{perturbation.kind}-{perturbation.rate:g}"
        sets[key] = Dataset.from_list(rows, features=splits["test"].features)
        report.robustness[perturbation.name] = record
        entries.append(("perturbed_eval", perturbation.name, key))
    return sets, entries


def prepare_sets(args: Any, task: Any, splits: Any, tokenizer: Any, report: Any) -> RobustnessSets:
    """Load and tokenize (cached, like the splits) every --extra_eval and --perturbed_eval set."""
    from finetune_lab.tokenization import tokenize_splits

    sets, entries = load_sets(args, task, splits, report)
    if not entries:
        return RobustnessSets()
    with args.training.main_process_first(desc="tokenizing the robustness sets"):
        tokenized, truncation = tokenize_splits(task, sets, tokenizer, args.data)
    for _, name, key in entries:
        if truncation[key]["truncated"]:
            report.robustness[name]["truncated"] = truncation[key]["truncated"]
    return RobustnessSets(entries, tokenized)


def evaluate(trainer: Any, sets: RobustnessSets | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Each set scored by the run's Trainer: {section: {name: metrics}}, the metrics named like test's."""
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    for section, name, key in sets.entries if sets is not None else ():
        metrics = trainer.predict(sets.tokenized[key], metric_key_prefix="robust").metrics
        scores.setdefault(section, {})[name] = {k.removeprefix("robust_"): v for k, v in metrics.items()}
    return scores


def report_lines(robustness: dict[str, dict]) -> list[str]:
    """The data report's lines for the more sets scored at the end."""
    lines = []
    for name, info in robustness.items():
        if "file" in info:
            lost = "".join(
                f"; {what} " + ", ".join(f"{n} {why}" for why, n in sorted(info[what].items()))
                for what in ("dropped", "repaired")
                if info.get(what)
            )
            lines.append(f"  extra_eval {name}: {info['examples']} examples from {info['file']}{lost}")
        else:
            share = info["words_hit"] / info["eligible_words"] if info["eligible_words"] else 0.0
            what = "with a typo" if info["kind"] == "typos" else "dropped or swapped"
            lines.append(
                f"  perturbed_eval {name}: a copy of the {info['examples']} test examples, {info['words_hit']} of "
                f"{info['eligible_words']} words ({share:.1%}) {what}, seed {info['seed']}"
            )
    return lines


def scored_parts(results: dict[str, Any], metric: str) -> list[str]:
    """'typos:0.1 f1 0.8123', ... for the run's closing summary line."""
    parts = []
    for section in SECTIONS:
        for name, metrics in (results.get(section) or {}).items():
            score = metrics.get(metric)
            parts.append(f"{name} {metric} {'n/a' if score is None else f'{score:.4f}'}")
    return parts
