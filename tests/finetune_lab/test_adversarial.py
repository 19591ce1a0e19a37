"""--adversarial fgm|pgd: the perturbation's size, the update it changes, the embeddings put back exactly before
the optimizer steps, the adversarial loss scaled like the main one under gradient accumulation, the frozen
embeddings of a PEFT model perturbed at their output, and distillation's loss kept in the adversarial pass."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch
from transformers import Trainer, TrainerCallback

from finetune_lab.adversarial import (
    AdversarialSettings,
    EmbeddingAttack,
    adversarial_class,
    adversarial_record,
    with_adversarial,
)
from finetune_lab.arguments import AdversarialArguments, PeftArguments, parse_arguments
from finetune_lab.distillation import TEACHER_INDEX, DistillationTrainer, TeacherTargets
from finetune_lab.errors import UsageError
from finetune_lab.peft_tuning import apply_peft
from tasks.ner import ConllNer
from tests.finetune_lab.tiny_training import one_step_args, parameters, tiny_examples, tiny_model, train

FGM = AdversarialSettings("fgm", 1.0, 1, 1.0)
PGD = AdversarialSettings("pgd", 1.0, 3, 0.4)
NONE = AdversarialSettings("fgm", 0.0, 1, 0.0)  # a perturbation of size 0: the adversarial pass repeats the clean one


class EmbeddingsAtOptimizerStep(TrainerCallback):
    """The word-embedding matrix as the optimizer is about to step, and the hooks left on it."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.embedding = model.get_input_embeddings()
        self.seen: list[tuple[torch.Tensor, int]] = []

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.seen.append((self.embedding.weight.detach().clone(), len(self.embedding._forward_hooks)))


@pytest.fixture(scope="module")
def ner(tiny_model_dir):
    task = ConllNer()
    return task, tiny_examples(task, tiny_model(task, tiny_model_dir).tokenizer, 16)


