"""Training batch order: --group_by_length_pool's pooled sampler, a seeded batch_rebalance, and --stop_at_dev_score."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainingArguments
from transformers.trainer_pt_utils import BatchRebalanceSampler, LengthGroupedSampler

from finetune_lab.arguments import parse_arguments
from finetune_lab.batching import PooledLengthSampler, mean_labelled_items
from finetune_lab.callbacks import StopAtDevScore
from finetune_lab.errors import UsageError
from finetune_lab.trainer import build_trainer
from tasks.ner import ConllNer
from tests.finetune_lab.tiny_training import DATA_ARGS, tiny_examples, tiny_model


def padding(lengths: list[int], stream: list[int], batch_size: int) -> float:
    """The share of padded positions when `stream` is cut into batches padded to their longest."""
    batches = [stream[i : i + batch_size] for i in range(0, len(stream), batch_size)]
    real = sum(lengths[i] for i in stream)
    return 1 - real / sum(len(b) * max(lengths[i] for i in b) for b in batches)


def stream(lengths: list[int], batch: int, pool: int, seed: int) -> list[int]:
    return list(PooledLengthSampler(lengths, batch, pool, torch.Generator().manual_seed(seed)))


def test_pooled_batches_cover_every_example_once_short_batch_last():
    lengths = [int(x) for x in torch.randint(1, 60, (203,), generator=torch.Generator().manual_seed(0))]
    for seed in range(5):  # the short batch is never drawn into the middle (one seed could put it last by luck)
        sampler = PooledLengthSampler(lengths, 8, 4, torch.Generator().manual_seed(seed))
        batches = sampler.batches()
        assert sorted(i for b in batches for i in b) == list(range(203))
        assert [len(b) for b in batches] == [8] * 25 + [3]  # the data loader cuts the stream into exactly these
    assert list(sampler) != [i for b in batches for i in b]  # a fresh draw each pass (each epoch)
    assert len(sampler) == 203


def test_pooled_batches_are_sorted_pools_in_random_order():
    lengths = list(range(160))  # distinct lengths: a pool of all 160 sorts into fixed consecutive blocks
    batches = PooledLengthSampler(lengths, 16, 10, torch.Generator().manual_seed(3)).batches()
    blocks = {tuple(range(start, start + 16)) for start in range(0, 160, 16)}
    assert {tuple(sorted(b)) for b in batches} == blocks
    maxima = [max(b) for b in batches]
    assert maxima != sorted(maxima, reverse=True) and maxima != sorted(maxima)  # not transformers' long-to-short sweep


def test_pool_size_trades_padding_and_seeds_change_the_order():
    lengths = [int(x) for x in torch.randint(2, 80, (2048,), generator=torch.Generator().manual_seed(0))]
    one, eight = (padding(lengths, stream(lengths, 32, pool, 0), 32) for pool in (1, 8))
    assert one > 0.4 and eight < one / 2  # pools of one batch: random batches; of 8: far less padding
    assert stream(lengths, 32, 8, 0) == stream(lengths, 32, 8, 0)
    assert stream(lengths, 32, 8, 0) != stream(lengths, 32, 8, 1)


def trainer_of(tmp_path: Path, tiny_model_dir: Path, pool: int, denominator: str = "update", **training: object):
    task = ConllNer()
    built = tiny_model(task, tiny_model_dir)
    examples = tiny_examples(task, built.tokenizer, 24)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, per_device_train_batch_size=4,
                             **training)  # fmt: skip
    data_args = SimpleNamespace(**vars(DATA_ARGS), group_by_length_pool=pool, loss_denominator=denominator)
    return build_trainer(task, built.model, built.tokenizer, args, data_args, examples, None)


def sampler_of(tmp_path: Path, tiny_model_dir: Path, pool: int, **training: object) -> object:
    return trainer_of(tmp_path, tiny_model_dir, pool, **training)._get_train_sampler()


def test_mean_labelled_items_counts_tokens_per_sentence_and_one_per_text():
    assert mean_labelled_items({"labels": [[0, -100, 3], [1, 2, 2, -100]]}) == 2.5
    assert mean_labelled_items({"labels": [0, 1, 1]}) == 1.0


@pytest.mark.parametrize("denominator", ["update", "expected"])
def test_loss_denominator_of_an_update(tmp_path, tiny_model_dir, denominator):
    trainer = trainer_of(tmp_path, tiny_model_dir, 2, denominator, train_sampling_strategy="group_by_length",
                         gradient_accumulation_steps=2)  # fmt: skip
    per_example = mean_labelled_items(trainer.train_dataset)
    batches = iter(trainer.get_train_dataloader())
    seen = []
    for _ in range(3):  # 24 examples in 6 batches of 4: three updates of 2 micro-batches
        samples, divisor = trainer.get_batch_samples(batches, 2, torch.device("cpu"))
        counted = sum(int((b["labels"] != -100).sum()) for b in samples)
        seen.append(counted)
        expected = 8 * per_example if denominator == "expected" else counted  # 8 examples per update
        assert float(divisor) == pytest.approx(expected)
    assert len(set(seen)) > 1  # length-grouped updates hold different numbers of tokens: the two differ


def test_the_trainer_uses_the_pooled_sampler_and_seeds_batch_rebalance(tmp_path, tiny_model_dir):
    pooled = sampler_of(tmp_path, tiny_model_dir, 3, train_sampling_strategy="group_by_length")
    assert isinstance(pooled, PooledLengthSampler) and (pooled.batch_size, pooled.pool_batches) == (4, 3)
    assert isinstance(sampler_of(tmp_path, tiny_model_dir, 0, train_sampling_strategy="group_by_length"),
                      LengthGroupedSampler)  # fmt: skip
    rebalanced = sampler_of(tmp_path, tiny_model_dir, 0, train_sampling_strategy="batch_rebalance",
                            gradient_accumulation_steps=2, seed=7)  # fmt: skip
    assert isinstance(rebalanced, BatchRebalanceSampler) and rebalanced.seed == 7  # transformers leaves it at 42


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--group_by_length_pool", "8", "--train_sampling_strategy", "random"], "only with --train_sampling_strategy"),
        (["--group_by_length_pool", "-1"], "--group_by_length_pool -1: must be 0"),
        (["--stop_at_dev_score", "0.9", "--do_eval", "false"], "--stop_at_dev_score 0.9: needs dev evaluations"),
        (["--stop_at_dev_score", "0.9", "--eval_strategy", "no"], "--stop_at_dev_score 0.9: needs dev evaluations"),
    ],
)
def test_options_that_would_do_nothing_are_rejected(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_arguments(["--task", "ner", *argv])


def test_default_batching_is_pools_of_8_with_every_token_weighed_the_same():
    parsed = parse_arguments(["--task", "ner"])
    assert (parsed.data.group_by_length_pool, parsed.data.loss_denominator) == (8, "expected")
    assert parsed.training.train_sampling_strategy == "group_by_length"
    plain = parse_arguments(["--task", "ner", "--train_sampling_strategy", "random"])  # the default pool is no error
    assert plain.training.train_sampling_strategy == "random"


def evaluate(callback: StopAtDevScore, value: float, step: int = 10, greater_is_better: bool = True) -> bool:
    args = SimpleNamespace(metric_for_best_model="f1", greater_is_better=greater_is_better)
    control = SimpleNamespace(should_training_stop=False)
    callback.on_evaluate(args, SimpleNamespace(global_step=step, epoch=0.5), control, metrics={"eval_f1": value})
    return control.should_training_stop


def test_stop_at_dev_score_stops_at_the_first_evaluation_that_reaches_it():
    callback = StopAtDevScore(0.8)
    callback.on_train_begin(None, None, None)
    assert not evaluate(callback, 0.79) and callback.reached is None
    assert evaluate(callback, 0.8, step=20)
    assert callback.reached["step"] == 20 and callback.reached["dev"] == 0.8 and callback.reached["seconds"] >= 0
    assert not evaluate(callback, 0.9, step=30) and callback.reached["step"] == 20  # the first one counts
    lower = StopAtDevScore(0.5)
    assert not evaluate(lower, 0.6, greater_is_better=False) and evaluate(lower, 0.4, greater_is_better=False)
    assert StopAtDevScore(None).record() == {} and not evaluate(StopAtDevScore(None), 1.0)


def test_a_run_stops_at_its_dev_target_and_records_when(tiny_model_dir, tmp_path, monkeypatch):
    from run import main

    monkeypatch.chdir(tmp_path)
    results = main(
        ["--task", "sentiment", "--model_name_or_path", str(tiny_model_dir), "--report_to", "none"]
        + ["--max_train_samples", "64", "--max_eval_samples", "16", "--do_predict", "false"]
        + ["--per_device_train_batch_size", "8", "--num_train_epochs", "1", "--eval_strategy", "steps"]
        + ["--eval_steps", "2", "--save_strategy", "no", "--load_best_model_at_end", "false"]
        + ["--stop_at_dev_score", "0.0", "--output_dir", "run", "--disable_tqdm", "true"]
    )
    saved = json.loads(Path("run/results.json").read_text())["train"]
    assert saved["stop_at_dev_score"]["target"] == 0.0
    assert saved["stop_at_dev_score"]["reached"]["step"] == 2 and saved["steps"] == 2  # not the epoch's 8
    assert results["train"] == saved
