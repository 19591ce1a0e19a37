"""How training examples are put into batches, beyond what `--train_sampling_strategy` offers.

transformers' `group_by_length` sorts random pools of 50 batches by length and plays each pool's
batches longest first: little padding, but batches of one length class in a fixed long-to-short
sweep, which learns more slowly per step than random order (issue 12). `--group_by_length_pool N`
(default 8; 0 is transformers' grouping) sorts within random pools of N batches instead and shuffles
the batches, so the order of lengths is random again and N trades padding against how alike a batch's
lengths are.

`--loss_denominator expected` (the default) divides each update's summed token loss by the examples in the update times
the training set's mean labelled items per example, not by the update's own labelled items (transformers'
`num_items_in_batch`). In random order the two are about equal; in length-grouped batches a batch of
short sentences has few tokens (CoNLL, batch 32: 13-19x fewer than the longest batch of its pool of 8), so
dividing by its own count weighs each of its tokens that much more than a token of a long batch. With
`expected` every token weighs the same, whatever batch it lands in. Texts have one label each, so for
classification the two denominators are the same.

`batch_rebalance` (transformers' BatchRebalanceSampler: each update's random examples, split by
length into `--gradient_accumulation_steps` micro-batches) ignores `--seed` in transformers 5.24
(the Trainer builds it with its fixed default seed 42); here it gets `--data_seed`, else `--seed`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler
from transformers import Trainer

# The defaults (issue 12, docs/benchmarks.md): batches sorted by length within random pools of 8 batches, then
# shuffled; every labelled token weighed the same. Full CoNLL, 3 epochs, seeds 1-3: NER test F1 as random order's
# (dev 0.3 points lower) at ~2x its train samples/s.
DEFAULT_POOL_BATCHES = 8
DEFAULT_LOSS_DENOMINATOR = "expected"


class PooledLengthSampler(Sampler[int]):
    """Indices in batches of similar length: a random permutation cut into pools of `pool_batches`
    batches, each pool sorted by length and cut into batches, the batches then shuffled.

    The one short batch (when the data does not divide into batches) comes last, so the data loader,
    which cuts this index stream into `batch_size` pieces, cuts exactly these batches. `generator`
    None draws from torch's global generator (seeded by `--seed`; a resumed run restores it).
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, pool_batches: int, generator: torch.Generator | None = None
    ) -> None:
        if batch_size < 1 or pool_batches < 1:
            raise ValueError(f"batch_size and pool_batches must be >= 1, got {batch_size} and {pool_batches}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.pool_batches = pool_batches
        self.generator = generator

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        """One epoch's batches, in training order."""
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        pool_size = self.pool_batches * self.batch_size
        full: list[list[int]] = []
        short: list[list[int]] = []
        for start in range(0, len(order), pool_size):
            pool = sorted(order[start : start + pool_size], key=self.lengths.__getitem__, reverse=True)
            for first in range(0, len(pool), self.batch_size):
                batch = pool[first : first + self.batch_size]
                (full if len(batch) == self.batch_size else short).append(batch)
        shuffled = torch.randperm(len(full), generator=self.generator).tolist()
        return [full[i] for i in shuffled] + short

    def __iter__(self) -> Iterator[int]:
        return iter([index for batch in self.batches() for index in batch])


def mean_labelled_items(dataset: Any) -> float:
    """Labelled items (labels other than -100) per training example: tokens for token classification, 1 for a text."""
    labels = dataset["labels"]
    if len(labels) and isinstance(labels[0], (list, tuple)):
        return sum(sum(1 for label in row if label != -100) for row in labels) / len(labels)
    return 1.0


def example_lengths(dataset: Any, column: str = "input_ids") -> list[int]:
    """Tokens per example (the `length` column where the data set has one, as the Trainer's own samplers)."""
    if "length" in dataset.column_names:
        return list(dataset["length"])
    return [len(ids) for ids in dataset[column]]


class BatchingMixin:
    """Trainer's training sampler, with --group_by_length_pool and a seeded batch_rebalance; --loss_denominator."""

    group_by_length_pool: int = DEFAULT_POOL_BATCHES
    loss_denominator: str = DEFAULT_LOSS_DENOMINATOR
    _items_per_example: float | None = None

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> tuple[list, Any]:
        """The training loop's micro-batches of one update and its loss denominator (`num_items_in_batch`)."""
        batch_samples, counted = super().get_batch_samples(epoch_iterator, num_batches, device)  # type: ignore[misc]
        if self.loss_denominator != "expected" or counted is None or not batch_samples:
            return batch_samples, counted
        if self._items_per_example is None:
            self._items_per_example = mean_labelled_items(self.train_dataset)
        examples = sum(len(batch["labels"]) for batch in batch_samples)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            examples *= self.args.world_size  # as transformers' count, summed over the processes
        return batch_samples, torch.tensor(examples * self._items_per_example, device=device)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = self.train_dataset if train_dataset is None else train_dataset
        strategy = self.args.train_sampling_strategy
        if strategy == "group_by_length" and self.group_by_length_pool and hasattr(dataset, "column_names"):
            return PooledLengthSampler(example_lengths(dataset), self.args.train_batch_size, self.group_by_length_pool)
        sampler = super()._get_train_sampler(train_dataset)  # type: ignore[misc]
        if strategy == "batch_rebalance" and hasattr(sampler, "seed"):
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            sampler.seed = seed
        return sampler


@functools.cache
def batching_class(base: type) -> type:
    """`base` (Trainer or a subclass) with BatchingMixin's training sampler."""
    return type(f"Batched{base.__name__}", (BatchingMixin, base), {"__doc__": BatchingMixin.__doc__})


def with_batching(
    trainer_class: Callable[..., Trainer], group_by_length_pool: int, loss_denominator: str
) -> Callable[..., Trainer]:
    """The trainer class for build_trainer: `trainer_class` with BatchingMixin; a functools.partial keeps
    its arguments. The pool size and loss denominator go on the instance (keywords the Trainer does not take)."""
    func = trainer_class.func if isinstance(trainer_class, functools.partial) else trainer_class
    args = trainer_class.args if isinstance(trainer_class, functools.partial) else ()
    keywords = trainer_class.keywords if isinstance(trainer_class, functools.partial) else {}
    base = batching_class(func)

    def build(*more: Any, **kw: Any) -> Trainer:
        trainer = base(*args, *more, **keywords, **kw)
        trainer.group_by_length_pool = group_by_length_pool
        trainer.loss_denominator = loss_denominator
        return trainer

    return build
