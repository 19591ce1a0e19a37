#!/usr/bin/env python
"""Fine-tune a pretrained encoder on one task.

    accelerate launch run.py --task ner [--experiment experiments/ner-quick.yaml] [options]
    python run.py --task sentiment --max_train_samples 500 --report_to none

Parse, build task, build model, train, evaluate, save, report. See `run.py --help`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # quiet fork warnings from the data loader

from finetune_lab.errors import run_cli  # noqa: E402
from finetune_lab.threads import settle_threads  # noqa: E402

THREADS_NOTE = settle_threads()  # before torch loads: it sizes its thread pools from the environment


def main(argv: list[str] | None = None, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """One run; its results (results.json's content). `callbacks`: more Trainer callbacks (search.py's pruning)."""
    from transformers import set_seed

    from finetune_lab.arguments import parse_arguments
    from finetune_lab.results import environment, move_hub_token_to_environment, withhold
    from finetune_lab.rundir import RunFinished, claim_run_dir

    # 1. parse
    args = parse_arguments(argv)
    training = args.training
    if training.hub_token:
        args.runner_notes["hub_token"] = "moved to the HF_TOKEN environment variable, never written to run files"
    move_hub_token_to_environment(training)  # so it is never pickled into training_args.bin
    withhold(args.model.token)  # --token: redacted wherever its value would be written
    args.parsed_training = training.to_dict()  # what the options asked for, before the run fills in names
    code_state = environment()  # now, not at the end: the commit that is running, not a later one
    set_seed(training.seed)
    if THREADS_NOTE and training.process_index == 0:
        print(THREADS_NOTE)
    try:
        # checked writable and locked (one run per folder), before anything is loaded or trained
        with claim_run_dir(args) as run_dir:
            return train_and_report(args, run_dir, code_state, callbacks)
    except RunFinished as finished:  # --resume on a finished run: never rewritten
        if training.process_index != 0:
            return {}
        print(finished)
        return json.loads(finished.results.read_text(encoding="utf-8"))


def train_and_report(
    args: Any, run_dir: Path, code_state: dict[str, Any], callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    from finetune_lab import robustness, wandb_logging
    from finetune_lab.adversarial import with_adversarial
    from finetune_lab.callbacks import EpochTimer, StopAtDevScore
    from finetune_lab.distillation import prepare_distillation
    from finetune_lab.hardware import peak_memory_mb
    from finetune_lab.metrics import chance_level_note, format_report
    from finetune_lab.preparation import prepare
    from finetune_lab.results import (
        redact,
        remove_stale_hf_files,
        run_config,
        run_results,
        save_hf_metrics,
        settings_lines,
        training_report,
        write_json,
        write_model_card,
        write_predictions,
    )
    from finetune_lab.rundir import resume_checkpoint, save_model_atomically
    from finetune_lab.tokenization import truncation_lines
    from finetune_lab.trainer import build_trainer

    training = args.training
    main_process = training.process_index == 0
    upload_model = wandb_logging.model_upload(args.run.wandb_log_model, training.report_to)

    # 2-3. data, model, tokenized splits
    prepared = prepare(args)
    task, built, tokenized = prepared.task, prepared.built, prepared.tokenized
    report = prepared.data.report
    distillation = prepare_distillation(args, task, built)  # --teacher: its runs, checked against this one
    with training.main_process_first(desc="teacher outputs"):  # computed once and cached; the others read them
        train_set = distillation.attach(tokenized["train"], training, args.data) if "train" in tokenized else None
    config = redact(run_config(args, task, built, report, prepared.truncation, distillation.record()))
    if main_process:
        print(
            "\n".join(
                [*report.lines(), *prepared.notes, *truncation_lines(prepared.truncation, args.data.max_seq_length)]
            )
        )
        print("\n".join(settings_lines(config)), flush=True)

    # 4. train
    wandb_run = None
    if main_process and "wandb" in training.report_to:
        wandb_run = wandb_logging.start_wandb(config, training.project, args.run.wandb_entity)
        if wandb_run is None:
            training.report_to = [r for r in training.report_to if r != "wandb"]
    timer, target = EpochTimer(), StopAtDevScore(args.run.stop_at_dev_score)
    with wandb_logging.trainer_uploads_no_model():  # the model goes up once, in log_final
        trainer = build_trainer(
            task,
            built.model,
            built.tokenizer,
            training,
            args.data,
            train_set,
            tokenized.get("validation"),  # None with --do_eval false: no dev evaluation at all
            callbacks=[timer, target, *wandb_logging.callbacks(wandb_run, config), *callbacks],
            early_stopping_patience=args.run.early_stopping_patience,
            trainer_class=with_adversarial(distillation.trainer_class, args.adversarial),  # --adversarial
        )
    started = time.perf_counter()
    try:
        train_metrics = {}
        if training.do_train:  # --do_train false: evaluate --model_name_or_path as it is
            train_metrics = trainer.train(resume_from_checkpoint=resume_checkpoint(args, run_dir)).metrics
        train_seconds = time.perf_counter() - started
        history = list(trainer.state.log_history)  # per-epoch dev scores, before the final evaluation

        # 5. evaluate: dev with the best model (unless --do_eval false), then test (unless --do_predict
        # false), into W&B's summary, not onto its curves
        with wandb_logging.off_the_curves(trainer):
            dev = trainer.evaluate() if "validation" in tokenized else {}
            test_output = trainer.predict(tokenized["test"], metric_key_prefix="test") if "test" in tokenized else None
            robust = robustness.evaluate(trainer, prepared.robustness)  # --extra_eval, --perturbed_eval
        test = test_output.metrics if test_output is not None else {}

        # 6. save: best model + tokenizer + label maps (in config.json), loadable by pipeline()
        if training.do_train:
            save_model_atomically(trainer, run_dir)
    except BaseException:
        wandb_logging.finish(wandb_run, exit_code=1)
        raise
    if not main_process:
        return {}

    # 7. report
    if test:
        print("\n" + format_report(test, "test_", title="test"))
    train = {
        "seconds": round(train_seconds, 2),
        "epoch_seconds": timer.seconds,
        "samples_per_second": train_metrics.get("train_samples_per_second"),
        "steps": trainer.state.global_step,
        "loss": train_metrics.get("train_loss"),
        "peak_memory_mb": peak_memory_mb(),
        **target.record(),  # --stop_at_dev_score: when the dev target was reached (None: never)
    }
    config["training_overrides"] = training_report(args, trainer.args)  # as Trainer ran it (report_to may shrink)
    results = redact(run_results(config, trainer, dev, test, train, history, code_state, robust))
    # What HF users look for, before results.json (the run's full record, and its mark of being finished).
    remove_stale_hf_files(run_dir)
    save_hf_metrics(trainer, train_metrics, dev, test, config["data"]["used"])
    notes = []
    if test_output is not None:
        test_rows = prepared.splits["test"]
        notes = write_predictions(run_dir, task, test_rows, test_output, built.tokenizer, args.data.max_seq_length)
    if training.do_train:
        trainer.save_state()  # trainer_state.json: the log history, best checkpoint and metric
        write_model_card(trainer, config, results)
    for note in notes:
        print(note)
    main_metric = training.metric_for_best_model
    score = results["test"].get(main_metric)
    chance_note = chance_level_note(task, test_output, main_metric, score) if test_output else None
    results["warnings"] = [chance_note] if chance_note else []
    write_json(run_dir / "results.json", results)
    wandb_logging.log_final(wandb_run, results, test_output, model_dir=run_dir if upload_model else None)
    wandb_logging.finish(wandb_run)
    scored = [
        f"{split} {main_metric} {shown(results[split].get(main_metric))}" for split in ("dev", "test") if results[split]
    ] + robustness.scored_parts(results, main_metric)
    summary = f"{task.name}: " + (", ".join(scored) or "nothing scored (--do_eval false, --do_predict false)")
    print(f"\n{summary}; results in {run_dir / 'results.json'}")
    if chance_note:
        print(f"warning: {chance_note}")
    return results


def shown(score: float | None) -> str:
    """A score for the summary line; an undefined one (null in results.json, reason under 'undefined') as n/a."""
    return "n/a" if score is None else f"{score:.4f}"


def cli() -> None:
    run_cli(main, "run.py")


if __name__ == "__main__":
    cli()
