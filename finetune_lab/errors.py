"""Mistakes the user can fix, and the one command-line wrapper every entry point uses.

A `UsageError` (bad option, task name or data file) is printed as one line and exits with code 2;
a `TrainingError` (training went wrong, e.g. NaN loss) as one line with code 1. No tracebacks.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterable
from typing import Any


class UsageError(Exception):
    """Bad input (option, task name, data file): printed as one line, no traceback."""


class TrainingError(Exception):
    """Training went wrong in a way the user must look at (e.g. NaN loss): one line, exit code 1."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


class OneLineErrors:
    """Mix into an argparse parser: its errors become UsageErrors (one line, exit 2), not usage dumps."""

    def error(self, message: str):  # noqa: D401 - argparse hook
        raise UsageError(message)


class ArgumentParser(OneLineErrors, argparse.ArgumentParser):
    """argparse with one-line errors; abbreviations off, so a typo fails instead of matching."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def run_cli(main: Callable[[], Any], prog: str) -> None:
    """Call an entry point's `main`; a UsageError exits 2, a TrainingError 1, each as one line."""
    try:
        main()
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except TrainingError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(1)
