"""--extra_eval and --perturbed_eval: more scored sets beside test, perturbed at the rate asked, bad specs refused."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from finetune_lab import compare
from finetune_lab.arguments import parse_arguments
from finetune_lab.augmentation import mention_spans
from finetune_lab.errors import UsageError
from finetune_lab.preparation import prepare
from finetune_lab.readers import DataReport
from finetune_lab.robustness import Perturbation, perturbed_rows
from run import cli, main
from tasks.ner import ConllNer
from tasks.sentiment import MovieReviewSentiment
from tests.conftest import TINY_TRAINING, wandb_inspect


@pytest.fixture(scope="module")
def embedded_test_rows() -> dict[str, list[dict]]:
    return {
        "ner": ConllNer().load_embedded(DataReport())["test"][:300],
        "sentiment": MovieReviewSentiment().load_embedded(DataReport())["test"][:300],
    }


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_typos_hit_the_share_of_words_asked_and_keep_ner_tokens_and_tags(embedded_test_rows, rate):
    task, rows = ConllNer(), embedded_test_rows["ner"]
    perturbed, record = perturbed_rows(task, rows, Perturbation("typos", rate), seed=0)
    assert [r["tags"] for r in perturbed] == [r["tags"] for r in rows]  # tags untouched, token counts kept
    pairs = [
        (a, b)
        for old, new in zip(rows, perturbed, strict=True)
        for a, b in zip(old["tokens"], new["tokens"], strict=True)
    ]
    eligible = [(a, b) for a, b in pairs if any(c.isalpha() for c in a)]
    changed = sum(a != b for a, b in eligible)
    assert all(a == b for a, b in pairs if not any(c.isalpha() for c in a))  # punctuation and numbers untouched
    assert changed == record["words_hit"] and len(eligible) == record["eligible_words"] > 2000
    assert abs(changed / len(eligible) - rate) < 0.025  # ~2.5 standard errors at 2000+ tokens
    again, _ = perturbed_rows(task, rows, Perturbation("typos", rate), seed=0)
    other, _ = perturbed_rows(task, rows, Perturbation("typos", rate), seed=1)
    assert again == perturbed and other != perturbed


def test_word_noise_drops_or_swaps_text_words_at_the_rate(embedded_test_rows):
    task, rows = MovieReviewSentiment(), embedded_test_rows["sentiment"]
    perturbed, record = perturbed_rows(task, rows, Perturbation("words", 0.2), seed=0)
    assert [r["label"] for r in perturbed] == [r["label"] for r in rows]
    words = sum(len(r["text"].split()) for r in rows)
    kept = sum(len(r["text"].split()) for r in perturbed)
    assert record["eligible_words"] == words and abs(record["words_hit"] / words - 0.2) < 0.02
    assert 0.05 < (words - kept) / words < 0.15  # about half the hits are drops, the rest swaps
    assert sum(a["text"] != b["text"] for a, b in zip(rows, perturbed, strict=True)) > 200


def test_ner_word_noise_touches_only_o_tokens_and_keeps_tags_aligned(embedded_test_rows):
    task, rows = ConllNer(), embedded_test_rows["ner"]
    perturbed, record = perturbed_rows(task, rows, Perturbation("words", 0.3), seed=0)
    dropped = 0
    for old, new in zip(rows, perturbed, strict=True):
        assert len(new["tokens"]) == len(new["tags"]) >= 1
        # every entity mention survives whole, in order, with its tokens
        mentions = [(old["tokens"][s:e], k) for s, e, k in mention_spans(old["tags"])]
        assert [(new["tokens"][s:e], k) for s, e, k in mention_spans(new["tags"])] == mentions
        # only drops and swaps: no (token, tag) pair that was not there
        assert not Counter(zip(new["tokens"], new["tags"], strict=True)) - Counter(
            zip(old["tokens"], old["tags"], strict=True)
        )
        dropped += len(old["tokens"]) - len(new["tokens"])
    assert dropped > 0.05 * record["eligible_words"]


BAD_SPECS = {
    ("--extra_eval", "ood"): "--extra_eval ood: expected NAME=FILE",
    ("--extra_eval", "ood=no/such.csv"): "--extra_eval ood=no/such.csv: no such file no/such.csv",
    ("--perturbed_eval", "blur:0.1"): "--perturbed_eval blur:0.1: unknown kind 'blur'",
    ("--perturbed_eval", "typos:0"): "--perturbed_eval typos:0: expected KIND:RATE with RATE in (0, 1]",
    ("--perturbed_eval", "typos:1.5"): "--perturbed_eval typos:1.5: expected KIND:RATE with RATE in (0, 1]",
    ("--perturbed_eval", "words"): "--perturbed_eval words: expected KIND:RATE",
    ("--perturbed_eval_seed", "3"): "--perturbed_eval_seed applies only with --perturbed_eval",
    ("--perturbed_eval", "typos:0.1", "--do_predict", "false"): "--perturbed_eval perturbs the test split",
}


def test_bad_specs_are_one_line_errors_naming_the_option(monkeypatch, capsys):
    for argv, message in BAD_SPECS.items():
        with pytest.raises(UsageError) as caught:
            parse_arguments(["--task", "sentiment", *argv])
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value), argv
    # run.py's own entry point (in this process: a subprocess costs seconds): exit 2, one line
    monkeypatch.setattr(sys, "argv", ["run.py", "--task", "sentiment", "--extra_eval", "ood"])
    with pytest.raises(SystemExit) as exited:
        cli()
    stderr = capsys.readouterr().err
    assert exited.value.code == 2 and stderr == "run.py: error: --extra_eval ood: expected NAME=FILE " + (
        "(e.g. --extra_eval tweets=data/tweets.csv)\n"
    )


def test_ner_sets_are_read_with_the_task_reader_and_tokenized_before_training(tiny_model_dir, tmp_path):
    conll = tmp_path / "other.conll"
    conll.write_text("EU B-ORG\nrejects O\nGermanization B-MISC\n\nPeter B-PER\nwrites O\n\n")
    args = parse_arguments(
        ["--task", "ner", "--model_name_or_path", str(tiny_model_dir), "--report_to", "none"]
        + ["--max_train_samples", "8", "--max_eval_samples", "4", "--max_test_samples", "10"]
        + ["--extra_eval", f"news={conll}", "--perturbed_eval", "typos:0.5,words:0.2"]
    )
    prepared = prepare(args)
    sets = prepared.robustness
    assert [(section, name) for section, name, _ in sets.entries] == [
        ("extra_eval", "news"),
        ("perturbed_eval", "typos:0.5"),
        ("perturbed_eval", "words:0.2"),
    ]
    lengths = {name: len(sets.tokenized[key]) for _, name, key in sets.entries}
    assert lengths == {"news": 2, "typos:0.5": 10, "words:0.2": 10}
    for _, _, key in sets.entries[1:]:  # perturbed copies of the test split, not the test split
        assert sets.tokenized[key]["input_ids"] != prepared.tokenized["test"]["input_ids"]
    robustness = prepared.data.report.to_dict()["robustness"]
    assert robustness["news"]["file"] == str(conll) and robustness["news"]["examples"] == 2
    assert robustness["typos:0.5"]["words_hit"] > 0 and robustness["typos:0.5"]["seed"] == 0
    lines = prepared.data.report.lines()
    assert any(line.startswith("  extra_eval news: 2 examples from") for line in lines)
    assert any(line.startswith("  perturbed_eval typos:0.5: a copy of the 10 test examples") for line in lines)


def test_extra_and_perturbed_scores_land_beside_test_in_results_wandb_and_compare(tiny_model_dir, tmp_path):
    test_rows = MovieReviewSentiment().load_embedded(DataReport())["test"][:30]
    same = tmp_path / "same.jsonl"  # the test split itself, as a file: it must score exactly like test
    same.write_text("".join(json.dumps(row) + "\n" for row in test_rows))
    results = main(
        ["--task", "sentiment", "--model_name_or_path", str(tiny_model_dir), "--seed", "7"]
        + ["--max_train_samples", "64", "--max_eval_samples", "30", "--max_test_samples", "30"]
        + ["--num_train_epochs", "1", "--augment", "swap,replace", "--output_dir", "outputs/sentiment/robust"]
        + ["--extra_eval", f"same={same}", "--perturbed_eval", "typos:0.3", "--perturbed_eval", "words:0.2"]
        + TINY_TRAINING[2:]
    )
    saved = json.loads(Path("outputs/sentiment/robust/results.json").read_text())
    assert saved["extra_eval"] == results["extra_eval"]
    assert saved["extra_eval"]["same"]["accuracy"] == saved["test"]["accuracy"]
    assert saved["extra_eval"]["same"]["examples"] == 30
    assert set(saved["perturbed_eval"]) == {"typos:0.3", "words:0.2"}
    for scores in saved["perturbed_eval"].values():
        assert scores["examples"] == 30 and 0 <= scores["accuracy"] <= 1 and "per_class/positive/f1" in scores
    assert saved["data"]["used"]["train"] == 128 and saved["data"]["augmentation"]["added"] == 64
    assert saved["data"]["robustness"]["typos:0.3"]["words_hit"] > 0

    run = json.loads(wandb_inspect(next(Path("wandb").glob("offline-run-*")), "--summary", "--json"))
    summary = run["summary"]
    assert summary["extra_eval/same/accuracy"] == pytest.approx(saved["test"]["accuracy"])
    assert summary["perturbed_eval/typos:0.3/accuracy"] == pytest.approx(
        saved["perturbed_eval"]["typos:0.3"]["accuracy"]
    )

    groups = compare.main(["outputs", "--no_plots", "--format", "csv"])
    row = groups.iloc[0]
    assert row["robust:same_mean"] == pytest.approx(saved["test"]["accuracy"])
    assert row["robust:words:0.2_mean"] == pytest.approx(saved["perturbed_eval"]["words:0.2"]["accuracy"])
    header, rows = compare.leaderboard_rows(groups)
    assert header[header.index("test accuracy") + 1 :][:3] == [
        "same accuracy",
        "typos:0.3 accuracy",
        "words:0.2 accuracy",
    ]
    wandb_runs, problems = compare.load_wandb_runs(Path("wandb"))
    assert not problems and wandb_runs.iloc[0]["robust:typos:0.3"] == pytest.approx(
        saved["perturbed_eval"]["typos:0.3"]["accuracy"]
    )
    assert isinstance(wandb_runs, pd.DataFrame)


def test_extra_eval_repeats_add_up_and_the_command_line_replaces_the_experiment_file(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.csv").write_text("text,label\ngood,positive\n")
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(f"extra_eval: [a={tmp_path / 'a.csv'}]\nperturbed_eval: [typos:0.1]\n")
    base = ["--task", "sentiment", "--experiment", str(experiment)]
    assert parse_arguments(base).data.extra_eval == [f"a={tmp_path / 'a.csv'}"]
    data = parse_arguments(
        [*base, "--extra_eval", f"b={tmp_path / 'b.csv'}", "--extra_eval", f"c={tmp_path / 'c.csv'}"]
    ).data
    assert data.extra_eval == [f"b={tmp_path / 'b.csv'}", f"c={tmp_path / 'c.csv'}"]  # both kept, a replaced
    assert data.perturbed_eval == ["typos:0.1"]  # from the file, not given on the command line
    with pytest.raises(UsageError, match="--extra_eval b: expected NAME=FILE"):
        parse_arguments([*base, "--extra_eval", f"a={tmp_path / 'a.csv'}", "--extra_eval", "b"])


def test_compare_averages_each_robustness_set_over_seeds_whatever_its_name():
    def record(seed: int, score: float, with_sets: bool = True) -> dict:
        sets = {"extra_eval": {"web_std": {"f1": score}}, "perturbed_eval": {"typos:0.1": {"f1": score / 2}}}
        return {
            "task": "ner",
            "main_metric": "f1",
            "seed": seed,
            "run_name": f"r{seed}",
            "test": {"f1": 0.9},
            **(sets if with_sets else {}),
        }

    rows = [compare.run_from_results(record(seed, 0.5 + seed / 10), f"r{seed}/results.json") for seed in (1, 2)]
    groups = compare.group_runs(compare._runs_frame(rows))
    assert len(groups) == 1 and groups.iloc[0]["robust:web_std_mean"] == pytest.approx(0.65)
    header, table = compare.leaderboard_rows(compare.sort_groups(groups))
    assert header[header.index("test f1") + 1 : header.index("test f1") + 3] == ["typos:0.1 f1", "web_std f1"]
    assert table[0][header.index("web_std f1")] == "0.6500 ± 0.0707"
    csv_header = compare.render(compare.sort_groups(groups), "csv").splitlines()[0]
    assert csv_header.endswith("robust:typos:0.1_mean,robust:typos:0.1_std,robust:web_std_mean,robust:web_std_std")
    # a run without the sets: no columns for them
    plain = compare.group_runs(compare._runs_frame([compare.run_from_results(record(1, 0.5, False), "p")]))
    assert "typos:0.1 f1" not in compare.leaderboard_rows(compare.sort_groups(plain))[0]
