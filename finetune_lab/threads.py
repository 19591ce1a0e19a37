"""CPU threads per process under `accelerate launch`: the machine's cores, shared by its processes.

`accelerate launch` sets OMP_NUM_THREADS=1 in every process it starts unless the user set it
(or passed --num_cpu_threads_per_process), so `make ner` trained on one core of two. Imported
before torch, because torch sizes its thread pools from the environment when it loads.
"""

from __future__ import annotations

import os
from pathlib import Path

LAUNCHER_MARKER = "ACCELERATE_DYNAMO_BACKEND"  # set by `accelerate launch` in every process it starts


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, so a container's or taskset's limit counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def launcher_environment(pid: int) -> dict[str, str] | None:
    """The environment process `pid` started with (Linux /proc), or None when unreadable."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def launcher_arguments(pid: int) -> list[str] | None:
    """The command line of process `pid` (Linux /proc), or None when unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def threads_set_by_launcher(
    environ: dict[str, str], parent_environ: dict[str, str] | None, parent_arguments: list[str] | None
) -> bool:
    """True when OMP_NUM_THREADS came from accelerate's default, not from the user.

    The launcher copies the user's OMP_NUM_THREADS (or its --num_cpu_threads_per_process) into the
    process; only when it had neither did it write its default of 1.
    """
    if LAUNCHER_MARKER not in environ or environ.get("OMP_NUM_THREADS") != "1":
        return False
    if parent_environ is None or parent_arguments is None:  # cannot tell: leave it
        return False
    chosen = any(arg.startswith("--num_cpu_threads_per_process") for arg in parent_arguments)
    return "OMP_NUM_THREADS" not in parent_environ and not chosen


def threads_per_process(environ: dict[str, str]) -> int:
    """Cores divided by the processes of this machine (LOCAL_WORLD_SIZE, set by the launcher)."""
    local_processes = max(int(environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    return max(usable_cores() // local_processes, 1)


def settle_threads(environ: os._Environ | dict[str, str] = os.environ) -> str | None:
    """Give this process its share of the cores when the launcher's default would leave it one.

    Returns a one-line note saying what was changed (None when nothing was): the user's own
    OMP_NUM_THREADS, or accelerate's --num_cpu_threads_per_process, always wins.
    """
    parent = os.getppid()
    if not threads_set_by_launcher(dict(environ), launcher_environment(parent), launcher_arguments(parent)):
        return None
    threads = threads_per_process(dict(environ))
    if threads == 1:
        return None
    environ["OMP_NUM_THREADS"] = environ["MKL_NUM_THREADS"] = str(threads)
    return (
        f"threads: {threads} per process (this machine's {usable_cores()} cores / "
        f"{environ.get('LOCAL_WORLD_SIZE', '1')} process(es)), not accelerate's default of 1; "
        "set OMP_NUM_THREADS to choose"
    )
