"""Mutation check, not a test: break each reliability promise in a copy of the repo and show that
the test guarding it fails. `python tests/mutation_check.py [NAME-PART ...]` (about 4 minutes).
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent
DST = Path(tempfile.gettempdir()) / "finetune-lab-mutant"
PY = sys.executable
REL = "tests/test_run_reliability.py::"
MUTANTS = [
    (
        "resume ignores the checkpoint",
        "run.py",
        "resume_from_checkpoint=resume_checkpoint(args, run_dir)",
        "resume_from_checkpoint=(resume_checkpoint(args, run_dir) and None)",
        [REL + "test_killed_run_resumes_to_the_same_weights_and_metrics"],
    ),
    (
        "half-written checkpoint not detected",
        "finetune_lab/rundir.py",
        "complete = [p for p in _checkpoints(run_dir) if (p / COMPLETE_MARKER).exists()]",
        "complete = _checkpoints(run_dir)",
        [REL + "test_killed_run_resumes_to_the_same_weights_and_metrics"],
    ),
    (
        "results.json written in place",
        "finetune_lab/results.py",
        '    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")\n',
        '    with open(path, "w", encoding="utf-8") as handle:\n'
        "        for i in range(0, len(text), 64):\n"
        "            handle.write(text[i : i + 64])\n            handle.flush()\n"
        '    return\n    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")\n',
        ["tests/finetune_lab/test_results.py"],
    ),
    (
        "model saved in place, not staged",
        "finetune_lab/rundir.py",
        '    staging = run_dir / ".saving-model"\n',
        '    trainer.save_model(str(run_dir))\n    return\n    staging = run_dir / ".saving-model"\n',
        ["tests/finetune_lab/test_results.py::test_the_final_model_is_staged_so_a_failed_save_leaves_the_old_one"],
    ),
    (
        "finished run overwritten",
        "finetune_lab/rundir.py",
        "        if finished:\n",
        "        if False:\n",
        ["tests/test_run.py::test_a_finished_run_is_not_overwritten"],
    ),
    (
        "save_total_limit unbounded",
        "finetune_lab/arguments.py",
        '"save_total_limit": 2,',
        '"save_total_limit": None,',
        ["tests/finetune_lab/test_arguments.py"],
    ),
    (
        "no seed before the head is built",
        "run.py",
        "    set_seed(training.seed)\n",
        "    pass\n",
        [REL + "test_same_seed_same_config_gives_identical_metrics"],
    ),
    (
        "no data checksum in results.json",
        "finetune_lab/readers.py",
        '            "checksums": dict(self.checksums),',
        '            "checksums": {},',
        [REL + "test_same_seed_same_config_gives_identical_metrics"],
    ),
    (
        "average_tokens_across_devices on (eval loss x world size)",
        "finetune_lab/arguments.py",
        '"average_tokens_across_devices": False,',
        '"average_tokens_across_devices": True,',
        [REL + "test_two_processes_report_the_same_metrics_as_one_from_the_same_weights"],
    ),
    (
        "CoNLL: short rows accepted",
        "finetune_lab/readers.py",
        "        if len(columns) < 2:\n",
        "        if len(columns) < 1:\n",
        ["tests/finetune_lab/test_fuzz.py::test_conll_files", "tests/finetune_lab/test_readers.py"],
    ),
    (
        "CoNLL: unknown tags accepted",
        "finetune_lab/readers.py",
        "        if tag not in allowed:\n",
        "        if False:\n",
        ["tests/finetune_lab/test_fuzz.py::test_conll_files", "tests/finetune_lab/test_readers.py"],
    ),
    (
        "CSV errors escape as tracebacks",
        "finetune_lab/readers.py",
        "    except csv.Error as err:",
        "    except ZeroDivisionError as err:",
        ["tests/finetune_lab/test_fuzz.py", "tests/finetune_lab/test_readers.py"],
    ),
    (
        "YAML errors escape as tracebacks",
        "finetune_lab/arguments.py",
        "    except yaml.YAMLError as err:",
        "    except ZeroDivisionError as err:",
        ["tests/finetune_lab/test_fuzz.py::test_experiment_files"],
    ),
    (
        "NaN guard off",
        "finetune_lab/callbacks.py",
        "if grads and not torch.isfinite(",
        "if False and not torch.isfinite(",
        [REL + "test_nan_loss_stops_with_a_clear_message_and_keeps_the_good_checkpoint"],
    ),
    (
        "no offline fallback for W&B",
        "finetune_lab/wandb_logging.py",
        "        run = wandb.init(mode=mode, **init)\n    except Exception as err:",
        "        run = wandb.init(mode=mode, **init)\n    except ZeroDivisionError as err:",
        ["tests/finetune_lab/test_wandb_logging.py::test_wandb_that_cannot_start_online_falls_back_to_offline"],
    ),
    (
        "no redaction of secrets",
        "finetune_lab/results.py",
        "    secrets = _secret_values() if secrets is None else secrets\n",
        "    return value\n",
        [
            REL + "test_planted_secrets_appear_nowhere",
            "tests/finetune_lab/test_results.py::test_secret_keys_and_environment_secret_values_are_redacted",
        ],
    ),
    (
        "trust_remote_code on by default",
        "finetune_lab/arguments.py",
        "    trust_remote_code: bool = field(\n        default=False,",
        "    trust_remote_code: bool = field(\n        default=True,",
        [REL + "test_trust_remote_code_is_off_and_pickled_weights_are_refused"],
    ),
    (
        "pickled weights allowed",
        "finetune_lab/modeling.py",
        "use_safetensors=True, **attention",
        "use_safetensors=None, **attention",
        [REL + "test_trust_remote_code_is_off_and_pickled_weights_are_refused"],
    ),
    # issue 11, run folder and secrets
    (
        "run folder not locked",
        "finetune_lab/rundir.py",
        "                lock = RunLock.acquire(run_dir)\n",
        "                lock = None\n",
        [REL + "test_a_second_run_into_a_busy_run_folder_stops_at_once"],
    ),
    (
        "a dead run's lock never taken over",
        "finetune_lab/rundir.py",
        "                if not _try_flock(fd, owner):\n",
        "                if owner or not _try_flock(fd, owner):\n",
        ["tests/finetune_lab/test_rundir.py::test_one_owner_at_a_time_and_a_dead_owner_is_replaced"],
    ),
    (
        "lock kept after the run",
        "finetune_lab/rundir.py",
        "        if lock is not None:\n            lock.release()\n",
        "        pass\n",
        [REL + "test_a_second_run_into_a_busy_run_folder_stops_at_once"],
    ),
    (
        "--resume rewrites a finished run",
        "finetune_lab/rundir.py",
        "    if finished and args.run.resume:\n",
        "    if False:\n",
        [REL + "test_resume_of_a_finished_run_rewrites_nothing"],
    ),
    (
        "damaged checkpoint resumed from",
        "finetune_lab/rundir.py",
        "            problem = checkpoint_problem(folder)\n",
        "            problem = None\n",
        [
            "tests/finetune_lab/test_rundir.py::test_resume_falls_back_past_damaged_and_unfinished_checkpoints",
            REL + "test_killed_run_resumes_to_the_same_weights_and_metrics",
        ],
    ),
    (
        "run folder not checked writable",
        "finetune_lab/rundir.py",
        "                _check_writable(run_dir)\n",
        "                run_dir.mkdir(parents=True, exist_ok=True)\n",
        [REL + "test_an_unwritable_output_folder_stops_the_run_before_it_starts"],
    ),
    (
        "--hub_token pickled into training_args.bin",
        "finetune_lab/results.py",
        "        training.hub_token = None\n",
        "        pass\n",
        [REL + "test_planted_secrets_appear_nowhere"],
    ),
    (
        "W&B records the command line with its secrets",
        "finetune_lab/wandb_logging.py",
        "    sys.argv = [*saved[:1], *redact_argv(saved[1:])]\n",
        "    sys.argv = list(saved)\n",
        [REL + "test_planted_secrets_appear_nowhere"],
    ),
    (
        "git dirtiness not recorded",
        "finetune_lab/results.py",
        '"dirty": bool(status) if status is not None else None}',
        '"dirty": False if status is not None else None}',
        ["tests/finetune_lab/test_results.py::test_git_state_is_what_git_says"],
    ),
]


def fresh_copy():
    if DST.exists():
        shutil.rmtree(DST)
    shutil.copytree(
        SRC,
        DST,
        ignore=shutil.ignore_patterns(".venv", "outputs", "wandb", "bench-results", "runs", "__pycache__", ".git"),
    )


only = sys.argv[1:]
results = []
for name, path, old, new, tests in MUTANTS:
    if only and not any(o in name for o in only):
        continue
    fresh_copy()
    target = DST / path
    text = target.read_text()
    assert text.count(old) == 1, (name, text.count(old))
    target.write_text(text.replace(old, new))
    check = subprocess.run(
        [PY, "-c", "import finetune_lab, run; print(finetune_lab.__file__, run.__file__)"],
        cwd=DST,
        capture_output=True,
        text=True,
    )
    assert check.stdout.startswith(str(DST)), check
    started = time.time()
    done = subprocess.run(
        [PY, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=DST, capture_output=True, text=True
    )
    last = (
        [line for line in done.stdout.splitlines() if line.strip()][-1] if done.stdout.strip() else done.stderr[-300:]
    )
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "E  "))][:3]
    verdict = "caught" if done.returncode == 1 else f"NOT CAUGHT (rc {done.returncode})"
    results.append((name, verdict))
    print(
        f"## {name}: {verdict} in {time.time() - started:.0f}s\n   {' '.join(tests)}\n   {last}\n   "
        + "\n   ".join(f[:220] for f in failed),
        flush=True,
    )
print("\nSUMMARY")
for name, verdict in results:
    print(f"- {name}: {verdict}")
