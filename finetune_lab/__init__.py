"""Shared machinery for finetune-lab; each module's name says what it holds.

    arguments     options, experiment files and their precedence (one parse)
    helptext      run.py --help: the tasks with their defaults and the options people use
    families      task families: token / text classification, text regression
    embedded      the embedded model and data sets: package files, the fixed split, shared readers
    readers       the user's own files: CoNLL, JSON lines, CSV/TSV; the data report
    tokenization  preprocessing into model inputs, its on-disk cache, truncation counts
    modeling      tokenizer and model for a task (the from-scratch fallback included)
    trainer       the one Trainer builder
    batching      training batch order: --group_by_length_pool, a seeded batch_rebalance
    distillation  --teacher: a student learns a finished run's soft targets (the loss, the cached teacher outputs)
    peft_tuning   --peft lora|ia3: adapters on the encoder, the head trained in full, adapter + merged model saved
    adversarial   --adversarial fgm|pgd: a perturbed second pass on the embeddings, on top of any Trainer class
    augmentation  --augment: seeded copies of training examples (text ops; NER mention and token replacement)
    robustness    --extra_eval, --perturbed_eval: more test sets, and seeded noisy copies of test
    preparation   steps 2-3 of a run: data, task labels, model, limited and tokenized splits
    threads       threads per process under accelerate launch (before torch loads)
    callbacks     Trainer callbacks: per-class report, epoch timer, --stop_at_dev_score, checkpoint markers, NaN guard
    rundir        the run folder: its lock, overwrite rules, checkpoints and their checksums, atomic model save
    results       results.json (config, scores, environment; secrets redacted), the HF files beside it, umask modes
    wandb_logging everything Weights & Biases
    metrics       scores (seqeval, scikit-learn) and which way is better
    hardware      precision, loader and attention defaults by device; peak memory
    errors        one-line errors and the one CLI wrapper
    search        hyperparameter search with Optuna (search.py): trials as runs, resumable study, workers
    search_space  search-space files (experiments/search/): ranges and choices, checked against run.py's options
    compare, plots, tables   leaderboards and plots from finished runs
    inference     labelling text with saved runs (predict.py), on PyTorch or ONNX Runtime
    export        ONNX fp32 + int8 export of a run, checked on its test set (export.py)
    serving       the HTTP service around a loaded run (serve.py)

Tasks themselves live in the top-level `tasks/` folder of the checkout, one module each.
"""
