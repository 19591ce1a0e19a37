"""One exception type for mistakes the user can fix; run.py turns it into exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(Exception):
    """Bad input (option, task name, data file): printed as one line, no traceback."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


class TrainingError(Exception):
    """Training went wrong in a way the user must look at (e.g. NaN loss): one line, exit code 1."""
