#!/usr/bin/env python
"""Label new text with a saved run, or with an ensemble of runs of one task.

    python predict.py outputs/ner/RUN --input sentences.txt           # one text per line
    echo "EU rejects German call" | python predict.py outputs/ner/RUN  # from stdin
    python predict.py outputs/sentiment/RUN --input reviews.txt --output labels.jsonl
    python predict.py --ensemble outputs/sentiment/RUN1 outputs/sentiment/RUN2 [--input FILE]
    python predict.py outputs/sentiment/RUN --backend onnx --evaluate   # after export.py RUN

NER prints entities with character spans (offsets into the input line, as given); classification
prints the label and its probability; regression the predicted number. --output (or --format jsonl)
writes one JSON object per input line: line i of the output is line i of the input, and a blank
input line gets an empty prediction (counted on stderr). --ensemble averages the runs'
probabilities and reports the ensemble's test metric on the runs' own test split (--evaluate
does the same for one run). --backend onnx runs the ONNX export (int8 when there is one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from finetune_lab.errors import ArgumentParser, UsageError, run_cli  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="predict.py",
        description="Label text with a saved run (or an ensemble of runs of one task).",
        allow_abbrev=False,
    )
    parser.add_argument("run", nargs="?", help="a run folder (outputs/<task>/<run>)")
    parser.add_argument("--ensemble", nargs="+", metavar="RUN", help="average the probabilities of these runs")
    parser.add_argument("--input", help="text file, one text per line ('-' or none: stdin)")
    parser.add_argument("--output", help="write JSON lines to this file instead of printing")
    parser.add_argument("--format", default="text", choices=["text", "jsonl"], help="stdout format (default text)")
    parser.add_argument(
        "--evaluate", action="store_true", help="also report the test metric (always on with --ensemble)"
    )
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument(
        "--backend",
        default="torch",
        choices=PREDICT_BACKENDS,
        help="torch (the saved model), onnx (the export of `export.py RUN`: int8 when it has one, else fp32), "
        "onnx-fp32, onnx-int8 (default torch)",
    )
    return parser


PREDICT_BACKENDS = ("torch", "onnx", "onnx-fp32", "onnx-int8")
PROGRESS_MIN_LINES = 300  # a progress bar (stderr) from this many input lines on


def read_texts(source: str | None) -> list[str]:
    """Every line of a file or stdin, as given (blank ones too: output line i answers input line i)."""
    if source in (None, "-"):
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = Path(source).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise UsageError(f"--input {source}: file not found") from None
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--input {source}: cannot read ({err})") from None
    return lines


def format_record(record: dict[str, Any]) -> str:
    """Human-readable lines for one labelled text."""
    if not record["text"].strip():
        return ""  # a blank input line: an empty prediction
    if "score" in record:
        return f"{record['score']:.4f}\t{record['text']}"
    if "entities" not in record:
        return f"{record['label']}\t{record['probability']:.4f}\t{record['text']}"
    lines = [record["text"]]
    for e in record["entities"]:
        lines.append(f"  {e['type']:<6} [{e['start']}:{e['end']}]  {e['text']}  ({e['score']:.3f})")
    if not record["entities"]:
        lines.append("  (no entities)")
    return "\n".join(lines)


def label_lines(runs: list[Any], lines: list[str], batch_size: int) -> list[dict[str, Any]]:
    """One record per line, in order, in batches; blank lines get an empty record (counted on stderr)."""
    from tqdm.auto import tqdm

    from finetune_lab import inference

    blank = [i for i, line in enumerate(lines) if not line.strip()]
    if blank:
        print(
            f"{len(blank)} blank input line(s) (first: line {blank[0] + 1}): empty predictions written for them",
            file=sys.stderr,
        )
    blank_set = set(blank)
    records: list[dict[str, Any]] = [inference.empty_record(runs[0], line) for line in lines]
    todo = [i for i in range(len(lines)) if i not in blank_set]
    with tqdm(
        total=len(todo), unit="line", desc="predicting", file=sys.stderr, disable=len(lines) < PROGRESS_MIN_LINES
    ) as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            for i, record in zip(chunk, inference.label_texts(runs, [lines[i] for i in chunk]), strict=True):
                records[i] = record
            bar.update(len(chunk))
    return records


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from transformers.utils import logging as hf_logging

    from finetune_lab import inference

    hf_logging.disable_progress_bar()  # no "Loading weights" bars between predictions
    args = build_parser().parse_args(argv)
    if bool(args.run) == bool(args.ensemble):
        raise UsageError("give one RUN folder, or --ensemble RUN RUN ...")
    paths = args.ensemble or [args.run]
    if args.batch_size < 1:
        raise UsageError(f"--batch_size {args.batch_size}: must be at least 1")
    runs = [inference.load_run(path, args.backend) for path in paths]
    inference.check_ensemble(runs)
    if args.backend != "torch":
        print(f"backend {runs[0].backend}: {', '.join(str(r.model_file) for r in runs)}", file=sys.stderr)
    out: dict[str, Any] = {"runs": [str(r.path) for r in runs], "records": []}

    if args.evaluate or args.ensemble:
        metrics = inference.evaluate(runs)
        metric = runs[0].results.get("main_metric")
        saved = [r.results.get("test", {}).get(metric) for r in runs]
        out["test"] = metrics
        alone = ", ".join("n/a" if s is None else f"{s:.4f}" for s in saved)
        what = f"ensemble of {len(runs)} runs" if args.ensemble else "run"
        where = runs[0].results["task"] + ("" if runs[0].backend == "torch" else f", {runs[0].backend}")
        print(
            f"{what} ({where}): test {metric} {metrics[metric]:.4f}; each run alone: {alone}",
            file=sys.stderr,
        )
        if args.input is None and args.ensemble:
            return out  # evaluation only: no text to label

    texts = read_texts(args.input)
    out["records"] = records = label_lines(runs, texts, args.batch_size)
    if args.output:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        Path(args.output).write_text(lines, encoding="utf-8")
        print(f"wrote {len(records)} records to {args.output}", file=sys.stderr)
    elif args.format == "jsonl":
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
    else:
        for record in records:
            print(format_record(record))
    return out


def cli() -> None:
    run_cli(main, "predict.py")


if __name__ == "__main__":
    cli()
