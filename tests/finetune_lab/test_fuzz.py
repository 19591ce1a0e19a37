"""Property-based: malformed input is a clear error naming the file (and line), or a complete load.

Never a traceback from deep inside a library, and never a row that vanishes without a word.
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import math
import re
import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from finetune_lab.arguments import parse_arguments
from finetune_lab.errors import UsageError
from finetune_lab.readers import MAX_LINE_CHARS, DataReport, read_conll, read_text_file, read_token_file, rows_checksum

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


# Every file the examples write goes here, removed when the test process ends.
SCRATCH = Path(tempfile.mkdtemp(prefix="finetune-lab-fuzz-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
UNUSED_OUTPUT_DIR = str(SCRATCH / "never-created")  # parsing checks it, nothing writes it


def write_tmp(suffix: str, data: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=suffix, dir=SCRATCH)
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


# CSV cells as users write them: commas, quotes, newlines (LF, CRLF, CR) inside cells, blank cells.
cell_text = st.one_of(
    st.text(alphabet='ab ,"\n\r\t', max_size=8),
    # what breaks a file written without quoting: a quote closed mid-cell, one never closed, a newline
    st.sampled_from(['"quoted" tail', '"open', 'say "hi"', "two\nlines", '"a\nb"', " , "]),
)
LABEL_SETS = (("neg", "pos"), ("1", "2", "3", "4", "5"), ("0", "1"))
label_cells = st.one_of(
    st.sampled_from(["neg", "pos", " pos ", "0", "1", "2", "5", "6", "-1", "maybe", ""]),
    cell_text,
)
blank_rows = st.sampled_from([(), ("", ""), ("  ", " "), ("",)])  # skipped and counted
odd_rows = st.one_of(
    st.tuples(cell_text, label_cells),  # empty texts, labels that name nothing (digits too)
    st.lists(cell_text, min_size=1, max_size=3).map(tuple),  # wrong column counts
)


@st.composite
def csv_tables(draw, label_names: tuple[str, ...]) -> list[tuple]:
    """Rows with the given labels (cells with quotes, commas, newlines), with up to two blank rows and
    one odd row among them."""
    labels = st.sampled_from([*label_names, *(f" {name} " for name in label_names)])
    rows = draw(st.lists(st.tuples(cell_text.filter(str.strip), labels), min_size=1, max_size=8))
    for odd in [*[blank_rows] * draw(st.sampled_from([1, 0, 2])), *[odd_rows] * draw(st.integers(0, 1))]:
        rows.insert(draw(st.integers(0, len(rows))), draw(odd))
    return rows


def csv_file(rows: list[tuple], header: str, style: str, delimiter: str) -> str:
    """The rows as a user's tool might save them: properly quoted (LF or CRLF), or put together by hand."""
    if style == "joined":  # no quoting: a cell's quote or newline changes the file's structure
        return header + "\n" + "".join(delimiter.join(row) + "\n" for row in rows)
    if style == "hand-quoted":  # every cell quoted, quotes inside not doubled: a quote closes the cell early
        return header + "\n" + "".join(delimiter.join(f'"{cell}"' for cell in row) + "\n" for row in rows)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n" if style == "crlf" else "\n")
    writer.writerows(rows)
    return header + ("\r\n" if style == "crlf" else "\n") + out.getvalue()


