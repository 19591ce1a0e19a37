"""Weights & Biases: one run per training job, never a prompt, never a failed job because of W&B.

Trainer's own WandbCallback logs the curves; this module opens the run first (so it gets our
project, name, group, tags and sanitized config), falls back to offline mode when there is no
API key or W&B cannot start, and adds the final test metrics and per-class tables.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from finetune_lab.metrics import per_class_rows

DEFAULT_PROJECT = "finetune-lab"


def has_wandb_credentials() -> bool:
    """An API key in the environment or in ~/.netrc (where `wandb login` stores it)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        path = os.environ.get("NETRC") or Path.home() / ".netrc"
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def choose_wandb_mode() -> str:
    """WANDB_MODE as the user set it, else online with a key and offline (said once) without."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if has_wandb_credentials():
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    print("W&B: no API key found, logging offline to ./wandb (upload later with `wandb sync wandb/offline-run-*`)")
    return "offline"


def start_wandb(name: str, group: str, tags: list[str], config: dict[str, Any], notes: str | None = None):
    """Open the W&B run on the main process; offline if it cannot start online. None if W&B fails."""
    import wandb

    os.environ.setdefault("WANDB_PROJECT", DEFAULT_PROJECT)  # Trainer's callback reads it too
    mode = choose_wandb_mode()
    init = dict(
        project=os.environ["WANDB_PROJECT"],
        name=name,
        group=group,
        tags=tags,
        config=config,
        notes=notes,
        job_type="train",
        reinit="finish_previous",
    )
    try:
        return wandb.init(mode=mode, **init)
    except Exception as err:  # bad key, no network, server error: keep training, log offline
        if mode == "offline":
            print(f"W&B: cannot start even offline ({type(err).__name__}: {err}); continuing without W&B")
            return None
        print(f"W&B: cannot start online ({type(err).__name__}); falling back to offline logging")
        os.environ["WANDB_MODE"] = "offline"
        try:
            return wandb.init(mode="offline", **init)
        except Exception as err2:
            print(f"W&B: cannot start offline either ({type(err2).__name__}: {err2}); continuing without W&B")
            return None


def log_final(run, metrics: dict[str, Any], prefix: str) -> None:
    """Final metrics into the run summary, and the per-class report as a wandb.Table."""
    import wandb

    if run is None:
        return
    scalars = {
        f"{prefix}/{key[len(prefix) + 1 :]}": value
        for key, value in metrics.items()
        if key.startswith(f"{prefix}_") and isinstance(value, int | float)
    }
    run.summary.update(scalars)
    rows = per_class_rows(metrics, f"{prefix}_")
    if rows:
        table = wandb.Table(columns=["class", "precision", "recall", "f1", "support"])
        for name, row in rows.items():
            table.add_data(name, row.get("precision"), row.get("recall"), row.get("f1"), int(row.get("support", 0)))
        run.log({f"{prefix}/per_class_report": table})


def finish(run, exit_code: int = 0) -> None:
    if run is not None:
        run.finish(exit_code=exit_code)
