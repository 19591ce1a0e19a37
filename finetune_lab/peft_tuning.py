"""--peft lora|ia3: adapters with the peft library, the task's head trained in full, a merged model saved.

    python run.py --task ner --peft lora [--lora_r 8 --lora_alpha 16 --lora_dropout 0.1 --lora_target_modules query]

The model is wrapped right after it is built (preparation.prepare), so Trainer trains, checkpoints,
resumes and reloads the best checkpoint through peft's own support. The PEFT task type (TOKEN_CLS,
SEQ_CLS) and `modules_to_save` make the randomly initialised head train and be saved with the
adapter; without them it would stay random. At the end the run folder gets the adapter alone
(adapter/, for PeftModel.from_pretrained) and, at its root, the adapter merged into the base model
(merge_and_unload): predict.py, export.py, pipeline() and --teacher load it like any other run.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from finetune_lab.errors import UsageError, main_process
from finetune_lab.families import TokenClassificationTask

ADAPTER_DIR = "adapter"
LORA_DEFAULTS = {"lora_r": 8, "lora_alpha": 16.0, "lora_dropout": 0.1}


def is_peft_model(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def head_modules(model: Any) -> list[str]:
    """The task head: the model's top-level modules with weights, other than its pretrained encoder
    (BERT: classifier; DistilBERT: pre_classifier, classifier; RoBERTa: classifier)."""
    encoder = getattr(model, model.base_model_prefix, None)
    return [
        name
        for name, module in model.named_children()
        if module is not encoder and any(True for _ in module.parameters())
    ]


def peft_config(task: Any, model: Any, options: Any) -> Any:
    """The peft config for --peft: its method, the task type, the head as modules_to_save."""
    from peft import IA3Config, LoraConfig, TaskType

    task_type = TaskType.TOKEN_CLS if isinstance(task, TokenClassificationTask) else TaskType.SEQ_CLS
    common = {"task_type": task_type, "modules_to_save": head_modules(model)}
    if options.peft == "ia3":  # peft's defaults for the model type: key, value and the feed-forward output
        return IA3Config(**common)
    values = {k: v if (v := getattr(options, k)) is not None else d for k, d in LORA_DEFAULTS.items()}
    targets = options.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"  # peft's own shorthand (a string: a list would be read as module names)
    return LoraConfig(
        r=values["lora_r"],
        lora_alpha=values["lora_alpha"],
        lora_dropout=values["lora_dropout"],
        target_modules=targets,  # None: peft's default for the model type (BERT: query, value)
        **common,
    )


def _linear_names(model: Any) -> list[str]:
    import torch

    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})


def apply_peft(built: Any, task: Any, options: Any) -> Any:
    """`built` (modeling.BuiltModel) with its model wrapped for --peft; unchanged without it."""
    if not options.peft:
        return built
    from peft import get_peft_model

    config = peft_config(task, built.model, options)
    try:
        model = get_peft_model(built.model, config)
    except ValueError as err:  # peft's NoMatchingPeftModuleError (a ValueError) names no module of ours
        names = ", ".join(_linear_names(built.model))
        if "specify `target_modules`" in str(err):  # a model type peft has no default layers for
            model_type = getattr(built.model.config, "model_type", "?")
            hint = "name them with --lora_target_modules" if options.peft == "lora" else "use --peft lora"
            raise UsageError(
                f"--peft {options.peft}: peft has no default layers for model type '{model_type}'; {hint} "
                f"(its linear layers: {names})"
            ) from None
        if type(err).__name__ != "NoMatchingPeftModuleError" and "not found in the base model" not in str(err):
            raise
        raise UsageError(
            f"--lora_target_modules {' '.join(options.lora_target_modules or [])}: not layers of "
            f"{built.description}; its linear layers are named {names}"
        ) from None
    record = peft_record(model, options.peft)
    if not any(p.requires_grad for n, p in model.named_parameters() if "modules_to_save" in n):
        raise RuntimeError("--peft: the task head is not trainable (modules_to_save missed it); it would stay random")
    if main_process():
        print(
            f"peft: {record['method']} on {', '.join(record['target_modules'])}, head "
            f"{', '.join(record['modules_to_save'])} trained in full: {record['trainable_parameters']:,} of "
            f"{record['all_parameters']:,} parameters trainable ({record['trainable_percent']:.2f}%)",
            flush=True,
        )
    description = f"{built.description}, {record['method']} adapters"
    return dataclasses.replace(built, model=model, description=description, peft=record)


def _saved(module: Any) -> bool:
    from peft.utils import ModulesToSaveWrapper

    return isinstance(module, ModulesToSaveWrapper)


def peft_record(model: Any, method: str) -> dict[str, Any]:
    """For results.json: the method, its settings, where it acts and how many parameters train."""
    config = model.peft_config[model.active_adapter]
    trainable, total = model.get_nb_trainable_parameters()
    targets = config.target_modules
    record: dict[str, Any] = {
        "method": method,
        "target_modules": [targets] if isinstance(targets, str) else sorted(targets),
        # the modules peft really copied to train in full (its config also lists names the model lacks: score)
        "modules_to_save": sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if _saved(m)}),
        "task_type": str(getattr(config.task_type, "value", config.task_type)),
        "trainable_parameters": trainable,
        "all_parameters": total,
        "trainable_percent": round(100.0 * trainable / total, 4),
    }
    if method == "lora":
        record.update(r=config.r, alpha=config.lora_alpha, dropout=config.lora_dropout)
    else:
        record["feedforward_modules"] = sorted(config.feedforward_modules or [])
    return record


def save_adapter_and_merge(trainer: Any, folder: Path) -> None:
    """The adapter (and head) into folder/adapter/; then trainer.model becomes the merged model, which
    Trainer.save_model writes next: a plain model of the task, loadable without peft."""
    model = trainer.model
    if trainer.args.should_save:
        adapter = folder / ADAPTER_DIR
        if adapter.exists():
            shutil.rmtree(adapter)
        model.save_pretrained(str(adapter), safe_serialization=True)
    trainer.model = model.merge_and_unload()  # folds the adapter into the weights; the head's trained copy stays