def csv_oracle(path: Path, label_names: tuple[str, ...], delimiter: str) -> tuple[list[dict], int] | None:
    """What the documented rules make of the raw file, read by Python's csv module: the examples and
    the number of blank rows skipped, or None when the file must be refused with an error."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle, delimiter=delimiter, strict=True))
    except csv.Error:
        return None
    if not rows:
        return None
    header = [name.strip() for name in rows[0]]
    examples, blank = [], 0
    for row in rows[1:]:
        if all(not cell.strip() for cell in row):
            blank += 1
            continue
        if len(row) != len(header):
            return None
        record = dict(zip(header, row, strict=True))
        if "text" not in record or "label" not in record or not record["text"].strip():
            return None
        if record["label"].strip() not in label_names:  # a label is a name, digits too
            return None
        examples.append({"text": record["text"], "label": record["label"].strip()})
    return (examples, blank) if examples else None


def one_line_error_naming(err: UsageError, *names: str) -> None:
    message = str(err)
    assert "\n" not in message and "\r" not in message, message
    assert any(name in message for name in names), (message, names)


@FUZZ
@given(
    st.sampled_from(LABEL_SETS).flatmap(lambda names: st.tuples(st.just(names), csv_tables(names))),
    st.sampled_from(["text,label", "text,label", "text,label", "label,text", "text", "", "text,label,note"]),
    st.sampled_from(["quoted", "quoted", "crlf", "joined", "hand-quoted"]),
    st.sampled_from([".csv", ".tsv"]),
)
# always tried, whatever the draw: a multi-line cell among blank rows, a quote inside a hand-quoted
# cell (strict CSV refuses it; a lenient reader merges cells), labels that are numbers
@example((("neg", "pos"), [("two\nlines", "neg"), (), ("", ""), ("b", " pos ")]), "text,label", "quoted", ".csv")
@example((("neg", "pos"), [('say "hi" now', "neg"), ("b", "pos")]), "text,label", "hand-quoted", ".csv")
@example((("1", "2", "3"), [("x", "1"), ("y", "3")]), "text,label", "crlf", ".tsv")
def test_csv_text_files_load_as_the_csv_module_reads_them(table, header, style, suffix):
    label_names, rows = table
    delimiter = "\t" if suffix == ".tsv" else ","
    header = header.replace(",", delimiter)
    rows = [tuple(cell.replace(delimiter, ",") if style != "quoted" else cell for cell in row) for row in rows]
    path = write_tmp(suffix, csv_file(rows, header, style, delimiter).encode("utf-8"))
    expected = csv_oracle(path, label_names, delimiter)
    report = DataReport()
    try:
        loaded = read_text_file(path, label_names, report=report, split="train")
    except UsageError as err:
        assert expected is None, f"refused a file the csv module reads as {expected}: {err}"
        one_line_error_naming(err, str(path))
        event("refused")
        return
    assert expected is not None, f"loaded {loaded} from a file the rules refuse"
    event("loaded")
    examples, blank = expected
    assert loaded == examples  # the same rows, newlines and quotes inside cells kept
    assert report.dropped.get("train", {}).get("blank rows", 0) == blank  # every skipped row counted
    if blank:
        event("loaded, with blank rows")
    if any("\n" in row["text"] or "\r" in row["text"] for row in loaded):
        event("loaded, with multi-line cells")


json_labels = st.one_of(
    st.integers(-2, 6),
    st.sampled_from(["neg", "pos", "0", "1", "5", " 2 ", True, None, 1.0]),
)


def json_label_oracle(value: object, label_names: tuple[str, ...]) -> str | None:
    """The documented rule: text is a name; a JSON integer is a name when the labels are integers, else a position."""
    if isinstance(value, str):
        return value.strip() if value.strip() in label_names else None
    if isinstance(value, int) and not isinstance(value, bool):
        if any(name.lstrip("-").isdigit() for name in label_names):
            return str(value) if str(value) in label_names else None
        return label_names[value] if 0 <= value < len(label_names) else None
    return None


@FUZZ
@given(st.lists(json_labels, min_size=1, max_size=6), st.sampled_from(LABEL_SETS))
def test_json_labels_follow_the_names_first_rule(values, label_names):
    path = write_tmp(".jsonl", "\n".join(json.dumps({"text": "t", "label": v}) for v in values).encode())
    expected = [json_label_oracle(v, label_names) for v in values]
    try:
        loaded = read_text_file(path, label_names)
    except UsageError as err:
        assert None in expected, err
        one_line_error_naming(err, f"{path}:{expected.index(None) + 1}:")
        return
    assert [row["label"] for row in loaded] == expected


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
    st.integers(-5, 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.sampled_from(["fast", "3e-5", "1e-3", "-1", "0", "yes", "epoch", "often", "O", "1"]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(0, 3) | st.sampled_from(["a", "b", "O"]), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=1),
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
        "labels",
        "per_device_train_batch_size",
        "do_train",
        "run_name",
    ]
)


def number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def assert_usable(args) -> None:
    """What a run needs of parsed options: the right types and values it can use (not just 'it parsed')."""
    t, d = args.training, args.data
    assert isinstance(t.seed, int) and not isinstance(t.seed, bool) and 0 <= t.seed < 2**32
    assert number(t.learning_rate) and math.isfinite(t.learning_rate) and t.learning_rate > 0
    assert number(t.num_train_epochs)
    if t.do_train and t.max_steps <= 0:
        assert math.isfinite(t.num_train_epochs) and t.num_train_epochs > 0
    assert isinstance(t.per_device_train_batch_size, int) and t.per_device_train_batch_size >= 1
    assert isinstance(t.do_train, bool) and isinstance(t.bf16, bool) and isinstance(d.label_all_tokens, bool)
    assert isinstance(d.max_seq_length, int) and d.max_seq_length >= 2
    assert d.max_train_samples is None or (isinstance(d.max_train_samples, int) and d.max_train_samples >= 1)
    assert d.labels is None or (isinstance(d.labels, list) and all(isinstance(x, str) for x in d.labels))
    assert isinstance(t.run_name, str | None) and isinstance(args.task.label_names, tuple)
    assert len(set(args.task.label_names)) == len(args.task.label_names)
    assert isinstance(t.report_to, list) and all(isinstance(r, str) for r in t.report_to)


@FUZZ
@given(st.one_of(st.dictionaries(option_names, yaml_values, max_size=4).map(json.dumps), st.text(max_size=60)))
def test_experiment_files(content):
    path = write_tmp(".yaml", content.encode("utf-8"))
    try:
        args = parse_arguments(["--task", "ner", "--experiment", str(path), "--output_dir", UNUSED_OUTPUT_DIR])
    except UsageError as err:
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        keys = list(parsed) if isinstance(parsed, dict) else []  # the options a drawn mapping sets
        # a bad file or value names the file (and key); a bad combination names the option
        one_line_error_naming(err, str(path), "--task", *(f"--{key}" for key in keys))
        return
    assert args.task.name == "ner"
    assert_usable(args)


cli_options = st.sampled_from(
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
        "--per_device_train_batch_size",
        "--model_name_or_path",
        "-x",
        "--",
    ]
)
cli_values = st.one_of(
    st.sampled_from(["0", "-1", "-5", "nan", "1e-3", "8", "100000", "./no/model", "pos", "neg"]),
    st.text(alphabet="0123456789.-eainoftruw/", max_size=5),
)
# option-value pairs (the values the issue lists among them), and now and then a loose word
pairs = st.tuples(cli_options, cli_values).map(list)
argv_parts = st.one_of(pairs, pairs, pairs, (cli_options | cli_values).map(lambda word: [word]))


@FUZZ
@given(st.lists(argv_parts, max_size=3).map(lambda parts: [word for part in parts for word in part]))
@example(["--learning_rate", "-1"])
@example(["--max_train_samples", "0"])
@example(["--num_train_epochs", "0"])
def test_command_lines(argv):
    try:
        args = parse_arguments(["--task", "sentiment", "--output_dir", UNUSED_OUTPUT_DIR, *argv])
    except UsageError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert_usable(args)


# --- whole runs: every input ends in a run whose rows equal the oracle, or one line and exit 2 ----------

GOOD, BAD, BAD_IF_FINAL = "good", "bad", "bad unless the command line sets it"
# (option, value, whether a run can use it); the tiny model has 256 positions
RUN_OPTIONS = [
    ("--learning_rate", "1e-3", GOOD),
    ("--learning_rate", "-1", BAD),
    ("--learning_rate", "fast", BAD),
    ("--per_device_train_batch_size", "4", GOOD),
    ("--per_device_train_batch_size", "0", BAD),
    ("--max_train_samples", "3", GOOD),
    ("--max_train_samples", "0", BAD),
    ("--max_train_samples", "-5", BAD),
    ("--max_seq_length", "2", GOOD),
    ("--max_seq_length", "256", GOOD),
    ("--max_seq_length", "100000", BAD),
    ("--num_train_epochs", "0", BAD),
    ("--num_train_epochs", "0.5", GOOD),
    ("--seed", "-3", BAD),
    ("--model_name_or_path", "./no/such/model", BAD),
]
# (experiment-file key, value, usable): a value of the wrong type or out of range is refused even where
# the command line overrides it; zero epochs only matter if they are what the run would use
RUN_EXPERIMENT = [
    ("seed", [1, 2], BAD),
    ("seed", 3, GOOD),
    ("labels", "negative", BAD),
    ("learning_rate", "fast", BAD),
    ("learning_rate", "3e-3", GOOD),
    ("learning_rate", -1, BAD),
    ("num_train_epochs", 0, BAD_IF_FINAL),
    ("per_device_train_batch_size", 2, GOOD),
    ("bf16", "maybe", BAD),
]


def usable_options(options: list[tuple], experiment: list[tuple]) -> bool:
    given = {option.removeprefix("--") for option, _, _ in options}
    return all(ok == GOOD for *_, ok in options) and all(
        ok == GOOD or (ok == BAD_IF_FINAL and key in given) for key, _, ok in experiment
    )


@settings(
    max_examples=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],  # capsys: read per example
)
@given(
    table=st.sampled_from([None, None, *LABEL_SETS, ("pos", "neg", "pos")]).flatmap(
        lambda names: st.tuples(st.just(names), csv_tables(names or ("negative", "positive")))
    ),
    style=st.sampled_from(["quoted", "quoted", "joined"]),
    options=st.lists(st.sampled_from(RUN_OPTIONS), max_size=1),
    experiment=st.lists(st.sampled_from(RUN_EXPERIMENT), max_size=1),
)
# always tried: a run on labels that are numbers with a multi-line cell and a blank row (the issue's
# shifted labels and merged rows), zero epochs from an experiment file, a length the model cannot take
@example(
    table=(("1", "2", "3", "4", "5"), [("first\nsecond", "1"), ("x", "5"), (), ("y", "4")]),
    style="quoted",
    options=[],
    experiment=[],
)
@example(
    table=(None, [("a", "negative")]), style="quoted", options=[], experiment=[("num_train_epochs", 0, BAD_IF_FINAL)]
)
@example(
    table=(None, [("a", "negative")]),
    style="quoted",
    options=[("--max_seq_length", "100000", BAD)],  # fails once the model is built
    experiment=[],
)
def test_runs_end_in_the_oracles_rows_or_one_line_and_exit_2(tiny_model_dir, capsys, table, style, options, experiment):
    label_names, rows = table
    folder = Path(tempfile.mkdtemp(dir=SCRATCH))
    try:
        check_run(tiny_model_dir, capsys, folder, label_names, rows, style, options, experiment)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # a finished run holds a model: do not keep one per example


def check_run(tiny_model_dir, capsys, folder, label_names, rows, style, options, experiment) -> None:
    from finetune_lab.errors import run_cli
    from run import main

    data = folder / "data.csv"
    data.write_text(csv_file(rows, "text,label", style, ","), encoding="utf-8", newline="")
    argv = ["--task", "sentiment", "--model_name_or_path", str(tiny_model_dir)]
    argv += ["--train_file", str(data), "--validation_file", str(data), "--output_dir", str(folder / "run")]
    argv += ["--report_to", "none", "--disable_tqdm", "true", "--tokenized_cache_dir", "none"]
    argv += ["--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false"]
    argv += ["--early_stopping_patience", "0"]
    if label_names:
        argv += ["--labels", *label_names]
    if experiment:
        exp = folder / "e.yaml"
        exp.write_text(yaml.safe_dump({key: value for key, value, _ in experiment}))
        argv += ["--experiment", str(exp)]
    for option, value, _ in options:
        argv += [option, value]

    effective = tuple(label_names or ("negative", "positive"))
    unique = len(set(effective)) == len(effective)
    expected = csv_oracle(data, effective, ",") if unique else None
    usable = unique and usable_options(options, experiment)
    capsys.readouterr()
    try:
        run_cli(lambda: main(argv), "run.py")
    except SystemExit as stop:
        err = capsys.readouterr().err.strip()
        assert stop.code == 2, err
        # one line, the last: before it only library progress ('Loading weights' once the model loaded)
        assert err.count("run.py: error: ") == 1 and "Traceback" not in err, err
        err = err.splitlines()[-1]
        assert err.startswith("run.py: error: "), err
        assert not (usable and expected is not None), f"a good input was refused: {err}"
        event("refused: " + ("options" if not usable else "file"))
        return
    assert usable and expected is not None, f"ran on input that must be refused: {argv}"
    event("ran")
    results = json.loads((folder / "run" / "results.json").read_text(), parse_constant=lambda c: 1 / 0)
    examples, blank = expected
    assert results["data"]["kept"]["train"] == len(examples)
    assert results["data"]["checksums"]["train"] == rows_checksum(examples)  # trained on the oracle's rows
    assert results["data"]["dropped"].get("train", {}).get("blank rows", 0) == blank
    assert results["labels"] == list(effective)
