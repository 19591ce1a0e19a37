"""Readers for local data files: CoNLL columns, JSON lines, CSV/TSV.

Every problem names the file and line. A row is either loaded, rejected with a `UsageError`
(user files: the user must fix it), or dropped *and counted* in a `DataReport` (embedded corpora
with known defects). Nothing disappears silently.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from finetune_lab.errors import UsageError

# Generous but bounded: a multi-megabyte "line" is a broken file, not a sentence.
MAX_LINE_CHARS = 1_000_000


@dataclass
class DataReport:
    """What was loaded from where, per split, and what was dropped and why."""

    source: str = ""
    kept: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, Counter] = field(default_factory=dict)
    # sha256 of each split's parsed rows: the same number means the same examples, whatever the source.
    checksums: dict[str, str] = field(default_factory=dict)
    # Rows kept but changed on the way in (recovered, repaired): counted like drops, never silent.
    repaired: dict[str, Counter] = field(default_factory=dict)
    # --augment: the copies added to the training split (augmentation.augmented_rows' record)
    augmentation: dict = field(default_factory=dict)
    # --extra_eval / --perturbed_eval: the more sets the final model is scored on, {name: what it is}
    robustness: dict[str, dict] = field(default_factory=dict)

    def drop(self, split: str, reason: str, count: int = 1) -> None:
        self.dropped.setdefault(split, Counter())[reason] += count

    def repair(self, split: str, what: str, count: int = 1) -> None:
        self.repaired.setdefault(split, Counter())[what] += count

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "kept": dict(self.kept),
            "dropped": {split: dict(reasons) for split, reasons in self.dropped.items() if reasons},
            "checksums": dict(self.checksums),
            "repaired": {split: dict(what) for split, what in self.repaired.items() if what},
            **({"augmentation": dict(self.augmentation)} if self.augmentation else {}),
            **({"robustness": {name: dict(info) for name, info in self.robustness.items()}} if self.robustness else {}),
        }

    def lines(self) -> list[str]:
        out = [f"data: {self.source}"]
        for split in [*self.kept, *(s for s in self.dropped if s not in self.kept)]:
            reasons = self.dropped.get(split) or {}
            why = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
            kept = f"{self.kept[split]:>7} examples" if split in self.kept else "before splitting:"
            out.append(f"  {split:<10} {kept}" + (f"  (dropped {why})" if why else ""))
        for split, what in self.repaired.items():
            if what:
                out.append(f"  {split:<10} repaired: " + ", ".join(f"{n} {w}" for w, n in sorted(what.items())))
        if self.augmentation:
            from finetune_lab.augmentation import report_line

            out.append(report_line(self.augmentation))
        if self.robustness:
            from finetune_lab.robustness import report_lines

            out += report_lines(self.robustness)
        return out


def rows_checksum(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def read_bytes(path: Path) -> bytes:
    """The file's bytes; a missing, unreadable or directory path is a UsageError naming it."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"data file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"data file is a directory, expected a file: {path}") from None
    except OSError as err:
        raise UsageError(f"cannot read data file {path}: {err.strerror or err}") from None


