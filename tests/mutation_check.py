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
RUN = "tests/test_run.py::"
SEARCH = "tests/test_search.py::"
WL = "tests/finetune_lab/test_wandb_logging.py::"
COMPARE = "tests/finetune_lab/test_compare.py::"
BENCH = "tests/benchmarks/test_bench_progress.py::"
HFO = "tests/test_run_hf_options.py::"
HF_PROBE = HFO + "test_hf_script_option_is_honoured_or_rejected"
DISTIL = "tests/finetune_lab/test_distillation.py::"
AUG = "tests/finetune_lab/test_augmentation.py::"
STUDY = "tests/benchmarks/test_study.py::"
ROBUST = "tests/finetune_lab/test_robustness.py::"
PEFT = "tests/finetune_lab/test_peft_tuning.py::"
ADV = "tests/finetune_lab/test_adversarial.py::"
TRAINER = "tests/finetune_lab/test_trainer.py::"
BATCHING = "tests/finetune_lab/test_batching.py::"
TTQ = "tests/benchmarks/test_time_to_quality.py::"
MODELING = "tests/finetune_lab/test_modeling.py::"
MUTANTS = [
    (
        "--teacher: the user's own label smoothing is switched off, not an error",
        "finetune_lab/arguments.py",
        ' and not explicit("label_smoothing_factor"):\n',
        ":\n",
        [ARGS + "test_a_teacher_switches_off_the_task_default_label_smoothing_and_says_why"],
    ),
    (
        "--teacher: a task's default label smoothing is not switched off",
        "finetune_lab/arguments.py",
        '        return {"label_smoothing_factor": 0.0}, {\n',
        "        return {}, {\n",
        [ARGS + "test_a_teacher_switches_off_the_task_default_label_smoothing_and_says_why"],
    ),
    (
        "search --baseline: the defaults never reach stage 2 unless among the top k",
        "finetune_lab/search.py",
        "            top += [stage1.trials[n] for n in base[:1] if n not in {t.number for t in top}]\n",
        "",
        [SEARCH + "test_baseline_runs_the_defaults_first_and_again_on_all_the_data_beside_the_top_k"],
    ),
    (
        "search --baseline: not queued as a trial",
        "finetune_lab/search.py",
        '            study.enqueue_trial(settings.baseline, user_attrs={"baseline": True})\n',
        "            pass\n",
        [SEARCH + "test_baseline_runs_the_defaults_first_and_again_on_all_the_data_beside_the_top_k"],
    ),
    (
        "search --baseline: a default outside the space accepted",
        "finetune_lab/search.py",
        "        if not inside:\n",
        "        if False:\n",
        [SEARCH + "test_a_baseline_outside_the_space_is_one_line_naming_the_option"],
    ),
    (
        "search --baseline: a best file that is the baseline reads like a found recipe",
        "finetune_lab/search.py",
        '            if trial.user_attrs.get("baseline")\n',
        "            if False\n",
        [SEARCH + "test_a_best_file_that_is_the_baseline_says_so"],
    ),
    (
        "--attention_dropout never reaches the config",
        "finetune_lab/modeling.py",
        "        setattr(config, key, value)\n",
        "        pass\n",
        [MODELING + "test_attention_dropout_reaches_the_config_and_lets_sdpa_fuse"],
    ),
    (
        "time-to-quality: ratio upside down (variant's time over the baseline's)",
        "benchmarks/time_to_quality.py",
        "ratios[reference].append(time_to_target(ref) / time_to_target(r))",
        "ratios[reference].append(time_to_target(r) / time_to_target(ref))",
        [TTQ + "test_summary_takes_ratios_within_a_seed_and_counts_runs_that_never_reached_the_target"],
    ),
    (
        "time-to-quality: a run that never reached the target counted as reaching it at once",
        "benchmarks/time_to_quality.py",
        'return reached["seconds"] if reached else None',
        'return reached["seconds"] if reached else 0.0',
        [TTQ + "test_summary_takes_ratios_within_a_seed_and_counts_runs_that_never_reached_the_target"],
    ),
    (
        "time-to-quality: runs not stopped at the target",
        "benchmarks/time_to_quality.py",
        'argv += ["--stop_at_dev_score", str(setting["target"])]',
        "pass",
        [TTQ + "test_smoke_run_launches_each_variant_to_its_target_and_writes_the_table"],
    ),
    (
        "batching: --loss_denominator expected still divides by the update's own tokens",
        "finetune_lab/batching.py",
        'if self.loss_denominator != "expected" or counted is None',
        "if True or counted is None",
        [BATCHING + "test_loss_denominator_of_an_update"],
    ),
    (
        "batching: the default back to transformers' grouping",
        "finetune_lab/batching.py",
        "DEFAULT_POOL_BATCHES = 8",
        "DEFAULT_POOL_BATCHES = 0",
        [BATCHING + "test_default_batching_is_pools_of_8_with_every_token_weighed_the_same"],
    ),
    (
        "batching: the default back to the update's own token count",
        "finetune_lab/batching.py",
        'DEFAULT_LOSS_DENOMINATOR = "expected"',
        'DEFAULT_LOSS_DENOMINATOR = "update"',
        [BATCHING + "test_default_batching_is_pools_of_8_with_every_token_weighed_the_same"],
    ),
    (
        "batching: the default pool rejected with random order",
        "finetune_lab/arguments.py",
        'if explicit("group_by_length_pool") and data.group_by_length_pool',
        "if data.group_by_length_pool",
        [BATCHING + "test_default_batching_is_pools_of_8_with_every_token_weighed_the_same"],
    ),
    (
        "compare: the default batching groups with older runs",
        "finetune_lab/compare.py",
        '    "options.data.loss_denominator",\n',
        "",
        [COMPARE + "test_experiment_options_split_a_seed_group"],
    ),
    (
        "time-to-quality: combined reports keep only the first report's runs",
        "benchmarks/time_to_quality.py",
        'tagged = [{**run, "report": i} for i, block in in_task for run in block["runs"]]',
        'tagged = [{**run, "report": i} for i, block in in_task[:1] for run in block["runs"]]',
        [TTQ + "test_reports_of_one_seed_each_combine_into_the_summary_of_all_seeds"],
    ),
    (
        "time-to-quality: a seed in two reports is combined twice",
        "benchmarks/time_to_quality.py",
        'if earlier is not None and "error" not in earlier and "error" not in run:',
        "if False:",
        [TTQ + "test_reports_that_do_not_belong_together_are_not_combined"],
    ),
    (
        "time-to-quality: a later report's failed run replaces a finished one",
        "benchmarks/time_to_quality.py",
        'failed, kept[key] = (earlier, run) if "error" in earlier else (run, earlier)',
        "failed, kept[key] = earlier, run",
        [TTQ + "test_a_failed_run_gives_way_to_a_later_run_of_the_same_variant_and_seed_and_is_listed"],
    ),
    (
        "time-to-quality: a ratio pairs runs of two reports (two sessions)",
        "benchmarks/time_to_quality.py",
        'reference.get("report") == run.get("report")',
        "True",
        [TTQ + "test_a_failed_run_gives_way_to_a_later_run_of_the_same_variant_and_seed_and_is_listed"],
    ),
    (
        "time-to-quality: combined reports named by the first report's machine alone",
        "benchmarks/time_to_quality.py",
        'machine = first["machine"] if len(seeds_on) == 1 else',
        'machine = first["machine"] if True else',
        [TTQ + "test_reports_from_two_machines_name_each_machine_and_take_ratios_only_within_a_report"],
    ),
    (
        "time-to-quality: reports with other run.py options are combined",
        "benchmarks/time_to_quality.py",
        'for key in ("mode", "equal_epochs", "run_args"):',
        'for key in ("mode", "equal_epochs"):',
        [TTQ + "test_reports_that_do_not_belong_together_are_not_combined"],
    ),
    (
        "time-to-quality: a killed benchmark keeps nothing of what it finished",
        "benchmarks/time_to_quality.py",
        'partial.write_text(json.dumps(report, indent=2, default=str) + "\\n")',
        "pass",
        [TTQ + "test_a_benchmark_killed_midway_keeps_its_finished_runs_in_a_partial_report"],
    ),
    (
        "time-to-quality: a replaced failed run is not listed",
        "benchmarks/time_to_quality.py",
        'errors += [f"- {line}" for line in report.get("replaced", [])]',
        "pass",
        [TTQ + "test_a_failed_run_gives_way_to_a_later_run_of_the_same_variant_and_seed_and_is_listed"],
    ),
    (
        "time-to-quality: reports with other targets are combined",
        "benchmarks/time_to_quality.py",
        'block["setting"] != first["tasks"][task]["setting"]',
        "False",
        [TTQ + "test_reports_that_do_not_belong_together_are_not_combined"],
    ),
    (
        "compare: the pool of a grouping that did not happen splits a seed group",
        "finetune_lab/compare.py",
        'options["options.data.group_by_length_pool"] = None  # the pool',
        "pass  # the pool",
        [COMPARE + "test_an_option_splits_a_seed_group_only_where_it_acted"],
    ),
    (
        "compare: the seed of a shuffle that did not happen splits a seed group",
        "finetune_lab/compare.py",
        'options["options.data.shuffle_seed"] = None  # the seed',
        "pass  # the seed",
        [COMPARE + "test_an_option_splits_a_seed_group_only_where_it_acted"],
    ),
    (
        "compare: older runs (no batching options) split from runs that name transformers' batching",
        "finetune_lab/compare.py",
        '    "options.data.group_by_length_pool": 0,\n',
        "",
        [COMPARE + "test_folders_caches_and_spellings_do_not_split_a_seed_group"],
    ),
    (
        "batching: --loss_denominator expected counts every labelled position, ignored ones too",
        "finetune_lab/batching.py",
        "sum(1 for label in row if label != -100)",
        "len(row)",
        [BATCHING + "test_mean_labelled_items_counts_tokens_per_sentence_and_one_per_text"],
    ),
    (
        "bench report: MFU against an emulated bf16 peak shown",
        "benchmarks/bench.py",
        'native_bf16 = peaks.get("bf16", 0) >= peaks.get("fp32", 0)',
        "native_bf16 = True",
        ["tests/benchmarks/test_bench_report.py::test_mfu_against_an_emulated_bf16_peak_is_not_shown"],
    ),
    (
        "time-to-quality --equal_epochs: speed ratio upside down (random order's over the variant's)",
        "benchmarks/time_to_quality.py",
        'ratios.append(r["samples_per_second"] / ref["samples_per_second"])',
        'ratios.append(ref["samples_per_second"] / r["samples_per_second"])',
        [TTQ + "test_equal_epochs_summary_averages_each_epoch_and_takes_speed_ratios_within_a_seed"],
    ),
    (
        "time-to-quality --equal_epochs: every epoch scored with the last epoch's dev",
        "benchmarks/time_to_quality.py",
        'by_epoch = [[r["dev_history"][e]["dev"] for r',
        'by_epoch = [[r["dev_history"][-1]["dev"] for r',
        [TTQ + "test_equal_epochs_summary_averages_each_epoch_and_takes_speed_ratios_within_a_seed"],
    ),
    (
        "time-to-quality --equal_epochs: runs still stop at the target",
        "benchmarks/time_to_quality.py",
        'argv += ["--eval_strategy", "epoch"]',
        'argv += ["--eval_strategy", "epoch", "--stop_at_dev_score", str(setting["target"])]',
        [TTQ + "test_equal_epochs_runs_every_epoch_with_dev_per_epoch_and_no_target"],
    ),
    (
        "time-to-quality: the partial epoch a run stopped in is rated as a whole one",
        "benchmarks/time_to_quality.py",
        "epoch_seconds[:-1] if (train",
        "epoch_seconds if (train",
        [TTQ + "test_smoke_run_launches_each_variant_to_its_target_and_writes_the_table"],
    ),
    (
        "batching: pooled batches played in pool order (transformers' sweep), not shuffled",
        "finetune_lab/batching.py",
        "return [full[i] for i in shuffled] + short",
        "return full + short",
        [BATCHING + "test_pooled_batches_are_sorted_pools_in_random_order"],
    ),
    (
        "batching: the short batch shuffled in among the full ones",
        "finetune_lab/batching.py",
        "(full if len(batch) == self.batch_size else short).append(batch)",
        "full.append(batch)",
        [BATCHING + "test_pooled_batches_cover_every_example_once_short_batch_last"],
    ),
    (
        "batching: batch_rebalance keeps transformers' fixed seed",
        "finetune_lab/batching.py",
        "            sampler.seed = seed\n",
        "            pass\n",
        [BATCHING + "test_the_trainer_uses_the_pooled_sampler_and_seeds_batch_rebalance"],
    ),
    (
        "batching: --group_by_length_pool ignored by the Trainer builder",
        "finetune_lab/trainer.py",
        'getattr(data_args, "group_by_length_pool", DEFAULT_POOL_BATCHES)',
        "0",
        [BATCHING + "test_the_trainer_uses_the_pooled_sampler_and_seeds_batch_rebalance"],
    ),
    (
        "stop_at_dev_score: reached but training goes on",
        "finetune_lab/callbacks.py",
        "control.should_training_stop = True",
        "control.should_training_stop = False",
        [BATCHING + "test_a_run_stops_at_its_dev_target_and_records_when"],
    ),
    (
        "study: a variant's options that run.py does not take (an augmentation op of another task)",
        "benchmarks/study.py",
        'AUGMENT = {"ner": "mention,replace"',
        'AUGMENT = {"ner": "mention,insert"',
        [STUDY + "test_every_cell_is_a_valid_run_and_a_real_one_fills_its_row"],
    ),
    (
        "study: a difference ten times the seeds' spread read as noise",
        "benchmarks/study.py",
        "if abs(diff) <= 2 * spread:",
        "if abs(diff) <= 20 * spread:",
        [STUDY + "test_the_document_reports_mean_and_std_over_seeds_and_keeps_the_rest_of_the_file"],
    ),
    (
        "study: a finished cell is run again",
        "benchmarks/study.py",
        "todo = cells if rerun else [c for c in cells if not finished(runs_dir, c, args.run_args)]",
        "todo = cells",
        [STUDY + "test_finished_cells_are_not_run_again_and_changed_options_are_refused"],
    ),
    (
        "augment: dev augmented too",
        "finetune_lab/preparation.py",
        '            task, splits["train"], settings, training.seed\n        )\n',
        '            task, splits["train"], settings, training.seed\n        )\n'
        '        splits["validation"], _ = augmentation.augment_train(task, splits["validation"], settings, 0)\n',
        [AUG + "test_augment_adds_copies_to_train_only_and_keys_the_cache"],
    ),
    (
        "augment: the seed is ignored",
        "finetune_lab/augmentation.py",
        'rng = random.Random(f"augment:{seed}")',
        'rng = random.Random("augment")',
        [AUG + "test_augmentation_is_deterministic_per_seed_and_counted"],
    ),
    (
        "augment: NER mention replaced without its tags",
        "finetune_lab/augmentation.py",
        "tokens[start:end], tags[start:end] = list(new_tokens), list(new_tags)",
        "tokens[start:end] = list(new_tokens)",
        [AUG + "test_ner_mention_replacement_keeps_tags_aligned_valid_and_typed"],
    ),
    (
        "robustness: the perturbed set is the test split itself",
        "finetune_lab/robustness.py",
        'sets[key] = Dataset.from_list(rows, features=splits["test"].features)',
        'sets[key] = splits["test"]',
        [ROBUST + "test_ner_sets_are_read_with_the_task_reader_and_tokenized_before_training"],
    ),
    (
        "search objective scores the test split",
        "finetune_lab/search.py",
        '        value = (results.get("dev") or {}).get(settings.metric)',
        '        value = (results.get("test") or {}).get(settings.metric)',
        [SEARCH + "test_a_four_trial_study_completes_with_table_plots_and_a_runnable_best_file"],
    ),
    (
        "search: an interrupted trial is taken for running",
        "finetune_lab/search.py",
        "            elif worker_alive(folder, worker):",
        "            elif True:",
        [SEARCH + "test_a_study_killed_after_its_second_trial_continues_and_keeps_its_finished_trials"],
    ),
    (
        "search: a resumed sampler starts from its first draw again",
        "finetune_lab/search.py",
        "    seed = settings.args.sampler_seed + 10007 * worker_index + n_existing",
        "    seed = settings.args.sampler_seed + 10007 * worker_index",
        [SEARCH + "test_a_study_killed_after_its_second_trial_continues_and_keeps_its_finished_trials"],
    ),
    (
        "search: a pruned trial trains on",
        "finetune_lab/search.py",
        "            control.should_training_stop = True",
        "            pass",
        [SEARCH + "test_a_bad_trial_is_pruned_after_its_first_epoch_and_marked"],
    ),
    (
        "search: a finished study runs one more trial",
        "finetune_lab/search.py",
        "            if counted(study) >= settings.args.n_trials:\n                return\n",
        "",
        [SEARCH + "test_a_second_run_of_the_same_command_adds_nothing_and_a_changed_space_is_refused"],
    ),
    (
        "search: stage 2 re-runs the worst trials",
        "finetune_lab/search.py",
        "            top = ranked(stage1)[: settings.args.top_k]",
        "            top = ranked(stage1)[::-1][: settings.args.top_k]",
        [SEARCH + "test_two_stages_run_every_trial_on_a_part_then_the_best_on_all_the_data"],
    ),
    (
        "search space: an empty range accepted",
        "finetune_lab/search_space.py",
        "    if not low < high:",
        "    if False:",
        [SEARCH + "test_a_malformed_search_space_is_one_line_naming_the_file_and_key"],
    ),
    (
        "a run at chance level is not told",
        "run.py",
        "chance_note = chance_level_note(task, test_output, main_metric, score) if test_output else None",
        "chance_note = None",
        [RUN + "test_a_run_at_chance_level_says_so"],
    ),
    (
        "chance level without a margin",
        "finetune_lab/metrics.py",
        "if chance is None or score > chance + CHANCE_MARGIN:",
        "if chance is None or score > chance:",
        ["tests/finetune_lab/test_metrics.py"],
    ),
    (
        "venv accelerate launch without the project's config",
        "finetune_lab/venv_accelerate.sh",
        'command accelerate launch --config_file "@ROOT@/accelerate_config.yaml" "$@"',
        'command accelerate launch "$@"',
        ["tests/test_makefile.py::test_plain_accelerate_launch_prints_no_wall_of_warnings"],
    ),
    (
        "accelerate launch keeps its one thread",
        "finetune_lab/threads.py",
        '    environ["OMP_NUM_THREADS"] = environ["MKL_NUM_THREADS"] = str(threads)\n',
        "",
        [RUN + "test_accelerate_launch_uses_every_core_not_its_default_of_one"],
    ),
    (
        "the user's OMP_NUM_THREADS overridden",
        "finetune_lab/threads.py",
        'return "OMP_NUM_THREADS" not in parent_environ and not chosen',
        "return True",
        ["tests/finetune_lab/test_threads.py"],
    ),
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
        "    fd, tmp = _create_temporary(path)\n",
        '    with open(path, "w", encoding="utf-8") as handle:\n'
        "        for i in range(0, len(text), 64):\n"
        "            handle.write(text[i : i + 64])\n            handle.flush()\n"
        "    return\n    fd, tmp = _create_temporary(path)\n",
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
        "            use_safetensors=True,\n            ignore_mismatched_sizes",
        "            use_safetensors=None,\n            ignore_mismatched_sizes",
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
        "hf-options: --resume_from_checkpoint PATH ignored",
        "finetune_lab/rundir.py",
        "    asked = resume_path(training) if args.run.resume else None\n",
        "    asked = None\n",
        [HFO + "test_resume_from_checkpoint_path", HF_PROBE + "[resume_from_checkpoint]"],
    ),
    (
        "hf-options: --do_eval false still scores dev",
        "finetune_lab/preparation.py",
        '    if training.do_eval:\n        splits.append("validation")',
        '    if True:\n        splits.append("validation")',
        [HFO + "test_do_eval_and_do_predict_false_score_nothing"],
    ),
    (
        "hf-options: --label_column_name dropped for files",
        "finetune_lab/families.py",
        '            label_column=getattr(data_args, "label_column_name", None) or "label",',
        '            label_column="label",',
        [HF_PROBE + "[label_column_name]"],
    ),
    (
        "hf-options: --pad_to_max_length dropped",
        "finetune_lab/trainer.py",
        '            data_args.max_seq_length if getattr(data_args, "pad_to_max_length", False) else None,',
        "            None,",
        [HF_PROBE + "[pad_to_max_length]"],
    ),
    (
        "hf-options: what the runner changes is not reported as the runner's",
        "finetune_lab/arguments.py",
        '        elif parsed is not None and parsed.get(name) != value:\n            set_by = "runner"',
        '        elif False:\n            set_by = "runner"',
        [HFO + "test_every_training_argument_not_at_transformers_default_is_reported"],
    ),
    (
        "hf-options: project defaults left out of the overrides report",
        "finetune_lab/arguments.py",
        "        if value == defaults.get(name) and name not in notes:\n            continue",
        '        if value == defaults.get(name) or sources.get(name) == "project default":\n            continue',
        [HFO + "test_every_training_argument_not_at_transformers_default_is_reported"],
    ),
    (
        "hf-options: an unsupported HF option is ignored",
        "finetune_lab/arguments.py",
        "        if getattr(hf, name) is not None:\n",
        "        if False:\n",
        [HF_PROBE + "[task_name]", HF_PROBE + "[metric_name]"],
    ),
    (
        "hf-options: --help is argparse's 700 lines",
        "finetune_lab/arguments.py",
        '    if any(a in ("-h", "--help") for a in argv):\n',
        "    if False:\n",
        ["tests/test_run.py::test_help_is_one_screen_with_the_tasks_and_their_defaults"],
    ),
    (
        "undefined scores without a reason",
        "finetune_lab/results.py",
        '    results, undefined = finite(results)\n    return {**results, "undefined": undefined}',
        "    return results",
        [RESULTS + "test_results_json_is_strict_json_undefined_scores_are_null_with_the_reason"],
    ),
    # issue 10: the files HF users look for, W&B that tells the truth
    (
        "hf-files: results.json private (mkstemp's 0600)",
        "finetune_lab/results.py",
        'os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)',
        'os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)',
        [RESULTS + "test_written_files_get_the_mode_the_umask_gives"],
    ),
    (
        "hf-files: NER predictions from every sub-token, not each word's first",
        "finetune_lab/results.py",
        "                    first.setdefault(word, position)",
        "                    first[word] = position",
        [RESULTS + "test_token_predictions_take_each_words_first_piece_and_count_what_had_none"],
    ),
    (
        "hf-files: texts with tabs written unquoted",
        "finetune_lab/results.py",
        'writer = csv.writer(buffer, delimiter="\\t", lineterminator="\\n")',
        'writer = csv.writer(buffer, delimiter="\\t", lineterminator="\\n", quoting=csv.QUOTE_NONE, escapechar="\\\\")',
        [RESULTS + "test_text_predictions_read_back_whole_with_the_csv_module"],
    ),
    (
        "wandb-truth: final evaluation logged onto the eval curves",
        "finetune_lab/wandb_logging.py",
        "    for callback in removed:\n        trainer.remove_callback(callback)\n",
        "    removed = []\n",
        [WL + "test_the_final_evaluation_is_in_the_summary_not_on_the_curves"],
    ),
    (
        "wandb-truth: mean train loss overwrites the curve's train/loss",
        "finetune_lab/wandb_logging.py",
        'TRAIN_KEYS = {"loss": "train/mean_loss"}',
        "TRAIN_KEYS = {}",
        [WL + "test_the_loss_curve_and_the_mean_loss_have_their_own_keys"],
    ),
    (
        "wandb-truth: data counts before the sample limits",
        "finetune_lab/wandb_logging.py",
        '    for split, count in (data.get("used") or data.get("kept") or {}).items():',
        '    for split, count in (data.get("kept") or {}).items():',
        [WL + "test_data_counts_are_after_the_sample_limits"],
    ),
    (
        "wandb-truth: Trainer's callback uploads the model as well",
        "finetune_lab/wandb_logging.py",
        '    os.environ["WANDB_LOG_MODEL"] = "false"\n',
        "    pass\n",
        [WL + "test_offline_run_holds_the_expected_keys"],
    ),
    (
        "wandb-truth: --project ignored",
        "run.py",
        "wandb_logging.start_wandb(config, training.project, args.run.wandb_entity)",
        'wandb_logging.start_wandb(config, "finetune-lab", args.run.wandb_entity)',
        [WL + "test_project_and_entity_are_honoured"],
    ),
    (
        "compare: a custom CSV run ranked among embedded-data runs",
        "finetune_lab/compare.py",
        '    ranked["rank"] = ranked.groupby(["task", "data"]).cumcount() + 1',
        '    ranked["rank"] = ranked.groupby("task").cumcount() + 1',
        [COMPARE + "test_data_and_experiment_columns"],
    ),
    (
        "compare: accuracy axis past 1",
        "finetune_lab/plots.py",
        "    top = top if high is None else min(top, high)",
        "    top = top",
        [COMPARE + "test_metric_axes_stay_inside_the_metric_bounds"],
    ),
    (
        "compare: timestamped run names on the bars",
        "finetune_lab/plots.py",
        '        labels.append(f"#{row.rank} {text}" + (f"{SEP}n={row.n}" if row.n > 1 else ""))',
        "        labels.append(row.runs[0])",
        [COMPARE + "test_tick_labels_and_legends_are_short_unique_and_apart"],
    ),
    (
        "compare: many bar labels not turned",
        "finetune_lab/plots.py",
        "    rotate = wanted > MAX_WIDTH_IN",
        "    rotate = False",
        [COMPARE + "test_many_bars_turn_their_labels_and_never_overlap"],
    ),
    (
        "bench: quick starts a process per check",
        "benchmarks/bench.py",
        '        results = run_workers([u["spec"] for u in units], log)',
        '        results = [run_worker(u["spec"], log) for u in units]',
        [BENCH + "test_quick_runs_every_check_in_one_process_and_says_what_it_skips"],
    ),
    (
        "bench: time left ignores the runs measured",
        "benchmarks/bench.py",
        "        if key in self.measured:\n",
        "        if False:\n",
        [BENCH + "test_progress_estimates_from_what_was_measured"],
    ),
    # issue 15, distillation
    (
        "distillation: the teacher term dropped",
        "finetune_lab/distillation.py",
        "    return alpha * soft + (1 - alpha) * gold_loss\n",
        "    return gold_loss\n",
        [DISTIL + "test_distillation_moves_the_student_toward_its_teacher_and_saves_a_normal_run[sentiment]"],
    ),
    (
        "distillation: teacher rows by batch position, not by example",
        "finetune_lab/distillation.py",
        "        teacher = self.targets.for_examples(index.cpu()).to(student.device)\n",
        "        teacher = self.targets.for_examples(torch.arange(len(index))).to(student.device)\n",
        [DISTIL + "test_distillation_moves_the_student_toward_its_teacher_and_saves_a_normal_run[ner]"],
    ),
    (
        "distillation: teacher outputs not cached",
        "finetune_lab/distillation.py",
        "        if path is not None and path.exists():\n",
        "        if False:\n",
        [DISTIL + "test_teacher_outputs_are_computed_once_and_then_read_from_the_cache"],
    ),
    (
        "distillation: loss not divided over gradient accumulation",
        "finetune_lab/distillation.py",
        "    loss_is_scaled_for_ga = False\n",
        "    loss_is_scaled_for_ga = True\n",
        [DISTIL + "test_gradient_accumulation_distils_like_one_large_batch"],
    ),
    (
        "distillation: a teacher with another tokenizer accepted",
        "finetune_lab/distillation.py",
        '        if _tokenizer_digest(getattr(run.tokenizer, "backend_tokenizer", None)) != student_tokenizer:\n',
        "        if False:\n",
        [DISTIL + "test_a_teacher_that_cannot_teach_is_a_one_line_error"],
    ),
    # --- issue 14 (techniques): gradient accumulation, --peft, --adversarial ---
    (
        "techniques: accumulated micro-batches each normalised by their own items",
        "finetune_lab/trainer.py",
        "        denominator = count if num_items_in_batch is None else num_items_in_batch\n",
        "        denominator = count\n",
        [TRAINER + "test_gradient_accumulation_16_by_2_is_the_update_of_batch_32"],
    ),
    (
        "techniques: peft without task type or modules_to_save (the head stays random)",
        "finetune_lab/peft_tuning.py",
        '    common = {"task_type": task_type, "modules_to_save": head_modules(model)}\n',
        "    common = {}\n",
        [PEFT + "test_lora_trains_only_the_adapters_and_the_head"],
    ),
    (
        "techniques: peft saves the base model without its adapter",
        "finetune_lab/peft_tuning.py",
        "    trainer.model = model.merge_and_unload()",
        "    trainer.model = model.unload()",
        [PEFT + "test_the_saved_merged_model_and_the_adapter_reproduce_the_trained_model"],
    ),
    (
        "techniques: adversarial embeddings not restored",
        "finetune_lab/adversarial.py",
        "            weight.data.copy_(saved)\n",
        "            pass\n",
        [ADV + "test_the_perturbed_pass_changes_the_update_and_the_embeddings_are_restored_before_the_step"],
    ),
    (
        "techniques: adversarial pass skipped",
        "finetune_lab/adversarial.py",
        "            super().training_step(model, inputs, num_items_in_batch)  # adversarial",
        "            pass  # adversarial",
        [ADV + "test_the_adversarial_loss_is_scaled_like_the_main_loss_under_gradient_accumulation"],
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
