"""Mistakes the user can fix, and the one command-line wrapper every entry point uses.

A `UsageError` (bad option, task name or data file) is printed as one line and exits with code 2;
a `TrainingError` (training went wrong, e.g. NaN loss) as one line with code 1. No tracebacks.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
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


# How long a process other than the main one waits before printing a UsageError the main process
# should have printed (the launcher stops the waiting processes as soon as the main one exits).
OTHER_PROCESSES_WAIT_S = 10


def one_line(err: Exception) -> str:
    """The message on one line: a newline inside it (a quoted value, a library's message) shown as \\n."""
    return str(err).replace("\r", "\\r").replace("\n", "\\n")


def main_process() -> bool:
    """Whether this is the first of the processes a launcher (accelerate, torchrun) started, or the only one."""
    return os.environ.get("RANK", "0") == "0"


def run_cli(main: Callable[[], Any], prog: str) -> None:
    """Call an entry point's `main`; a UsageError exits 2, a TrainingError 1, each as one line.

    Under a launcher every process reads the same options and data and meets the same UsageError:
    the main process prints it and exits, and the launcher stops the others while they wait, so the
    line appears once. A process that waits in vain (the main process went on) prints it itself.
    """
    try:
        main()
    except UsageError as err:
        if not main_process():
            time.sleep(OTHER_PROCESSES_WAIT_S)
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except TrainingError as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)
