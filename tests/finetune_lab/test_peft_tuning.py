"""--peft lora|ia3: only the adapters and the head train, the saved merged model and the adapter reproduce the
trained model, the options are checked, and prefix / prompt tuning are refused in one line."""

from __future__ import annotations

import sys

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForTokenClassification

import run
from finetune_lab.arguments import PeftArguments, parse_arguments
from finetune_lab.errors import UsageError
from finetune_lab.peft_tuning import ADAPTER_DIR, apply_peft
from finetune_lab.rundir import save_model_atomically
from tasks.ner import ConllNer
from tasks.sentiment import MovieReviewSentiment
from tests.finetune_lab.tiny_training import one_step_args, parameters, tiny_examples, tiny_model, train


def _logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    """A LoRA model of the tiny BERT trained 3 steps (Adam, so every trainable tensor moves), then saved."""
    task = ConllNer()
    built = apply_peft(tiny_model(task, tiny_model_dir, dropout=True), task, PeftArguments(peft="lora", lora_r=4))
    examples = tiny_examples(task, built.tokenizer, 24)
    before = parameters(built.model)
    folder = tmp_path_factory.mktemp("lora-run")
    args = one_step_args(folder / "trainer", 8, lr=1e-2, optim="adamw_torch")
    args.max_steps = 3
    trainer = train(task, built, examples, args)
    after = parameters(built.model)
    batch = {k: v for k, v in trainer.data_collator([examples[i] for i in range(6)]).items() if k != "labels"}
    logits = _logits(built.model, batch)
    save_model_atomically(trainer, folder)
    return {"built": built, "before": before, "after": after, "batch": batch, "logits": logits, "run_dir": folder}


def test_lora_trains_only_the_adapters_and_the_head(lora_run):
    before, after, record = lora_run["before"], lora_run["after"], lora_run["built"].peft
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed, "nothing trained"
    assert all(".lora_A." in n or ".lora_B." in n or ".modules_to_save." in n for n in changed), changed
    assert any(".lora_A." in n for n in changed) and any(".lora_B." in n for n in changed)
    assert {n for n in changed if ".modules_to_save." in n} == {
        "base_model.model.classifier.modules_to_save.default.weight",
        "base_model.model.classifier.modules_to_save.default.bias",
    }  # the head trains (a random head that stays random is peft's known trap)
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in changed if ".lora_" in n}
    assert targets == {"query", "value"}  # BERT's default targets
    # the count recorded (results.json) is the count of what changed, a small part of the model
    assert sum(after[n].numel() for n in changed) == record["trainable_parameters"]
    assert record["trainable_parameters"] < 0.1 * record["all_parameters"]
    assert record["method"] == "lora" and record["r"] == 4 and record["modules_to_save"] == ["classifier"]
    assert record["trainable_percent"] == round(100 * record["trainable_parameters"] / record["all_parameters"], 4)


def test_the_saved_merged_model_and_the_adapter_reproduce_the_trained_model(lora_run, tiny_model_dir):
    run_dir = lora_run["run_dir"]
    merged = AutoModelForTokenClassification.from_pretrained(run_dir)
    assert not isinstance(merged, PeftModel) and not any("lora" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged, lora_run["batch"]), lora_run["logits"], rtol=1e-4, atol=1e-5)
    # the adapter alone, on a fresh copy of the base model (its head random): the same logits again
    torch.manual_seed(123)
    base = AutoModelForTokenClassification.from_pretrained(tiny_model_dir, num_labels=len(ConllNer.label_names))
    reloaded = PeftModel.from_pretrained(base, run_dir / ADAPTER_DIR)
    torch.testing.assert_close(_logits(reloaded, lora_run["batch"]), lora_run["logits"], rtol=1e-4, atol=1e-5)
    assert not (run_dir / "adapter_model.safetensors").exists()  # the root holds the merged model only


def test_ia3_wraps_a_text_classifier_with_its_head_trainable(tiny_model_dir):
    task = MovieReviewSentiment()
    built = apply_peft(tiny_model(task, tiny_model_dir), task, PeftArguments(peft="ia3"))
    trainable = {n for n, p in built.model.named_parameters() if p.requires_grad}
    assert trainable and all(".ia3_l." in n or ".modules_to_save." in n for n in trainable), trainable
    assert any("classifier.modules_to_save" in n for n in trainable)
    assert built.peft["method"] == "ia3" and built.peft["task_type"] == "SEQ_CLS"
    assert "ia3 adapters" in built.description


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--peft", "lora_plus"], "--peft lora_plus: unknown method; choose one of lora, ia3"),
        (["--lora_r", "4"], "--lora_r applies only with --peft lora"),
        (["--peft", "ia3", "--lora_alpha", "8"], "--lora_alpha applies only with --peft lora, not --peft ia3"),
        (["--peft", "lora", "--lora_r", "0"], "--lora_r 0: must be at least 1"),
        (["--peft", "lora", "--lora_dropout", "1"], "--lora_dropout 1: must be at least 0 and below 1"),
        (["--peft", "prompt_tuning"], "--peft prompt_tuning: prefix and prompt tuning do not work"),
        (["--peft", "lora", "--do_train", "false"], "--peft lora with --do_train false: there is nothing to train"),
    ],
)
def test_peft_options_that_cannot_work_are_errors(extra, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_arguments(["--task", "ner", "--report_to", "none", *extra])


def test_lora_target_modules_take_spaces_or_commas_and_unknown_ones_are_named(tiny_model_dir):
    args = parse_arguments(["--task", "ner", "--peft", "lora", "--lora_target_modules", "query,key", "value"])
    assert args.peft.lora_target_modules == ["query", "key", "value"]
    task = ConllNer()
    with pytest.raises(UsageError, match=r"--lora_target_modules querry: not layers of .* named .*query"):
        apply_peft(tiny_model(task, tiny_model_dir), task, PeftArguments(peft="lora", lora_target_modules=["querry"]))


def test_prefix_tuning_is_one_line_exit_2(monkeypatch, capsys):
    """run.py's own command-line entry point (in this process: a subprocess would only add start-up time)."""
    monkeypatch.setattr(sys, "argv", ["run.py", "--task", "ner", "--peft", "prefix", "--report_to", "none"])
    with pytest.raises(SystemExit) as stopped:
        run.cli()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert "--peft prefix: prefix and prompt tuning do not work with BERT-family token classification" in err
    assert "use --peft lora or ia3" in err
