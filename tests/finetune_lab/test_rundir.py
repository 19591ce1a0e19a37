"""The run folder's lock, without training."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import finetune_lab.rundir as rundir
from finetune_lab.errors import UsageError
from finetune_lab.rundir import LOCK_NAME, RunLock, claim_run_dir

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from finetune_lab.rundir import RunLock
RunLock.acquire(Path({run_dir!r}))
print("locked", flush=True)
time.sleep(600)
"""


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_one_owner_at_a_time_and_a_dead_owner_is_replaced(tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(root=str(ROOT), run_dir=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match=rf"is in use by another run \(process {holder.pid} on "):
            RunLock.acquire(tmp_path)
    finally:
        holder.kill()  # kill -9: no chance to clean up; the kernel drops its flock
        holder.wait()
    assert (tmp_path / LOCK_NAME).exists()
    lock = RunLock.acquire(tmp_path)
    printed = capsys.readouterr().out
    assert f"taking over the lock left by process {holder.pid} on " in printed and "no longer running" in printed
    assert (tmp_path / LOCK_NAME).read_text().startswith(f"process {os.getpid()} on ")
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()
    lock.release()  # twice is harmless


def test_without_flock_the_owner_process_decides(tmp_path, monkeypatch, capsys):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(rundir.fcntl, "flock", no_flock)
    host = rundir.socket.gethostname()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (tmp_path / LOCK_NAME).write_text(f"process {alive.pid} on {host}\n")
        with pytest.raises(UsageError, match=rf"in use by another run \(process {alive.pid} on {host}\)"):
            RunLock.acquire(tmp_path)
    finally:
        alive.kill()
        alive.wait()
    gone = dead_pid()
    (tmp_path / LOCK_NAME).write_text(f"process {gone} on {host}\n")
    RunLock.acquire(tmp_path).release()
    assert f"taking over the lock left by process {gone} on {host}" in capsys.readouterr().out


def test_a_claimed_run_folder_is_locked_and_one_left_empty_is_removed(tmp_path):
    args = SimpleNamespace(
        run=SimpleNamespace(task="ner", resume=False, overwrite_output_dir=False),
        model=SimpleNamespace(model_name_or_path=None),
        training=SimpleNamespace(
            output_dir=str(tmp_path / "runs" / "{task}-{run_name}"),
            run_name="r1",
            seed=1,
            process_index=0,
            world_size=1,
        ),
    )
    with pytest.raises(UsageError, match="bad data"):
        with claim_run_dir(args) as run_dir:
            assert run_dir == tmp_path / "runs" / "ner-r1" and args.training.output_dir == str(run_dir)
            assert (run_dir / LOCK_NAME).read_text().startswith(f"process {os.getpid()} on ")
            raise UsageError("bad data")  # the run stops before writing anything
    assert not (tmp_path / "runs" / "ner-r1").exists()
