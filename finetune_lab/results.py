"""What a run leaves behind: results.json, written atomically, with everything needed to re-run it."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "datasets", "accelerate", "evaluate", "seqeval", "wandb", "scikit-learn")
# Names that end in a secret word (hub_token, HF_TOKEN, WANDB_API_KEY), not token_accuracy.
SECRET_NAME = re.compile(r"(^|_)(token|api_?key|secret|password|passwd|credentials?)$", re.IGNORECASE)
REDACTED = "<redacted>"


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a kill leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def _secret_values() -> set[str]:
    """Values of environment variables whose names look secret (W&B key, Hub token, ...)."""
    return {v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 8}


def redact(value: Any, secrets: set[str] | None = None) -> Any:
    """A copy with secret-looking keys and any environment secret's value replaced."""
    secrets = _secret_values() if secrets is None else secrets
    if isinstance(value, dict):
        return {
            k: (REDACTED if SECRET_NAME.search(str(k)) and v not in (None, "") else redact(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
    return value


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the code that ran (None when not in a git checkout)."""
    cwd = cwd or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git": git_state(),
    }
