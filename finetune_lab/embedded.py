"""The embedded defaults: files shipped inside installed packages, and what their corpora share.

Task modules use these to read the data sets that install from PyPI (see ../shared/DATA.md): one
place to find a package file, one fixed split seed, one splitter, one de-duplicator and one reader
for the Hutto & Gilbert (2014) `id<TAB>rating<TAB>text` snippet files.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finetune_lab.errors import UsageError
from finetune_lab.readers import DataReport, iter_lines

# A split is part of the data set, not of the run: every run sees the same rows, whatever its --seed.
SPLIT_SEED = 42
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def package_file(package: str, relative: str) -> Path:
    """A file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"the data package '{package}' is not installed; run `make setup`")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise UsageError(f"{path} is missing from the installed package '{package}'; reinstall it (`make setup`)")
    return path


def fixed_split(
    rows: list[dict], stratify_by: str | None, seed: int = SPLIT_SEED, fractions: Sequence[float] = SPLIT_FRACTIONS
) -> dict[str, list[dict]]:
    """Seeded train/validation/test split (80/10/10), stratified by a column or (None) a plain shuffle."""
    from sklearn.model_selection import train_test_split

    def labels(part: list[dict]) -> list[Any] | None:
        return [row[stratify_by] for row in part] if stratify_by else None

    train, rest = train_test_split(rows, train_size=fractions[0], random_state=seed, stratify=labels(rows))
    validation, test = train_test_split(
        rest, train_size=fractions[1] / (fractions[1] + fractions[2]), random_state=seed, stratify=labels(rest)
    )
    return {"train": train, "validation": validation, "test": test}


class DistinctTexts:
    """Texts with the labels they were seen with: repeats are counted as duplicates, and a text
    seen with two different labels is dropped (no single right answer) and counted: one count per
    (text, label) pair, or per text with `count_conflicting_texts`."""

    def __init__(
        self, report: DataReport, duplicate_reason: str, conflict_reason: str, count_conflicting_texts: bool = False
    ) -> None:
        self.report, self.duplicate_reason, self.conflict_reason = report, duplicate_reason, conflict_reason
        self.count_conflicting_texts = count_conflicting_texts
        self._labels: dict[str, set] = {}

    def add(self, text: str, label: Any) -> None:
        labels = self._labels.setdefault(text, set())
        if label in labels:
            self.report.drop("all", self.duplicate_reason)
        labels.add(label)

    def unambiguous(self) -> list[tuple[str, Any]]:
        """(text, label) for every text seen with one label only, in first-seen order."""
        kept = []
        for text, labels in self._labels.items():
            if len(labels) > 1:
                self.report.drop("all", self.conflict_reason, 1 if self.count_conflicting_texts else len(labels))
            else:
                kept.append((text, next(iter(labels))))
        return kept


def read_rated_snippets(path: Path, report: DataReport) -> list[tuple[float, str]]:
    """(mean rating, text) from a Hutto & Gilbert `id<TAB>rating<TAB>text` file with a header line.

    A row that is not in that shape means the file is not the one this reader knows: an error
    naming the line. Empty texts are dropped and counted.
    """
    snippets = []
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
        snippets.append((rating, text))
    return snippets
