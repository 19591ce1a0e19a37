#!/usr/bin/env python
"""Hyperparameter search over run.py's options with Optuna; each trial is a normal run.

    python search.py --task ner [--space experiments/search/ner.yaml] [--n_trials 20] [--workers 2] [run options]
    make search TASK=ner TRIALS=20 WORKERS=1

The same command after an interruption (kill -9 included) continues the study. See docs/search.md
and `search.py --help`; the machinery is in finetune_lab/search.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # quiet fork warnings from the data loader

from finetune_lab.errors import run_cli  # noqa: E402


def cli() -> None:
    from finetune_lab.search import main

    run_cli(main, "search.py")


if __name__ == "__main__":
    cli()
