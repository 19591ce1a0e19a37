"""Where a run lives (outputs/<task>/<run-name>/), who owns it, what it may overwrite, its checkpoints and model."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finetune_lab.arguments import resume_path
from finetune_lab.errors import UsageError
from finetune_lab.modeling import model_label
from finetune_lab.results import atomic_write_text, honour_umask

# Written into a checkpoint folder only after Trainer has saved all of it (model, optimizer,
# scheduler, RNG, trainer state): a folder without it was cut short by a kill and is never resumed.
# It holds each file's size and SHA-256, so a file damaged later is caught before --resume loads it.
COMPLETE_MARKER = "checkpoint-complete"
CHECKPOINT_PREFIX = "checkpoint-"
# The run folder's owner (process id and host): one run per folder at a time. Removed when the run ends.
LOCK_NAME = ".run.lock"


class RunFinished(Exception):
    """--resume on a run that has finished: nothing to do, nothing rewritten. str() says where its results are."""

    def __init__(self, run_dir: Path) -> None:
        self.results = run_dir / "results.json"
        super().__init__(f"{run_dir} holds a finished run, nothing to resume; its results are in {self.results}")


def _broadcast_from_main(value: Any, world_size: int) -> Any:
    """The main process's value on every process (run names hold a timestamp; the main process decides)."""
    if world_size <= 1:
        return value
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class RunLock:
    """An exclusive lock on a run folder: `.run.lock` inside it, holding the owner's process id and host.

    The lock itself is flock(2) on that file, which the kernel drops when its process dies however it
    dies (kill -9 included), so a lock file left behind by a dead run is recognised and taken over.
    Where the file system has no flock, a left-behind file counts as stale when its process is gone.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        path = run_dir / LOCK_NAME
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                owner = _lock_owner(fd)
                if not _try_flock(fd, owner):
                    raise UsageError(
                        f"--output_dir {run_dir} is in use by another run ({owner or 'process unknown'}); "
                        "wait for it to end, or choose another --output_dir or --run_name"
                    )
                try:
                    same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same_file = False
                if not same_file:  # its owner removed it between our open and our lock: lock the new one
                    os.close(fd)
                    continue
                if owner:
                    print(f"{run_dir}: taking over the lock left by {owner}, which is no longer running", flush=True)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
                os.fsync(fd)
                return cls(path, fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise

    def release(self) -> None:
        if self.fd is None:
            return
        try:  # unlink while still holding it, so a run waiting on this file retries with a fresh one
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _lock_owner(fd: int) -> str:
    return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()


def _try_flock(fd: int, owner: str) -> bool:
    """True if we now hold the lock. Without flock support: free unless its recorded process still runs here."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    return not _process_alive(owner)


def _process_alive(owner: str) -> bool:
    """Whether 'process PID on HOST' still runs (a process on another host is assumed alive)."""
    words = owner.split()
    if len(words) != 4 or not words[1].isdigit():
        return False
    pid, host = int(words[1]), words[3]
    if host != socket.gethostname():
        return True
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_writable(run_dir: Path) -> None:
    """Create the run folder and a file in it now, not at the first checkpoint an epoch later."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=run_dir, prefix=".write-test-")
    os.close(fd)
    os.unlink(probe)


def _run_dir(args: Any) -> Path:
    training = args.training
    if not training.run_name:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{model_label(args.model.model_name_or_path)}-seed{training.seed}-{stamp}"
        training.run_name = _broadcast_from_main(name, training.world_size)
    run_dir = Path(training.output_dir.format(task=args.run.task, run_name=training.run_name))
    training.output_dir = str(run_dir)
    return run_dir


def _refuse_to_clobber(args: Any, run_dir: Path) -> None:
    """A finished or unfinished run stays as it is unless asked; --resume on a finished run has nothing to do."""
    finished = (run_dir / "results.json").exists()
    if finished and args.run.resume:
        raise RunFinished(run_dir)
    checkpoints = list(run_dir.glob("checkpoint-*")) if run_dir.is_dir() else []
    if not (args.run.overwrite_output_dir or args.run.resume):
        if finished:
            raise UsageError(
                f"--output_dir {run_dir} already holds a finished run (results.json); choose another folder "
                "or pass --overwrite_output_dir"
            )
        if checkpoints:
            raise UsageError(
                f"--output_dir {run_dir} holds checkpoints of an unfinished run; pass --resume to continue it "
                "or --overwrite_output_dir to start over"
            )


@contextlib.contextmanager
def claim_run_dir(args: Any) -> Iterator[Path]:
    """Pick the run folder, check it is writable, lock it, refuse to clobber a run; yield it, locked.

    The main process decides and owns the lock until the block ends, however it ends; the other
    processes follow its verdict. Raises UsageError, or RunFinished for --resume on a finished run.
    A run folder this created and left empty (the run stopped before writing anything) is removed.
    """
    training = args.training
    run_dir = _run_dir(args)
    lock, verdict, created = None, ("ok", ""), False
    if training.process_index == 0:
        created = not run_dir.exists()
        try:
            try:
                _check_writable(run_dir)
                lock = RunLock.acquire(run_dir)
            except OSError as err:
                reason = err.strerror or str(err)
                raise UsageError(
                    f"--output_dir {run_dir} is not writable ({reason}); choose another --output_dir or fix its "
                    "permissions"
                ) from None
            _refuse_to_clobber(args, run_dir)
        except UsageError as err:
            verdict = ("usage", str(err))
        except RunFinished:
            verdict = ("finished", "")
    kind, message = _broadcast_from_main(verdict, training.world_size)
    try:
        if kind == "usage":
            raise UsageError(message)
        if kind == "finished":
            raise RunFinished(run_dir)
        yield run_dir
    finally:
        if lock is not None:
            lock.release()
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only if empty


# Checkpoints ------------------------------------------------------------------------------------


def _checkpoints(run_dir: Path) -> list[Path]:
    """checkpoint-N folders, oldest first."""
    found = [p for p in run_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints with a completion marker, oldest first."""
    complete = [p for p in _checkpoints(run_dir) if (p / COMPLETE_MARKER).exists()]
    return complete


