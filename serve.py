#!/usr/bin/env python
"""Serve a saved run over HTTP (FastAPI + uvicorn); the model is loaded once, at start.

    python serve.py outputs/sentiment/RUN                     # or: make serve RUN=outputs/sentiment/RUN
    python serve.py outputs/ner/RUN --backend onnx --port 8080  # after export.py RUN
    curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"inputs": "a fine film"}'

POST /predict {"inputs": "text"} or {"inputs": ["text", ...]}: the records predict.py writes (NER:
entities with character offsets and scores; classification: label and probabilities). GET /health,
GET /info (task, labels, model, backend, limits, test metrics). Bad requests: 4xx, one-line reason.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from finetune_lab.errors import ArgumentParser, UsageError, run_cli  # noqa: E402

BACKENDS = ("torch", "onnx", "onnx-fp32", "onnx-int8")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="serve.py", description="Serve a saved run over HTTP (FastAPI + uvicorn).")
    parser.add_argument("run", help="a run folder (outputs/<task>/<run>)")
    parser.add_argument(
        "--backend", default="torch", choices=BACKENDS,
        help="torch, onnx (the export: int8 when it has one), onnx-fp32, onnx-int8 (default torch)",
    )  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--max_texts", type=int, default=64, help="texts per request at most (default 64)")
    parser.add_argument("--max_text_chars", type=int, default=5000, help="characters per text at most (default 5000)")
    parser.add_argument("--batch_size", type=int, default=64, help="texts per model call (default 64)")
    parser.add_argument("--log_level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("max_texts", "max_text_chars", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} {getattr(args, name)}: must be at least 1")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be between 0 and 65535")

    import uvicorn
    from transformers.utils import logging as hf_logging

    from finetune_lab import inference
    from finetune_lab.serving import Limits, create_app

    hf_logging.disable_progress_bar()
    run = inference.load_run(args.run, args.backend)
    limits = Limits(max_texts=args.max_texts, max_text_chars=args.max_text_chars, batch_size=args.batch_size)
    print(f"serving {run.path} ({run.results['task']}, backend {run.backend})", file=sys.stderr, flush=True)
    uvicorn.run(create_app(run, limits), host=args.host, port=args.port, log_level=args.log_level, workers=1)
    return 0


def cli() -> None:
    run_cli(main, "serve.py")


if __name__ == "__main__":
    cli()
