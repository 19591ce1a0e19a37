"""Shared fixtures: a tiny BERT built from a config (with the embedded tokenizer), offline W&B."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    """Each test logs W&B offline into its own folder, and never sees a real key."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("FINETUNE_LAB_CACHE", str(tmp_path / "tokenized-cache"))  # never the user's ~/.cache
    monkeypatch.chdir(tmp_path)  # outputs/ and wandb/ land in the test's folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT, randomly initialised, saved with the embedded MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from finetune_lab.modeling import embedded_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def run_cli():
    """run.py in a subprocess (for exit codes, stderr and multi-process runs)."""

    def run(*args: str, launcher: list[str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
        command = [*(launcher or [sys.executable]), str(ROOT / "run.py"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    return run
