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
# Its own scratch copy per invocation, so two checks (two worktrees) never share one.
DST = Path(tempfile.mkdtemp(prefix="finetune-lab-mutant-"))
PY = sys.executable
REL = "tests/test_run_reliability.py::"
READERS = "tests/finetune_lab/test_readers.py::"
ARGS = "tests/finetune_lab/test_arguments.py::"
RESULTS = "tests/finetune_lab/test_results.py::"
FUZZ = "tests/finetune_lab/test_fuzz.py::"
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
    # issue 11, data and errors
    (
        "text labels of digits read as positions",
        "finetune_lab/readers.py",
        "    if isinstance(value, str):\n        if value.strip() in label_names:",
        "    if isinstance(value, str) and value.strip().isdigit() and int(value) < len(label_names):\n"
        "        return label_names[int(value)]\n"
        "    if isinstance(value, str):\n        if value.strip() in label_names:",
        [
            READERS + "test_numeric_label_names_are_names_not_positions",
            FUZZ + "test_csv_text_files_load_as_the_csv_module_reads_them",
        ],
    ),
    (
        "--labels not checked against the embedded data",
        "finetune_lab/families.py",
        "        if not self.user_labels:\n            return\n        allowed = set(label_names)",
        "        return\n        allowed = set(label_names)",
        [READERS + "test_embedded_data_with_other_labels_is_an_error_naming_labels"],
    ),
    (
        "CSV lines handed to csv without their newlines",
        "finetune_lab/readers.py",
        "    lines = [line for _, line in iter_lines(path, keepends=True)]",
        "    lines = [line for _, line in iter_lines(path)]",
        [
            READERS + "test_csv_multi_line_quoted_cells_keep_their_newlines",
            FUZZ + "test_csv_text_files_load_as_the_csv_module_reads_them",
        ],
    ),
    (
        "CSV read leniently (a quote closed mid-cell merges rows)",
        "finetune_lab/readers.py",
        "    reader = csv.reader(lines, delimiter=delimiter, strict=True)",
        "    reader = csv.reader(lines, delimiter=delimiter)",
        [READERS + "test_csv_text_errors", FUZZ + "test_csv_text_files_load_as_the_csv_module_reads_them"],
    ),
    (
        "blank CSV rows skipped uncounted",
        "finetune_lab/readers.py",
        '                report.drop(split, "blank rows")\n',
        "                pass\n",
        [
            READERS + "test_skipped_csv_rows_are_counted_with_their_reason",
            FUZZ + "test_csv_text_files_load_as_the_csv_module_reads_them",
        ],
    ),
    (
        "IOB1 entity starts not converted",
        "finetune_lab/readers.py",
        '        if starts and f"B-{kind}" in label_names:',
        "        if False:",
        [READERS + "test_conll_iob1_input_is_converted_to_iob2_and_counted"],
    ),
    (
        "zero epochs accepted",
        "finetune_lab/arguments.py",
        "    if training.do_train and training.max_steps <= 0 and not (math.isfinite(epochs) and epochs > 0):",
        "    if False:",
        [ARGS + "test_impossible_values_are_usage_errors_naming_the_option"],
    ),
    (
        "impossible option values accepted",
        "finetune_lab/arguments.py",
        "        if key in values and not ok(values[key]):",
        "        if False:",
        [ARGS + "test_impossible_values_are_usage_errors_naming_the_option", FUZZ + "test_command_lines"],
    ),
    (
        "experiment values not type-checked",
        "finetune_lab/arguments.py",
        "            value = _coerce(value, kind)\n",
        "            pass\n",
        [ARGS + "test_bad_experiment_files_name_the_file"],
    ),
    (
        "a missing local model folder goes to the Hub",
        "finetune_lab/arguments.py",
        "    elif looks_like_path(name):",
        "    elif False:",
        [ARGS + "test_impossible_values_are_usage_errors_naming_the_option"],
    ),
    (
        "an --output_dir that is a file accepted",
        "finetune_lab/arguments.py",
        "    if probe.exists() and not probe.is_dir():",
        "    if False:",
        [ARGS + "test_an_output_dir_that_is_a_file_is_an_error"],
    ),
    (
        "--max_seq_length beyond the model's positions",
        "finetune_lab/modeling.py",
        "    if limit is not None and max_seq_length > limit:",
        "    if False:",
        ["tests/test_run.py::test_max_seq_length_above_the_models_positions_is_an_error_before_training"],
    ),
    (
        "every process prints the error",
        "finetune_lab/errors.py",
        '    return os.environ.get("RANK", "0") == "0"',
        "    return True",
        ["tests/test_run.py::test_two_processes_print_a_bad_data_file_once"],
    ),
    (
        "NaN written into results.json",
        "finetune_lab/results.py",
        "    text = json.dumps(finite(data)[0], indent=2, sort_keys=False, default=str, allow_nan=False)",
        "    text = json.dumps(data, indent=2, sort_keys=False, default=str)",
        [RESULTS + "test_write_json_never_writes_nan"],
    ),
    (
        "undefined scores without a reason",
        "finetune_lab/results.py",
        '    results, undefined = finite(results)\n    return {**results, "undefined": undefined}',
        "    return results",
        [RESULTS + "test_results_json_is_strict_json_undefined_scores_are_null_with_the_reason"],
    ),
    # --- issue 15 (deploy) and issue 10 point 8: export, backends, service, predict.py lines ---
    (
        "deploy: ONNX export without dynamic axes",
        "finetune_lab/export.py",
        "dynamic_shapes={name: {0: batch, 1: sequence} for name in names},",
        "dynamic_shapes=None,",
        ["tests/test_export.py::test_export_agrees_with_pytorch_and_reloads"],
    ),
    (
        "deploy: export check not enforced",
        "finetune_lab/export.py",
        "if not fp32_diff <= FP32_TOLERANCE:",
        "if False:",
        ["tests/test_export.py::test_a_failed_check_installs_nothing"],
    ),
    (
        "deploy: --backend onnx ignores the int8 copy",
        "finetune_lab/inference.py",
        'backend = "onnx-int8" if (onnx_dir / ONNX_FILES["onnx-int8"]).exists() else "onnx-fp32"',
        'backend = "onnx-fp32"',
        ["tests/test_export.py::test_onnx_backend_takes_int8_when_exported"],
    ),
    (
        "deploy: NER tags shift past a word with no sub-token",
        "finetune_lab/inference.py",
        "entities = tags_to_entities(tags, [words[w][1] for w in ids], scores, text)",
        "entities = tags_to_entities(tags, [s for _, s in words[: len(ids)]], scores, text)",
        ["tests/test_predict.py::test_ner_words_without_subtokens_do_not_shift_tags"],
    ),
    (
        "deploy: predict.py drops blank lines",
        "predict.py",
        "    return lines\n",
        "    return [line for line in lines if line.strip()]\n",
        ["tests/test_predict.py::test_sentiment_jsonl_output_one_line_per_input_line"],
    ),
    (
        "deploy: service accepts blank texts",
        "finetune_lab/serving.py",
        "        if not text.strip():",
        "        if False:",
        ["tests/test_serve.py::test_bad_requests_get_a_one_line_4xx"],
    ),
    (
        "deploy: service validation errors become a 500",
        "finetune_lab/serving.py",
        'first = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")[0]',
        'first = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")[9]',
        ["tests/test_serve.py::test_bad_requests_get_a_one_line_4xx"],
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
shutil.rmtree(DST, ignore_errors=True)
print("\nSUMMARY")
for name, verdict in results:
    print(f"- {name}: {verdict}")