@pytest.fixture(scope="module")
def steps(ner, tiny_model_dir, tmp_path_factory):
    """step(name): one SGD step over the 16 examples (memoised: several tests compare the same steps).

    plain: no attack at rate 1; the others at rate 0.5 in 2 accumulated micro-batches of 8, with a
    perturbation of size 0 (`zero`: the clean pass twice, so plain's update exactly, if the adversarial
    pass is a full, like-scaled training pass), FGM or PGD; `lora-*` the same on a LoRA model.
    Returns (the update of every trainable tensor, the callback, the parameters before, the trainer).
    """
    task, examples = ner
    configs = {"plain": (None, 1.0, 1), "zero": (NONE, 0.5, 2), "fgm": (FGM, 0.5, 2), "pgd": (PGD, 0.5, 2)}
    done: dict[str, tuple] = {}

    def step(name: str) -> tuple:
        if name in done:
            return done[name]
        peft = name.startswith("lora-")
        settings, lr, accumulation = configs[name.removeprefix("lora-")]
        built = tiny_model(task, tiny_model_dir)
        if peft:
            built = apply_peft(built, task, PeftArguments(peft="lora", lora_dropout=0.0))
        before = parameters(built.model)
        watch = EmbeddingsAtOptimizerStep(built.model)
        chosen = functools.partial(adversarial_class(Trainer), adversarial=settings) if settings else Trainer
        args = one_step_args(tmp_path_factory.mktemp(name), 16 // accumulation, accumulation, lr=lr)
        trainer = train(task, built, examples, args, callbacks=[watch], trainer_class=chosen)
        update = {n: p.detach() - before[n] for n, p in built.model.named_parameters() if p.requires_grad}
        done[name] = (update, watch, before, trainer)
        return done[name]

    return step


def largest(update: dict) -> float:
    return max(u.abs().max().item() for u in update.values())


def differ(a: dict, b: dict) -> float:
    return max((a[n] - b[n]).abs().max().item() for n in a)


def test_the_adversarial_loss_is_scaled_like_the_main_loss_under_gradient_accumulation(steps):
    """Perturbation of size 0 in 2 accumulated micro-batches: exactly plain SGD at twice the rate over the whole
    batch (the micro-batches hold different numbers of labelled tokens; each pass is normalised by the step's)."""
    plain, repeated = steps("plain")[0], steps("zero")[0]
    assert differ(repeated, plain) < 1e-5 * largest(plain)


@pytest.mark.parametrize("method", ["fgm", "pgd"])
def test_the_perturbed_pass_changes_the_update_and_the_embeddings_are_restored_before_the_step(method, steps):
    plain, repeated = steps("plain")[0], steps("zero")[0]
    attacked, watch, before, _ = steps(method)
    assert differ(attacked, repeated) > 1e-3 * largest(plain)
    # the optimizer stepped from the original embeddings, not perturbed ones, and no hook was left
    (weight, hooks), *rest = watch.seen
    assert not rest and hooks == 0
    assert torch.equal(weight, before["bert.embeddings.word_embeddings.weight"])
    record = adversarial_record(AdversarialArguments(adversarial=method), steps(method)[3].model)
    assert record["method"] == method and record["perturbs"] == "word embedding weights"


def test_under_peft_the_frozen_embeddings_are_perturbed_at_their_output(steps):
    plain, repeated = steps("lora-plain")[0], steps("lora-zero")[0]
    attacked, watch, _, trainer = steps("lora-fgm")
    assert not EmbeddingAttack(trainer.model).on_weights
    assert differ(repeated, plain) < 1e-5 * largest(plain)
    assert differ(attacked, repeated) > 1e-3 * largest(plain)
    assert watch.seen[0][1] == 0  # no hook left on the embedding layer


def test_distillation_keeps_its_loss_in_the_adversarial_pass(ner, tiny_model_dir, tmp_path):
    task, examples = ner
    rows = [sum(label != -100 for label in labels) for labels in examples["labels"]]
    offsets = torch.tensor([0, *torch.tensor(rows).cumsum(0).tolist()])
    teacher = torch.randn(1, int(offsets[-1]), len(task.label_names), generator=torch.Generator().manual_seed(0))
    targets = TeacherTargets(teacher, offsets)
    with_index = examples.add_column(TEACHER_INDEX, list(range(len(examples))))
    distil = functools.partial(DistillationTrainer, targets=targets, alpha=0.7, temperature=2.0, token_level=True)
    updates = {}
    for name, settings, lr in (("plain", None, 1.0), ("zero", NONE, 0.5)):
        built = tiny_model(task, tiny_model_dir)
        before = parameters(built.model)
        chosen = distil
        if settings is not None:
            chosen = functools.partial(adversarial_class(DistillationTrainer), **distil.keywords, adversarial=settings)
        train(task, built, with_index, one_step_args(tmp_path / name, 8, 2, lr=lr), trainer_class=chosen)
        updates[name] = {n: p.detach() - before[n] for n, p in built.model.named_parameters()}
    # the teacher term is in both passes: were it dropped from the adversarial one, the sum would differ
    assert differ(updates["zero"], updates["plain"]) < 1e-5 * largest(updates["plain"])


def test_with_adversarial_composes_with_the_chosen_trainer_class():
    options = AdversarialArguments(adversarial="pgd", adv_steps=2)
    assert with_adversarial(Trainer, AdversarialArguments()) is Trainer
    plain = with_adversarial(Trainer, options)
    assert plain.func.__mro__[1:3] == (adversarial_class(Trainer).__mro__[1], Trainer)
    assert plain.keywords["adversarial"] == AdversarialSettings("pgd", 1.0, 2, 0.3)
    distil = functools.partial(DistillationTrainer, targets=None, alpha=0.5, temperature=2.0, token_level=False)
    both = with_adversarial(distil, options)
    assert issubclass(both.func, DistillationTrainer) and both.func.__name__ == "AdversarialDistillationTrainer"
    assert both.keywords == {**distil.keywords, "adversarial": plain.keywords["adversarial"]}


def test_the_perturbation_is_an_l2_step_projected_into_the_epsilon_ball():
    grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    torch.testing.assert_close(FGM.step(None, grad), grad / 5)  # eps * g / ||g||
    r = None
    for _ in range(3):
        r = PGD.step(r, grad)
    assert torch.linalg.vector_norm(r).item() == pytest.approx(1.0)  # 3 steps of 0.4, projected back to 1
    assert torch.equal(FGM.step(None, torch.zeros(2, 2)), torch.zeros(2, 2))  # nothing to learn: no move
    weight = torch.nn.Embedding(5, 3)
    saved = weight.weight.detach().clone()
    attack = EmbeddingAttack(SimpleNamespace(get_input_embeddings=lambda: weight))
    with pytest.raises(RuntimeError), attack.perturbed(torch.ones(5, 3)):
        assert not torch.equal(weight.weight, saved)
        raise RuntimeError("a failed pass")
    assert torch.equal(weight.weight, saved)  # put back however the block ends


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--adversarial", "free"], "--adversarial free: unknown method; choose fgm or pgd"),
        (["--adv_epsilon", "0.5"], "--adv_epsilon applies only with --adversarial fgm|pgd"),
        (["--adversarial", "fgm", "--adv_steps", "3"], "--adv_steps applies only with --adversarial pgd"),
        (["--adversarial", "pgd", "--adv_alpha", "0"], "--adv_alpha 0: must be a positive number"),
        (["--adversarial", "pgd", "--adv_steps", "0"], "--adv_steps 0: must be at least 1"),
        (["--adversarial", "fgm", "--do_train", "false"], "--adversarial fgm with --do_train false: there is nothing"),
    ],
)
def test_adversarial_options_that_cannot_work_are_errors(extra, message):
    with pytest.raises(UsageError, match=message.replace("|", r"\|")):
        parse_arguments(["--task", "ner", "--report_to", "none", *extra])
