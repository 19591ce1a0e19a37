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
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # quiet fork warnings from the data loader

from finetune_lab.errors import run_cli  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from transformers import set_seed

    from finetune_lab.arguments import parse_arguments
    from finetune_lab.results import environment, move_hub_token_to_environment
    from finetune_lab.rundir import RunFinished, claim_run_dir

    # 1. parse
    args = parse_arguments(argv)
    training = args.training
    move_hub_token_to_environment(training)  # so it is never pickled into training_args.bin
    code_state = environment()  # now, not at the end: the commit that is running, not a later one
    set_seed(training.seed)
    try:
        # checked writable and locked (one run per folder), before anything is loaded or trained
        with claim_run_dir(args) as run_dir:
            return train_and_report(args, run_dir, code_state)
    except RunFinished as finished:  # --resume on a finished run: never rewritten
        if training.process_index != 0:
            return {}
        print(finished)
        return json.loads(finished.results.read_text(encoding="utf-8"))


def train_and_report(args: Any, run_dir: Path, code_state: dict[str, Any]) -> dict[str, Any]:
    from finetune_lab import wandb_logging
    from finetune_lab.callbacks import EpochTimer
    from finetune_lab.distillation import prepare_distillation
    from finetune_lab.hardware import peak_memory_mb
    from finetune_lab.metrics import format_report
    from finetune_lab.modeling import build_model, check_max_seq_length
    from finetune_lab.results import redact, run_config, run_results, write_json
    from finetune_lab.rundir import resume_checkpoint, save_model_atomically
    from finetune_lab.tokenization import limit_samples, tokenize_splits, truncation_lines
    from finetune_lab.trainer import build_trainer

    training = args.training
    main_process = training.process_index == 0

    # 2. build task: data from the embedded package, the Hub or local files; the label set it settles on
    data = args.task.load(args.data)
    task = args.task.with_labels(data.label_names)
    # 3. build model (a from-scratch vocabulary comes from the whole training split), then tokenize
    built = build_model(task, args.model, data.splits["train"])
    check_max_seq_length(built, args.data.max_seq_length)
    distillation = prepare_distillation(args, task, built)  # --teacher: its runs, checked against this one
    splits, notes = limit_samples(data.splits, args.data)
    with training.main_process_first(desc="tokenizing"):
        tokenized, truncation = tokenize_splits(task, splits, built.tokenizer, args.data)
    with training.main_process_first(desc="teacher outputs"):  # computed once and cached; the others read them
        train_set = distillation.attach(tokenized["train"], training, args.data)
    if main_process:
        print("\n".join([*data.report.lines(), *notes, *truncation_lines(truncation, args.data.max_seq_length)]))

    # 4. train
    config = redact(run_config(args, task, built, data.report, truncation, distillation.record()))
    wandb_run = None
    if main_process and "wandb" in training.report_to:
        wandb_run = wandb_logging.start_wandb(training.run_name, task.name, config["tags"], config, config["notes"])
        if wandb_run is None:
            training.report_to = [r for r in training.report_to if r != "wandb"]
    timer = EpochTimer()
    trainer = build_trainer(
        task,
        built.model,
        built.tokenizer,
        training,
        args.data,
        train_set,
        tokenized["validation"],
        callbacks=[timer, *wandb_logging.callbacks(wandb_run, config)],
        early_stopping_patience=args.run.early_stopping_patience,
        trainer_class=distillation.trainer_class,
    )
    started = time.perf_counter()
    try:
        train_metrics = {}
        if training.do_train:  # --do_train false: evaluate --model_name_or_path as it is
            train_metrics = trainer.train(resume_from_checkpoint=resume_checkpoint(args, run_dir)).metrics
        train_seconds = time.perf_counter() - started
        history = list(trainer.state.log_history)  # per-epoch dev scores, before the final evaluation

        # 5. evaluate: dev with the best model, then test
        dev = trainer.evaluate()
        test_output = trainer.predict(tokenized["test"], metric_key_prefix="test") if "test" in tokenized else None
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
    }
    results = redact(run_results(config, trainer, dev, test, train, history, code_state))
    write_json(run_dir / "results.json", results)
    model_dir = run_dir if args.run.wandb_log_model else None
    wandb_logging.log_final(wandb_run, results, test_output, model_dir=model_dir)
    wandb_logging.finish(wandb_run)
    main_metric = training.metric_for_best_model
    summary = f"{task.name}: dev {main_metric} {shown(results['dev'].get(main_metric))}"
    if test:
        summary += f", test {main_metric} {shown(results['test'].get(main_metric))}"
    print(f"\n{summary}; results in {run_dir / 'results.json'}")
    return results


def shown(score: float | None) -> str:
    """A score for the summary line; an undefined one (null in results.json, reason under 'undefined') as n/a."""
    return "n/a" if score is None else f"{score:.4f}"


def cli() -> None:
    run_cli(main, "run.py")


if __name__ == "__main__":
    cli()
