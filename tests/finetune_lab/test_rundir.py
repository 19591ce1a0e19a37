"""The run folder's lock and the checkpoint checksums, without training."""

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
from finetune_lab.rundir import (
    COMPLETE_MARKER,
    LOCK_NAME,
    RunLock,
    checkpoint_problem,
    claim_run_dir,
    mark_checkpoint_complete,
    resume_checkpoint,
)

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


def make_checkpoint(run_dir: Path, step: int) -> Path:
    folder = run_dir / f"checkpoint-{step}"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    (folder / "optimizer.pt").write_bytes(b"optimizer state" * 100)
    (folder / "sub" / "rng_state_1.pth").write_bytes(b"rng")
    mark_checkpoint_complete(folder, step)
    return folder


def test_the_completion_marker_catches_a_missing_cut_short_or_changed_file(tmp_path):
    folder = make_checkpoint(tmp_path, 6)
    assert checkpoint_problem(folder) is None
    model = folder / "model.safetensors"
    original = model.read_bytes()
    model.write_bytes(original[:100])
    assert checkpoint_problem(folder) == "model.safetensors has 100 bytes, 10,240 when it was saved"
    model.write_bytes(original[:-1] + b"\x00")  # same size, one byte changed
    assert checkpoint_problem(folder) == "model.safetensors does not match the checksum it was saved with"
    model.write_bytes(original)
    (folder / "sub" / "rng_state_1.pth").unlink()
    assert checkpoint_problem(folder) == "sub/rng_state_1.pth is missing"
    (folder / COMPLETE_MARKER).write_text("step 6\n")  # a marker from before checksums: trusted as then
    assert checkpoint_problem(folder) is None


def test_resume_falls_back_past_damaged_and_unfinished_checkpoints(tmp_path, capsys):
    for step in (6, 12, 18):
        make_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-24").mkdir()  # no marker: cut short by a kill
    (tmp_path / "checkpoint-18" / "optimizer.pt").write_bytes(b"")
    (tmp_path / "checkpoint-12" / "model.safetensors").write_bytes(b"\x00" * 10240)
    args = SimpleNamespace(run=SimpleNamespace(resume=True), training=SimpleNamespace(process_index=0, world_size=1))
    assert resume_checkpoint(args, tmp_path) == str(tmp_path / "checkpoint-6")
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "resume: removing checkpoint-24, left incomplete by an interrupted save",
        "resume: skipping checkpoint-18 (optimizer.pt has 0 bytes, 1,500 when it was saved); removing it",
        "resume: skipping checkpoint-12 (model.safetensors does not match the checksum it was saved with); removing it",
        f"resume: continuing from {tmp_path / 'checkpoint-6'}",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-6"]


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