def latest_complete_checkpoint(run_dir: Path) -> str | None:
    complete = complete_checkpoints(run_dir)
    return str(complete[-1]) if complete else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def mark_checkpoint_complete(folder: Path, step: int) -> None:
    """Write the completion marker: the step, and each file's size and SHA-256 (about 1.5 GB/s)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != COMPLETE_MARKER)
    honour_umask(files)  # the weights come out 0600; a teammate resuming or reading them needs the umask's mode
    record = {
        "step": step,
        "files": {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files},
    }
    atomic_write_text(folder / COMPLETE_MARKER, json.dumps(record, indent=1) + "\n")


def checkpoint_problem(folder: Path) -> str | None:
    """Why a marked checkpoint cannot be resumed from (a file missing, cut short or changed), or None."""
    try:
        record = json.loads((folder / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no completion marker"
    except (ValueError, UnicodeDecodeError):
        return None  # a marker from before checksums ("step N"): trusted, as it was then
    files = record.get("files", {}) if isinstance(record, dict) else {}
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected["bytes"]:
            return f"{name} has {size:,} bytes, {expected['bytes']:,} when it was saved"
    for name, expected in files.items():
        if _sha256(folder / name) != expected["sha256"]:
            return f"{name} does not match the checksum it was saved with"
    return None


def asked_checkpoint(folder: str, main_process: bool) -> str:
    """--resume_from_checkpoint PATH: that folder, its files checked against their checksums if it has a marker."""
    path = Path(folder)
    if (path / COMPLETE_MARKER).exists():
        problem = checkpoint_problem(path)
        if problem is not None:
            raise UsageError(
                f"--resume_from_checkpoint {folder}: {problem}; give another checkpoint, or true for the newest "
                "complete one in --output_dir"
            )
    elif main_process:
        print(f"resume: {folder} has no {COMPLETE_MARKER} marker (saved elsewhere, or cut short): files not verified")
    if main_process:
        print(f"resume: continuing from {folder}")
    return folder


def resume_checkpoint(args: Any, run_dir: Path) -> str | None:
    """With --resume or --resume_from_checkpoint true: the newest complete checkpoint whose files match
    their checksums, else None; with --resume_from_checkpoint PATH: that checkpoint (see asked_checkpoint).

    Half-written checkpoints (no marker) and damaged ones are removed, each said with its reason.
    The main process decides; every process gets its answer.
    """
    training = args.training
    asked = resume_path(training) if args.run.resume else None
    if asked is not None:  # every process checks the same files, so all stop alike on a damaged one
        return asked_checkpoint(asked, training.process_index == 0)
    if not args.run.resume or not run_dir.is_dir():
        return None
    last = None
    if training.process_index == 0:
        complete = complete_checkpoints(run_dir)
        for folder in _checkpoints(run_dir):
            if folder not in complete:
                print(f"resume: removing {folder.name}, left incomplete by an interrupted save")
                shutil.rmtree(folder, ignore_errors=True)
        for folder in reversed(complete):
            problem = checkpoint_problem(folder)
            if problem is None:
                last = str(folder)
                break
            print(f"resume: skipping {folder.name} ({problem}); removing it")
            shutil.rmtree(folder, ignore_errors=True)
        print(f"resume: continuing from {last}" if last else f"resume: no complete checkpoint in {run_dir}, starting")
    return _broadcast_from_main(last, training.world_size)


def save_model_atomically(trainer: Any, run_dir: Path) -> None:
    """Save into a temporary folder, then move each file into place with an atomic rename.

    A kill mid-save leaves every file either the previous version or the new one, never torn.
    A --peft run saves its adapter into adapter/ and the merged model beside it (peft_tuning.py).
    """
    from finetune_lab.peft_tuning import ADAPTER_DIR, is_peft_model, save_adapter_and_merge

    staging = run_dir / ".saving-model"
    if is_peft_model(getattr(trainer, "model", None)):
        save_adapter_and_merge(trainer, staging)
    trainer.save_model(str(staging))  # main process writes; others return
    if trainer.args.process_index != 0:
        return
    honour_umask(staging.rglob("*"))  # group-readable weights where the umask says so (safetensors writes 0600)
    if not (staging / ADAPTER_DIR).exists():  # an adapter of an earlier run here would not fit this model
        shutil.rmtree(run_dir / ADAPTER_DIR, ignore_errors=True)
    for item in staging.iterdir():
        target = run_dir / item.name
        if item.is_dir() and target.is_dir():  # a folder is not renamed over a full one: the old one goes first
            shutil.rmtree(target)
        item.replace(target)
    staging.rmdir()
