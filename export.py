#!/usr/bin/env python
"""Export a saved run to ONNX (fp32) plus an int8 dynamically quantised copy, checked on its test set.

    python export.py outputs/sentiment/RUN        # or: make export RUN=outputs/sentiment/RUN

Writes RUN/onnx/: model.onnx, model.int8.onnx, the tokenizer, config.json (label maps) and
export.json: the largest logit difference of each ONNX model against PyTorch on the run's own test
set, and the main test metric for PyTorch fp32, ONNX fp32 and ONNX int8. The export fails (exit 1,
nothing written) if the fp32 model's logits differ from PyTorch's by more than 1e-3.
Then: `predict.py RUN --backend onnx`, `serve.py RUN --backend onnx`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from finetune_lab.errors import ArgumentParser, UsageError, run_cli  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="export.py", description="Export a saved run to ONNX fp32 + int8, checked.")
    parser.add_argument("run", help="a run folder (outputs/<task>/<run>)")
    parser.add_argument("--batch_size", type=int, default=64, help="batch size of the test-set check (default 64)")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from transformers.utils import logging as hf_logging

    from finetune_lab.export import export_run

    hf_logging.disable_progress_bar()
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UsageError(f"--batch_size {args.batch_size}: must be at least 1")
    record = export_run(args.run, batch_size=args.batch_size)
    metric, main = record["main_metric"], record["main"]
    sizes = record["files_bytes"]
    print(
        f"exported {record['run']} to {record['run']}/onnx in {record['seconds']:.0f} s; checked on "
        f"{record['test_examples']} test examples (largest |logit| in PyTorch: {record['max_abs_logit_torch']:.2f})",
        file=sys.stderr,
    )
    files = {"torch": "model.safetensors", "onnx-fp32": "model.onnx", "onnx-int8": "model.int8.onnx"}
    for backend, file in files.items():
        diff = record["max_abs_logit_diff"].get(backend)
        diff_text = "" if diff is None else f", max |logit diff| vs torch {diff:.2e}"
        score = "n/a" if main[backend] is None else f"{main[backend]:.4f}"
        print(
            f"  {backend:<10} {file:<18} {sizes[file] / 2**20:7.1f} MiB  test {metric} {score}{diff_text}",
            file=sys.stderr,
        )
    if record.get("int8_within_target") is False:
        print(
            f"warning: int8 loses {record['int8_points_lost']:.2f} points of {metric} (target: at most 0.5); "
            "use --backend onnx-fp32 where that matters",
            file=sys.stderr,
        )
    return record


def cli() -> None:
    run_cli(main, "export.py")


if __name__ == "__main__":
    cli()
