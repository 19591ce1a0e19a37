"""Property-based: malformed input is a clear error naming the file (and line), or a complete load.

Never a traceback from deep inside a library, and never a row that vanishes without a word.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetune_lab.arguments import parse_arguments
from finetune_lab.errors import UsageError
from finetune_lab.readers import MAX_LINE_CHARS, read_conll, read_text_file, read_token_file

LABELS = ("O", "B-PER", "I-PER")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

words = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=8)
conll_lines = st.one_of(
    st.tuples(words, st.sampled_from(LABELS)).map(" ".join),  # a good token line
    st.just(""),  # sentence break
    st.just("-DOCSTART- -X- -X- O"),
    words,  # one column only
    st.tuples(words, st.sampled_from(["B-CITY", "X", "b-per"])).map(" ".join),  # unknown tag
    st.just("x " * (MAX_LINE_CHARS // 2 + 1) + "O"),  # a huge line
)
bad_bytes = st.sampled_from([b"", b"\xff\xfe", b"\x80abc", b"\x00"])


def check(path: Path, load, expected_rows: int | None, err_lines: set[int] | None = None):
    """The load either names the file (and a line) in a UsageError, or returns every row."""
    try:
        rows = load(path)
    except UsageError as err:
        message = str(err)
        assert message.startswith(str(path)) or str(path) in message, message
        line = re.match(re.escape(str(path)) + r":(\d+):", message)
        if line and err_lines is not None:
            assert int(line.group(1)) in err_lines, (message, err_lines)
        return None
    if expected_rows is not None:
        assert len(rows) == expected_rows
    return rows


def write_tmp(suffix: str, data: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=suffix)
    handle.write(data)
    handle.close()
    return Path(handle.name)


@FUZZ
@given(st.lists(conll_lines, max_size=30), st.lists(bad_bytes, max_size=2))
def test_conll_files(lines, junk):
    data = ("\n".join(lines)).encode("utf-8") + b"".join(junk)
    path = write_tmp(".txt", data)
    good_tokens = sum(
        1 for line in lines if len(line.split()) >= 2 and line.split()[-1] in LABELS and line.split()[0] != "-DOCSTART-"
    )
    rows = check(path, lambda p: read_conll(p, LABELS), None, set(range(1, len(lines) + 2)))
    if rows is not None:  # loaded: every token line is in a sentence, none dropped
        assert sum(len(r["tokens"]) for r in rows) == good_tokens
        assert all(len(r["tokens"]) == len(r["tags"]) for r in rows)


json_rows = st.one_of(
    st.fixed_dictionaries({"tokens": st.lists(words, min_size=1, max_size=4)}).map(
        lambda r: {**r, "ner_tags": ["O"] * len(r["tokens"])}
    ),
    st.fixed_dictionaries(
        {"tokens": st.lists(words, max_size=3), "ner_tags": st.lists(st.integers(-2, 5), max_size=3)}
    ),
    st.dictionaries(st.sampled_from(["tokens", "tags", "text"]), st.integers() | st.text(max_size=5), max_size=2),
    st.lists(st.integers(), max_size=2),
)
jsonl_lines = st.one_of(json_rows.map(json.dumps), st.just(""), st.just("{not json"), st.just("[1, 2"))


@FUZZ
@given(st.lists(jsonl_lines, max_size=20))
def test_jsonl_token_files(lines):
    path = write_tmp(".jsonl", "\n".join(lines).encode("utf-8"))
    expected = sum(1 for line in lines if line.strip())
    check(path, lambda p: read_token_file(p, LABELS), expected, set(range(1, len(lines) + 1)))


cells = st.one_of(st.text(alphabet="abc xyz", max_size=6), st.just(""), st.just("   "), st.just('"q,uoted"'))
csv_rows = st.one_of(
    st.tuples(st.text(alphabet="abc xyz", min_size=1, max_size=8).filter(str.strip), st.sampled_from(["pos", "neg"])),
    st.tuples(cells, st.sampled_from(["pos", "neg", "0", "1", "7", "maybe", ""])),
    st.lists(cells, min_size=1, max_size=4).map(tuple),
)


@FUZZ
@given(st.lists(csv_rows, max_size=20), st.sampled_from(["text,label", "label,text", "text", ""]))
def test_csv_text_files(rows, header):
    body = "\n".join(",".join(row) for row in rows)
    path = write_tmp(".csv", f"{header}\n{body}\n".encode())
    loaded = check(path, lambda p: read_text_file(p, ("neg", "pos")), None)
    if loaded is not None:
        non_blank = [row for row in rows if any(cell.strip() for cell in ",".join(row).split(","))]
        assert len(loaded) == len(non_blank)
        assert all(r["text"].strip() and r["label"] in ("neg", "pos") for r in loaded)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_any_loader(data):
    for suffix, load in (
        (".txt", lambda p: read_conll(p, LABELS)),
        (".jsonl", lambda p: read_token_file(p, LABELS)),
        (".csv", lambda p: read_text_file(p, ("neg", "pos"))),
    ):
        check(write_tmp(suffix, data), load, None)


yaml_values = st.one_of(
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
option_names = st.sampled_from(
    [
        "learning_rate",
        "num_train_epochs",
        "seed",
        "max_seq_length",
        "report_to",
        "eval_strategy",
        "label_all_tokens",
        "lr",
        "task",
        "bf16",
        "max_train_samples",
    ]
)


@FUZZ
@given(st.one_of(st.dictionaries(option_names, yaml_values, max_size=4).map(json.dumps), st.text(max_size=60)))
def test_experiment_files(content):
    path = write_tmp(".yaml", content.encode("utf-8"))
    try:
        args = parse_arguments(["--task", "ner", "--experiment", str(path)])
    except UsageError as err:
        assert str(err)  # any readable message; file-level problems name the file
        return
    assert args.task.name == "ner"


argv_items = st.one_of(
    st.sampled_from(
        [
            "--learning_rate",
            "--num_train_epochs",
            "--seed",
            "--max_seq_length",
            "--bf16",
            "--lr",
            "--eval_strategy",
            "--labels",
            "--report_to",
            "--max_train_samples",
            "-x",
            "--",
        ]
    ),
    st.text(alphabet="0123456789.-eainoftruw", max_size=5),
)


@FUZZ
@given(st.lists(argv_items, max_size=6))
def test_command_lines(argv):
    try:
        parse_arguments(["--task", "sentiment", *argv])
    except UsageError as err:
        assert str(err)
