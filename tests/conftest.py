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
    yield
    if "wandb" in sys.modules:  # wandb keeps its settings (WANDB_DIR) for the process: reset them
        sys.modules["wandb"].teardown()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT, randomly initialised, saved with the embedded MiniLM tokenizer."""
    import torch
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
    # Seeded: every test session gets the same tiny model, so a test's outcome never depends on which test ran
    # first (the distillation test once passed or failed by the luck of the draw). Another seed, to check that a
    # test does not rely on this one: FINETUNE_LAB_TINY_SEED=N.
    torch.manual_seed(int(os.environ.get("FINETUNE_LAB_TINY_SEED", "0")))
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


TINY_TRAINING = ["--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--learning_rate", "5e-3"]
TINY_TRAINING += ["--disable_tqdm", "true", "--logging_steps", "4"]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """One finished tiny run per task, shared by the compare/predict/W&B tests (trained once per session).

    Both log to offline W&B: {task: run folder}, plus "wandb_dir" (the folder holding
    wandb/offline-run-*). The NER run comes from an experiment file (tiny-ner.yaml) and names its
    W&B project and entity; the sentiment run asks for its model upload both ways
    (--wandb_log_model and WANDB_LOG_MODEL=end).
    """
    from run import main

    root = tmp_path_factory.mktemp("tiny-runs")
    sizes = {"ner": ("160", "40", "30"), "sentiment": ("240", "60", "50")}
    (root / "tiny-ner.yaml").write_text("# tiny NER for the shared tests\nlabel_all_tokens: false\n")
    extras = {
        "ner": ["--experiment", str(root / "tiny-ner.yaml"), "--project", "lab-tests", "--wandb_entity", "team-x"],
        "sentiment": ["--wandb_log_model", "true"],
    }
    runs: dict[str, Path] = {"wandb_dir": root}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_DIR", str(root))
        patch.delenv("WANDB_API_KEY", raising=False)
        patch.delenv("WANDB_MODE", raising=False)
        patch.setenv("NETRC", str(root / "no-netrc"))
        patch.setenv("WANDB_SILENT", "true")
        patch.setenv("WANDB_DATA_DIR", str(root / "wandb-data"))  # artifact staging, not ~/.local
        patch.chdir(root)
        for task, (train, dev, test) in sizes.items():
            if task == "sentiment":
                patch.setenv("WANDB_LOG_MODEL", "end")
            results = main(
                ["--task", task, "--model_name_or_path", str(tiny_model_dir), "--seed", "7"]
                + ["--max_train_samples", train, "--max_eval_samples", dev, "--max_test_samples", test]
                + ["--output_dir", f"outputs/{task}/tiny-seed7", *TINY_TRAINING, *extras[task]]
            )
            runs[task] = root / results["output_dir"]
    import wandb

    wandb.teardown()  # forget this fixture's W&B settings (WANDB_DIR), so later tests log where they ask
    return runs


def wandb_inspect(run_dir: Path, *options: str) -> str:
    """An offline W&B run read back with wandb's own reader (`wandb leet inspect`)."""
    wandb_cli = Path(sys.executable).with_name("wandb")
    command = [str(wandb_cli), "leet", "inspect", *options, str(run_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.fixture(scope="session")
def deploy_runs(tmp_path_factory, tiny_runs) -> dict[str, Path]:
    """Copies of the tiny runs with re-drawn weights and a louder head, exported to ONNX: {task: folder}.

    The tiny runs' hidden states barely vary between texts or tokens (training collapsed them), so
    they predict one class or all 'O', and int8 rounding swamps what variation there is: any
    comparison of backends or processes would pass (or fail) for the wrong reason. The copies'
    encoder is re-drawn at random (std 0.2: states that differ between tokens and texts) and the
    head reads the states' main directions of variation on the test set (centred, logits of a few
    units): both sentiment classes with clear margins, many entities. Their results.json still
    holds the tiny runs' scores, so tests compare backends with each other, not with results.json.
    """
    import shutil

    import torch

    from finetune_lab import inference
    from finetune_lab.export import export_run

    root = tmp_path_factory.mktemp("deploy-runs")
    runs: dict[str, Path] = {}
    for task in ("sentiment", "ner"):
        folder = root / task
        shutil.copytree(tiny_runs[task], folder, ignore=shutil.ignore_patterns("checkpoint-*", "onnx"))
        run = inference.load_run(folder)
        torch.manual_seed(0)
        with torch.no_grad():
            for module in run.model.bert.modules():
                if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                    module.weight.normal_(0.0, 0.2)
            rows = inference.load_test_rows(run)
            items = [r["tokens"] if task == "ner" else r["text"] for r in rows]
            batch = {k: torch.as_tensor(v) for k, v in inference.encode(run, items).items()}
            hidden = run.model.bert(**batch)
            states = hidden.last_hidden_state[batch["attention_mask"].bool()] if task == "ner" else hidden.pooler_output
            mean = states.mean(0)
            directions = torch.linalg.svd(states - mean, full_matrices=False).Vh[: 4 if task == "ner" else 1]
            head = run.model.classifier
            weight = torch.randn(head.out_features, len(directions)) @ directions
            if task == "sentiment":  # one direction, the two classes on either side of the mean
                weight = torch.stack([directions[0], -directions[0]])
            weight *= 3.0 / ((states - mean) @ weight.T).std()
            head.weight.copy_(weight)
            head.bias.copy_(-weight @ mean)
        run.model.save_pretrained(folder)  # safetensors
        export_run(folder)
        runs[task] = folder
    return runs