def iter_lines(path: Path, keepends: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line, without its newline unless `keepends`; a decoding error names its line.

    Lines end at LF, CRLF or CR only, as the csv module splits a file opened with newline=''.
    """
    for lineno, raw in enumerate(read_bytes(path).splitlines(keepends=keepends), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UsageError(
                f"{path}:{lineno}: not valid UTF-8 (byte {err.start}); re-save the file as UTF-8"
            ) from None
        if len(line) > MAX_LINE_CHARS:
            raise UsageError(f"{path}:{lineno}: line is {len(line):,} characters long; is the file broken?")
        yield lineno, line.lstrip("\ufeff") if lineno == 1 else line


def numeric_names(label_names: Sequence[str]) -> bool:
    """Whether any label is named by an integer ('1', '-1'): then integers in the data are names too."""
    return any(name.strip().lstrip("-").isdigit() for name in label_names)


def resolve_label(value: object, label_names: Sequence[str], where: str) -> str:
    """The label `value` names; anything else is an error.

    Text is always a name: '1' is the label named 1, never a position. A number that is not text (a
    JSON number, a Hub integer column without class names) is a name when the label set has integer
    names, else a 0-based position in `label_names`, as `datasets` writes class ids.
    """
    if isinstance(value, str):
        if value.strip() in label_names:
            return value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        if numeric_names(label_names):
            if str(value) in label_names:
                return str(value)
        elif 0 <= value < len(label_names):
            return label_names[value]
    digits = isinstance(value, str) and value.strip().lstrip("-").isdigit()
    hint = " (text labels are names, not positions)" if digits else ""
    raise UsageError(
        f"{where}: label {value!r} is not in the label set {list(label_names)}{hint}; "
        "fix the row or declare the labels with --labels"
    )


IOB1_REPAIR = "I- tags starting an entity read as B- (IOB1 to IOB2)"


def to_iob2(tags: list[str], label_names: Collection[str]) -> tuple[list[str], int]:
    """IOB2 tags, and how many changed: an I-X that starts an entity (first in the sentence, after O or
    after another type) becomes B-X, as IOB1 files write entities. Only where the label set has B-X:
    with I- tags alone (the IO scheme) nothing changes."""
    out, changed, previous = [], 0, "O"
    for tag in tags:
        kind = tag[2:]
        starts = tag.startswith("I-") and not (previous[:2] in ("B-", "I-") and previous[2:] == kind)
        if starts and f"B-{kind}" in label_names:
            tag, changed = f"B-{kind}", changed + 1
        out.append(tag)
        previous = tag
    return out, changed


def read_conll(
    path: Path, label_names: Sequence[str], report: DataReport | None = None, split: str = "all"
) -> list[dict]:
    """CoNLL column format: `token ... TAG` per line, blank line between sentences.

    The tag is the last column; `-DOCSTART-` lines separate documents and are not sentences. IOB1
    tags are converted to IOB2 (`to_iob2`), counted in `report` under `split`.
    """
    report = report if report is not None else DataReport()
    sentences: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    allowed = set(label_names)

    def flush() -> None:
        if tokens:
            iob2, changed = to_iob2(tags, allowed)
            if changed:
                report.repair(split, IOB1_REPAIR, changed)
            sentences.append({"tokens": list(tokens), "tags": iob2})
            tokens.clear()
            tags.clear()

    for lineno, line in iter_lines(path):
        columns = line.split()
        if not columns:
            flush()
            continue
        if columns[0] == "-DOCSTART-":
            flush()
            continue
        if len(columns) < 2:
            raise UsageError(f"{path}:{lineno}: expected 'TOKEN ... TAG' (2 or more columns), got {line!r}")
        tag = columns[-1]
        if tag not in allowed:
            raise UsageError(
                f"{path}:{lineno}: tag {tag!r} is not in the label set {sorted(allowed)}; "
                "fix the row or declare the labels with --labels"
            )
        tokens.append(columns[0])
        tags.append(tag)
    flush()
    if not sentences:
        raise UsageError(f"{path}: no sentences found (expected CoNLL columns 'TOKEN ... TAG')")
    return sentences


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON-lines file."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UsageError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise UsageError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


def missing_columns(where: str, wanted: Sequence[str], present: Sequence[str], kind: str = "column") -> UsageError:
    """The one-line error for columns a file or data set lacks: which, what it has, the options that name them."""
    missing = [c for c in dict.fromkeys(wanted) if c not in present]
    shown = ", ".join(name if name.isprintable() else repr(name) for name in present) or "none"
    names = ", ".join(repr(c) for c in missing)
    return UsageError(
        f"{where}: no {kind} {names} (it has: {shown}); name yours with --text_column_name / --label_column_name"
    )


def read_delimited(
    path: Path, report: DataReport | None = None, split: str = "all", required: Sequence[str] = ()
) -> Iterator[tuple[int, dict]]:
    """(line number, row) for a CSV (or, by suffix, TSV) file with a header row.

    Read as CSV: a quoted cell may span lines and keeps its newlines; the line number is the line
    the row starts on. A row of empty cells is skipped and counted in `report` as a blank row.
    Strict: text after a closing quote, or a quote still open at the end of the file, is an error.
    A header without every `required` column is an error naming the file and the columns it has.
    """
    report = report if report is not None else DataReport()
    lines = [line for _, line in iter_lines(path, keepends=True)]  # decodes with line numbers first
    if not lines:
        raise UsageError(f"{path}: file is empty; expected a header row such as 'text,label'")
    delimiter = "\t" if Path(path).suffix.lower() == ".tsv" else ","
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    row_start = 1  # a quoted field may span lines: errors name the line its row starts on
    try:
        header = [name.strip() for name in next(reader)]
        if any(c not in header for c in required):
            raise missing_columns(str(path), required, header)
        names = ", ".join(name if name.isprintable() else repr(name) for name in header)
        row_start = reader.line_num + 1
        for row in reader:
            lineno, row_start = row_start, reader.line_num + 1
            if all(not cell.strip() for cell in row):
                report.drop(split, "blank rows")
                continue
            if len(row) != len(header):
                raise UsageError(f"{path}:{lineno}: expected {len(header)} columns ({names}), got {len(row)}")
            yield lineno, dict(zip(header, row, strict=True))
    except csv.Error as err:
        if "expected after" in str(err):
            hint = 'text after a closing quote; quote the whole cell and double any quote inside it ("")'
        else:
            hint = 'is a quote (") left open on this line?'
        raise UsageError(f"{path}:{row_start}: malformed CSV ({err}); {hint}") from None


def read_token_file(
    path: Path,
    label_names: Sequence[str],
    report: DataReport | None = None,
    split: str = "all",
    tokens_column: str | None = None,
    tags_column: str | None = None,
) -> list[dict]:
    """Token-classification examples from CoNLL columns or JSON lines (`tokens`, `ner_tags` or `tags`).

    `tokens_column` / `tags_column` name other JSON fields (--text_column_name, --label_column_name);
    CoNLL columns have no names, so they are an error there. IOB1 tags are converted to IOB2 and
    counted in `report` (see `to_iob2`).
    """
    report = report if report is not None else DataReport()
    if Path(path).suffix.lower() not in (".jsonl", ".json"):
        if tokens_column or tags_column:
            raise UsageError(
                f"{path}: CoNLL columns have no names (token first, tag last); --text_column_name and "
                "--label_column_name name fields of JSON-lines files"
            )
        return read_conll(path, label_names, report, split)
    examples = []
    for lineno, row in read_jsonl(path):
        tags_name = tags_column or ("ner_tags" if "ner_tags" in row or "tags" not in row else "tags")
        tokens_name = tokens_column or "tokens"
        if tokens_name not in row or tags_name not in row:
            raise missing_columns(f"{path}:{lineno}", [tokens_name, tags_name], sorted(row), "field")
        tokens, tags = row[tokens_name], row[tags_name]
        if not isinstance(tokens, list) or not isinstance(tags, list):
            raise UsageError(f"{path}:{lineno}: expected lists '{tokens_name}' and '{tags_name}'")
        if len(tokens) != len(tags):
            raise UsageError(f"{path}:{lineno}: {len(tokens)} tokens but {len(tags)} tags")
        if not tokens:
            raise UsageError(f"{path}:{lineno}: empty sentence (no tokens)")
        where = f"{path}:{lineno}"
        iob2, changed = to_iob2([resolve_label(t, label_names, where) for t in tags], label_names)
        if changed:
            report.repair(split, IOB1_REPAIR, changed)
        examples.append({"tokens": [str(t) for t in tokens], "tags": iob2})
    if not examples:
        raise UsageError(f"{path}: no examples found")
    return examples


def parse_score(value: object, where: str) -> float:
    """A numeric target (regression); anything that is not a finite number is an error."""
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        score = float("nan")
    if isinstance(value, bool) or score != score or score in (float("inf"), float("-inf")):
        raise UsageError(f"{where}: label {value!r} is not a number (regression needs numeric labels)")
    return score


def text_columns(text_column: str | None, default: str = "text") -> list[str]:
    """The column(s) --text_column_name names: 'title,body' is two, joined into one text."""
    names = [c.strip() for c in (text_column or default).split(",")]
    if not all(names):
        raise UsageError(f"--text_column_name {text_column!r}: an empty column name; write e.g. title,body")
    return names


def join_text(row: dict, columns: Sequence[str], delimiter: str) -> object:
    """One text from `columns` of `row`: the cell itself for one column, else the cells joined by `delimiter`."""
    if len(columns) == 1:
        return row[columns[0]]
    cells = [row[c] for c in columns]
    return delimiter.join(cells) if all(isinstance(c, str) for c in cells) else None


def read_text_file(
    path: Path,
    label_names: Sequence[str],
    text_column: str = "text",
    regression: bool = False,
    report: DataReport | None = None,
    split: str = "all",
    label_column: str = "label",
    delimiter: str = " ",
) -> list[dict]:
    """Text-classification examples from CSV/TSV or JSON lines with a text and a label column.

    `text_column` may name several columns ('title,body'), joined with `delimiter`. With
    `regression`, labels are numbers (floats), not class names. Skipped rows are counted in `report`.
    """
    columns = text_columns(text_column)
    wanted = [*columns, label_column]
    json_lines = Path(path).suffix.lower() in (".jsonl", ".json")
    rows = read_jsonl(path) if json_lines else read_delimited(path, report, split, required=wanted)
    examples = []
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        if any(c not in row for c in wanted):
            raise missing_columns(where, wanted, sorted(row), "field")
        text = join_text(row, columns, delimiter)
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"{where}: empty text; remove the row or fill it in")
        value = row[label_column]
        label = parse_score(value, where) if regression else resolve_label(value, label_names, where)
        examples.append({"text": text, "label": label})
    if not examples:
        raise UsageError(f"{path}: no examples found")
    return examples
