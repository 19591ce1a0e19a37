"""What a run leaves behind: results.json (its config, scores, timings and environment), written atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import secrets
import subprocess
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from finetune_lab.hardware import precision_name

PACKAGES = ("torch", "transformers", "datasets", "accelerate", "seqeval", "wandb", "scikit-learn")
# Names that end in a secret word (hub_token, HF_TOKEN, WANDB_API_KEY), not token_accuracy.
SECRET_NAME = re.compile(r"(^|_)(token|api_?key|secret|password|passwd|credentials?)$", re.IGNORECASE)
REDACTED = "<redacted>"
# Secret values no longer in the environment under a secret name (an HF_TOKEN that --hub_token replaced).
_withheld: set[str] = set()


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a kill leaves the old file or the new one.

    The file gets the mode any new file gets (0666 less the umask: group-readable under the usual
    022 or 002), not mkstemp's private 0600, so teammates on a shared runs folder can read it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new hidden file beside `path`, opened for writing; the kernel applies the umask (and any default ACL)."""
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def current_umask() -> int:
    """This process's umask, read without changing it (Linux); else by setting it and putting it back."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(paths: Any) -> None:
    """Give each file the mode a new file gets (0666 less the umask): libraries that write via a private
    temporary file (safetensors' weights: 0600) leave it unreadable to the group otherwise."""
    mode = 0o666 & ~current_umask()
    for path in paths:
        if Path(path).is_file() and not Path(path).is_symlink():
            os.chmod(path, mode)


def write_json(path: Path, data: Any) -> None:
    """Strict JSON (no NaN or Infinity, which most JSON readers refuse): a non-finite number is written as null."""
    text = json.dumps(finite(data)[0], indent=2, sort_keys=False, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


# Why a score can be undefined, by its name (the last part of a metric key).
UNDEFINED_WHY = {
    "roc_auc": "undefined: ROC-AUC needs both classes among the labels, and this split has one class",
    "pearson": "undefined: a correlation needs labels and predictions that are not constant",
    "spearman": "undefined: a correlation needs labels and predictions that are not constant",
}


def finite(value: Any, where: str = "") -> tuple[Any, dict[str, str]]:
    """A copy with every NaN or infinite number replaced by None, and {where: why} for each one replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        name = where.rsplit(".", 1)[-1].removeprefix("eval_").removeprefix("test_")
        return None, {where: UNDEFINED_WHY.get(name, f"not a finite number ({value}) in the run")}
    undefined: dict[str, str] = {}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key], found = finite(item, f"{where}.{key}" if where else str(key))
            undefined.update(found)
        return out, undefined
    if isinstance(value, list | tuple):
        out_list = []
        for i, item in enumerate(value):
            clean, found = finite(item, f"{where}.{i}")
            out_list.append(clean)
            undefined.update(found)
        return out_list, undefined
    return value, undefined


def _secret_values() -> set[str]:
    """Values of environment variables whose names look secret (W&B key, Hub token, ...)."""
    return {v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 8} | _withheld


def redact(value: Any, secrets: set[str] | None = None) -> Any:
    """A copy with secret-looking keys and any environment secret's value replaced."""
    secrets = _secret_values() if secrets is None else secrets
    if isinstance(value, dict):
        return {
            k: (REDACTED if SECRET_NAME.search(str(k)) and v not in (None, "") else redact(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
    return value


def redact_argv(argv: list[str], secrets: set[str] | None = None) -> list[str]:
    """A command line with the value of every secret-named option (`--hub_token X`, `--hub-token=X`)
    and every environment secret's value replaced: what W&B may record as the run's arguments."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name.startswith("-") and SECRET_NAME.search(name.lstrip("-").replace("-", "_")):
            out.append(f"{name}={REDACTED}" if eq else arg)
            hide_next = not eq
            continue
        out.append(redact(arg, secrets))
    return out


def move_hub_token_to_environment(training: Any) -> None:
    """Take --hub_token out of TrainingArguments, which Trainer pickles into training_args.bin in the
    run folder and every checkpoint, and put it in this process's HF_TOKEN, where huggingface_hub
    finds it for --push_to_hub (and where redact() knows it as a secret)."""
    token = getattr(training, "hub_token", None)
    if token:
        _withheld.update(v for v in (os.environ.get("HF_TOKEN"), token) if v and len(v) >= 8)
        os.environ["HF_TOKEN"] = token
        training.hub_token = None


def withhold(secret: str | None) -> None:
    """Treat `secret` (e.g. --token) as a secret value: redact() replaces it wherever it appears."""
    if secret and len(secret) >= 8:
        _withheld.add(secret)


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the code that ran (None when not in a git checkout)."""
    cwd = cwd or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git": git_state(),
    }


def effective_batch(training: Any) -> int:
    """Examples per optimizer step: per-device batch x gradient accumulation x processes."""
    return training.per_device_train_batch_size * training.gradient_accumulation_steps * training.world_size


def run_settings(args: Any, model: Any, data_report: Any, truncation: dict) -> dict[str, Any]:
    """The resolved key settings of a run: what it prints at the start, stores and sends to W&B.

    Sizes are after --max_*_samples (what is really trained and scored); a split not scored is absent.
    """
    training = args.training
    length = {"max_steps": training.max_steps} if training.max_steps > 0 else {}
    scored = [name for name, on in (("dev", training.do_eval), ("test", training.do_predict)) if on]
    return {
        "task": args.run.task,
        "model": model.description,
        "data": data_report.source,
        "examples": {split: counts["examples"] for split, counts in truncation.items()},
        "learning_rate": training.learning_rate,
        "num_train_epochs": training.num_train_epochs,
        **length,
        "per_device_train_batch_size": training.per_device_train_batch_size,
        "effective_batch_size": effective_batch(training),
        "max_seq_length": args.data.max_seq_length,
        "precision": precision_name(training.bf16, training.fp16),
        "seed": training.seed,
        "train": bool(training.do_train),
        "scored": scored,
        "experiment_file": args.run.experiment,
        # defaults that need dev evaluation, switched off with it: {option: why} (arguments.follow_evaluation)
        **({"switched_off": dict(args.followed)} if getattr(args, "followed", None) else {}),
    }


def training_report(args: Any, training: Any) -> list[dict[str, Any]]:
    """Every TrainingArguments field the run does not leave at transformers' default, and who set it
    (see arguments.training_overrides)."""
    from finetune_lab.arguments import training_overrides

    notes = {**getattr(args, "followed", {}), **getattr(args, "runner_notes", {})}
    return training_overrides(training, getattr(args, "sources", {}), getattr(args, "parsed_training", None), notes)


def settings_lines(config: dict[str, Any]) -> list[str]:
    """The settings block printed at the start of a run, and who set the TrainingArguments it changes."""
    from finetune_lab.helptext import shown_value

    settings = config["settings"]
    lines = ["settings:"]
    for key, value in settings.items():
        if key == "switched_off":
            value = "; ".join(f"{k} ({why})" for k, why in value.items())
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(value) or "nothing"
        lines.append(f"  {key:<28} {shown_value(value)}")
    by_source: dict[str, list[str]] = {}
    for entry in config.get("training_overrides", []):
        by_source.setdefault(entry["set_by"], []).append(entry["field"])
    if by_source:
        lines.append("  TrainingArguments not at transformers' defaults (values: results.json training_overrides):")
        for source, names in by_source.items():
            lines += textwrap.wrap(
                f"{source}: {', '.join(names)}", 110, initial_indent="    ", subsequent_indent="      "
            )
    return lines


def run_config(
    args: Any, task: Any, model: Any, data_report: Any, truncation: dict, distillation: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything that defines the run: what results.json and W&B store as its config.

    `task` is the task with its final label set, `model` what modeling.build_model built,
    `distillation` what --teacher added (distillation.Distillation.record(); None without it).
    """
    from finetune_lab.adversarial import adversarial_record
    from finetune_lab.modeling import model_label

    training = args.training
    precision = precision_name(training.bf16, training.fp16)
    experiment = Path(args.run.experiment).stem if args.run.experiment else None
    source = data_source(args.data)
    config = {
        "task": args.run.task,
        "run_name": training.run_name,
        "output_dir": training.output_dir,
        "model": model.description,  # names what was really trained (the from-scratch fallback too)
        "model_from_scratch": model.from_scratch,
        "parameters": model.model.num_parameters(),
        "trainable_parameters": sum(p.numel() for p in model.model.parameters() if p.requires_grad),
        "precision": precision,
        "seed": training.seed,
        "processes": training.world_size,
        "threads_per_process": torch.get_num_threads(),
        "main_metric": training.metric_for_best_model,
        "tags": [
            args.run.task,
            model_label(args.model.model_name_or_path),
            precision,
            f"seed{training.seed}",
            *([experiment] if experiment else []),
            source,
        ],
        "experiment_file": args.run.experiment,
        "experiment_name": experiment,  # the experiment file's name, without folder and suffix
        "data_source": source,  # short; data.source says it in full
        "notes": args.run.notes,
        "labels": list(task.label_names),
        "settings": run_settings(args, model, data_report, truncation),
        "options": {
            "run": dataclasses.asdict(args.run),
            "model": dataclasses.asdict(args.model),
            "data": dataclasses.asdict(args.data),
            "task": dataclasses.asdict(args.task_options) if args.task_options is not None else {},
            "distill": dataclasses.asdict(args.distill),
            "peft": dataclasses.asdict(args.peft),
            "adversarial": dataclasses.asdict(args.adversarial),
            "training": training.to_dict(),
        },
        "training_overrides": training_report(args, training),
        # kept: examples loaded per split; used: after --max_*_samples (what was trained and scored on)
        "data": {
            **data_report.to_dict(),
            "used": {split: counts["examples"] for split, counts in truncation.items()},
            "truncation": truncation,
        },
        "distillation": distillation,
        "peft": model.peft,  # --peft: method, settings, trainable parameters (None without it)
        "adversarial": adversarial_record(args.adversarial, model.model),  # --adversarial (None without it)
    }
    config["seed_group"] = seed_group(redact(config))
    return config


def data_source(data_args: Any) -> str:
    """The data in a few words for tags and names: `embedded`, `hub:NAME[/CONFIG]` or `file:TRAIN_FILE_NAME`."""
    if data_args.train_file:
        label = f"file:{Path(data_args.train_file).name}"
    elif data_args.dataset_name:
        label = f"hub:{data_args.dataset_name}" + (
            f"/{data_args.dataset_config_name}" if data_args.dataset_config_name else ""
        )
    else:
        label = "embedded"
    return label[:64]  # W&B's limit for a tag


def seed_group(config: dict[str, Any]) -> str:
    """A short digest of the options `make compare` groups seeds by (compare.experiment_key): runs with
    the same one are seeds of one experiment, one leaderboard row; W&B's group-by on it gives the same rows."""
    from finetune_lab.compare import experiment_key

    return hashlib.sha256(experiment_key(config).encode("utf-8")).hexdigest()[:12]


def run_results(
    config: dict[str, Any],
    trainer: Any,
    dev: dict[str, float],
    test: dict[str, float],
    train: dict[str, Any],
    history: list[dict],
    code_state: dict[str, Any],
    robust: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The finished run's record: its config, final dev and test scores, histories and timings;
    `robust`: the --extra_eval / --perturbed_eval scores ({"extra_eval": {name: metrics}, ...}), beside test.

    Strict JSON: an undefined score (NaN, e.g. ROC-AUC of a one-class test set) is None, and
    `undefined` says why, keyed by where it is ("test.roc_auc").
    """
    results = {
        **config,
        "dev": {k.removeprefix("eval_"): v for k, v in dev.items()},
        "test": {k.removeprefix("test_"): v for k, v in test.items()},
        **(robust or {}),
        "dev_history": [e for e in history if "eval_loss" in e],
        "train_history": [e for e in history if "loss" in e],
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "train": train,
        "environment": code_state,
    }
    results, undefined = finite(results)
    return {**results, "undefined": undefined}


# --- the files Hugging Face users look for, beside results.json -------------------------------

# Trainer.save_metrics's per-split files and their union, the model card, the test predictions.
HF_FILES = (
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "predict_results.json",
    "trainer_state.json",
    "README.md",
    "predictions.conll",
    "predictions.tsv",
)


def remove_stale_hf_files(run_dir: Path) -> None:
    """Scores and predictions of an earlier run in this folder go (save_metrics would merge this run's
    into its all_results.json). README.md and trainer_state.json stay: they describe the model in the
    folder, and are rewritten whenever a run saves a new one (--do_train false saves none)."""
    for name in HF_FILES:
        if name not in ("README.md", "trainer_state.json"):
            (run_dir / name).unlink(missing_ok=True)


def save_hf_metrics(trainer: Any, train: dict[str, Any], dev: dict[str, Any], test: dict[str, Any], used: dict) -> None:
    """train_/eval_/predict_results.json and all_results.json with Trainer.save_metrics, as HF's example
    scripts write them: Trainer's keys as they are, but `predict_` for our `test_` (run_ner.py's
    metric_key_prefix), and `<split>_samples`, the examples after --max_*_samples. Non-finite scores are
    null, as in results.json (whose `undefined` says why)."""
    for split, metrics, data_split in (
        ("train", train, "train"),
        ("eval", dev, "validation"),
        ("predict", test, "test"),
    ):
        if not metrics:
            continue
        named = {(f"predict_{k.removeprefix('test_')}" if k.startswith("test_") else k): v for k, v in metrics.items()}
        if data_split in used:
            named[f"{split}_samples"] = used[data_split]
        trainer.save_metrics(split, finite(named)[0])


def write_model_card(trainer: Any, config: dict[str, Any], results: dict[str, Any]) -> None:
    """The model folder's README.md: Trainer.create_model_card (metadata, hyperparameters, dev results per
    epoch and of the kept model), then what it cannot know: task, data source and sizes, dev and test scores.

    Works offline: the embedded model's licence is given, and transformers asks the Hub for a licence
    only for a Hub model and only when not offline (a failure there is caught).
    """
    from finetune_lab.modeling import EMBEDDED_NAME

    options = config.get("options") or {}
    model = (options.get("model") or {}).get("model_name_or_path")
    data_options = options.get("data") or {}
    local = bool(model) and Path(model).expanduser().exists()
    embedded = model is None and not config.get("model_from_scratch")
    if embedded:
        finetuned_from = EMBEDDED_NAME.removesuffix(" (embedded)")
    else:  # a Hub id; a local folder is no base model others can find, and from scratch has none
        finetuned_from = model if model and not local and not config.get("model_from_scratch") else None
    hub_data = data_options.get("dataset_name")
    data = config.get("data") or {}
    if hub_data:  # a Hub id: the card's metadata and model-index name it
        dataset = {
            "dataset": hub_data,
            "dataset_tags": hub_data,
            "dataset_args": data_options.get("dataset_config_name"),
        }
    elif data_options.get("train_file"):
        dataset = {"dataset": Path(data_options["train_file"]).name}
    else:  # "embedded CoNLL-2003 (path...)" -> "embedded CoNLL-2003"
        dataset = {"dataset": str(data.get("source") or "embedded").split(" (")[0].split(",")[0]}
    trainer.create_model_card(
        license="apache-2.0" if embedded else None,  # all-MiniLM-L6-v2's licence
        tags=["finetune-lab", *config.get("tags", [])],
        finetuned_from=finetuned_from,
        **dataset,
    )
    path = Path(trainer.args.output_dir) / "README.md"
    card = path.read_text(encoding="utf-8")
    if local:  # transformers' wording for "no Hub base model" would say it was trained from scratch
        card = card.replace(
            "This model was trained from scratch on", f"This model is a fine-tuned version of `{model}` on", 1
        )
    main = config.get("main_metric")
    lines = [
        "",
        "## finetune-lab run",
        "",
        f"- task: `{config.get('task')}`; model: {config.get('model')}",
        f"- data: {data.get('source')}",
        "- examples used (train / dev / test): "
        + " / ".join(str((data.get("used") or {}).get(s, "-")) for s in ("train", "validation", "test")),
        f"- experiment file: {config.get('experiment_file') or 'none'}; seed {config.get('seed')}",
        "",
        f"| split | {main} |",
        "|---|---|",
    ]
    for split in ("dev", "test"):
        score = (results.get(split) or {}).get(main)
        if results.get(split):  # no test split: no test row
            lines.append(f"| {split} | {'n/a' if score is None else f'{score:.4f}'} |")
    lines += ["", "Every score, per class, and the full configuration are in `results.json` beside this file.", ""]
    atomic_write_text(path, card.rstrip("\n") + "\n" + "\n".join(lines))


def write_predictions(run_dir: Path, task: Any, rows: Any, output: Any, tokenizer: Any, max_length: int) -> list[str]:
    """The test predictions as a file: predictions.conll for one label per word, predictions.tsv for one
    per text. Returns notes for anything written other than as predicted (each counted)."""
    if "tokens" in task.example_columns:
        return write_token_predictions(run_dir / "predictions.conll", task, rows, output, tokenizer, max_length)
    write_text_predictions(run_dir / "predictions.tsv", task, rows, output)
    return []


def write_token_predictions(
    path: Path, task: Any, rows: Any, output: Any, tokenizer: Any, max_length: int
) -> list[str]:
    """`token gold predicted`, one word per line, a blank line between sentences (conlleval's input).

    A word's prediction is its first sub-token's, as the scores count it. Words cut off by
    --max_seq_length have no prediction: written as O, and counted in a note (the scores leave them out).
    A token holding whitespace would split its line: the whitespace is written as `_`, and counted.
    """
    import numpy as np

    names = task.label_names
    predicted = np.asarray(output.predictions).argmax(-1)
    lines, cut, spaced = [], 0, 0
    for start in range(0, len(rows), 256):
        batch = rows[start : start + 256]
        encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        for i, (tokens, tags) in enumerate(zip(batch["tokens"], batch["tags"], strict=True)):
            first: dict[int, int] = {}
            for position, word in enumerate(encoded.word_ids(batch_index=i)):
                if word is not None:
                    first.setdefault(word, position)
            for word, (token, tag) in enumerate(zip(tokens, tags, strict=True)):
                if word in first:
                    guess = names[predicted[start + i, first[word]]]
                else:
                    guess, cut = "O", cut + 1
                if re.search(r"\s", token) or not token:
                    token, spaced = re.sub(r"\s", "_", token) or "_", spaced + 1
                lines.append(f"{token} {tag} {guess}")
            lines.append("")
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    notes = []
    if cut:
        notes.append(f"{path.name}: {cut} words past --max_seq_length {max_length} have no prediction, written as O")
    if spaced:
        notes.append(f"{path.name}: {spaced} empty tokens or tokens with whitespace written with '_' for it")
    return notes


def write_text_predictions(path: Path, task: Any, rows: Any, output: Any) -> None:
    """Tab-separated with a header: text, gold, predicted and (classification) the predicted label's
    probability. The csv module quotes any text holding a tab, newline or quote, so every row reads back whole."""
    import csv
    import io

    import numpy as np

    logits = np.asarray(output.predictions, dtype=np.float64)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    if task.regression:
        writer.writerow(["text", "gold", "predicted"])
        for row, value in zip(rows, logits.reshape(-1), strict=True):
            writer.writerow([row["text"], row["label"], f"{value:.6g}"])
    else:
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))  # stable softmax
        probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
        writer.writerow(["text", "gold", "predicted", "probability"])
        for row, p in zip(rows, probabilities, strict=True):
            best = int(p.argmax())
            writer.writerow([row["text"], row["label"], task.label_names[best], f"{p[best]:.6f}"])
    atomic_write_text(path, buffer.getvalue())
