"""--adversarial fgm|pgd: every training batch is learnt twice, as it is and perturbed against the model.

    python run.py --task sentiment --adversarial fgm [--adv_epsilon 1]
    python run.py --task ner --adversarial pgd [--adv_epsilon 1 --adv_alpha 0.3 --adv_steps 3]

FGM (Miyato et al., 2017): after the clean pass, the word embeddings move by r = eps * g / ||g||_2,
g the gradient of this batch's loss with respect to them; a second pass on the perturbed
embeddings adds its gradients to the clean ones; the embeddings are put back exactly before the
optimizer steps. PGD (Madry et al., 2018): `adv_steps` ascent steps of L2 norm `adv_alpha`, each
projected back into the ball of radius `adv_epsilon`; only the last step's gradients are kept.
The norm is taken over the whole perturbed tensor of the batch (as the common FGM recipe does).

What is perturbed: the word-embedding matrix when it trains (its rows of this batch's tokens, as
the gradient is zero elsewhere); under --peft, where it is frozen, the embedding layer's output
instead, through a forward hook.

Both passes are Trainer's own training_step (the clean one, then the adversarial one), so the
adversarial loss is scaled exactly as the main loss (gradient accumulation, loss normalisation by
the number of labelled items), under the same autocast (bf16) and gradient synchronisation (DDP:
the local gradient sets the perturbation, each process runs the same passes). It composes with any
Trainer subclass, distillation's included (`with_adversarial`). The logged training loss is the
clean loss, comparable with plain runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from transformers import Trainer

DEFAULTS = {"adv_epsilon": 1.0, "adv_steps": 3, "adv_alpha": 0.3}


@dataclasses.dataclass(frozen=True)
class AdversarialSettings:
    """fgm is pgd with one step of the full radius."""

    method: str
    epsilon: float
    steps: int
    alpha: float

    @classmethod
    def from_options(cls, options: Any) -> AdversarialSettings | None:
        """From AdversarialArguments (checked in arguments.check_adversarial); None without --adversarial."""
        if not options.adversarial:
            return None
        value = {k: v if (v := getattr(options, k)) is not None else d for k, d in DEFAULTS.items()}
        if options.adversarial == "fgm":
            return cls("fgm", value["adv_epsilon"], 1, value["adv_epsilon"])
        return cls("pgd", value["adv_epsilon"], value["adv_steps"], value["adv_alpha"])

    def step(self, r: torch.Tensor | None, grad: torch.Tensor | None) -> torch.Tensor | None:
        """The next perturbation: r + alpha * g / ||g||, projected into the L2 ball of radius epsilon.

        A zero or non-finite gradient (a batch with nothing to learn) leaves r as it is (zero at first):
        the adversarial pass still runs, so every process of a DDP run runs the same passes.
        """
        if grad is None:
            return r
        norm = torch.linalg.vector_norm(grad)
        if not torch.isfinite(norm) or norm == 0:
            return r if r is not None else torch.zeros_like(grad)
        r = (0 if r is None else r) + self.alpha * grad / norm
        size = torch.linalg.vector_norm(r)
        return r * (self.epsilon / size) if size > self.epsilon else r


class EmbeddingAttack:
    """Perturbs a model's word embeddings: their weights where they train, else their output (a forward hook)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.embedding = model.get_input_embeddings()
        self.on_weights = bool(self.embedding.weight.requires_grad)
        self.grad: torch.Tensor | None = None  # the last recorded gradient with respect to what is perturbed
        self.leaf: torch.Tensor | None = None  # what that gradient is taken with respect to, in this forward

    def _record(self, grad: torch.Tensor) -> None:
        self.grad = grad.detach().float().clone()

    def _output_hook(self, offset: torch.Tensor | None, probe: bool) -> Callable[..., torch.Tensor]:
        def hook(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
            if offset is not None:
                output = output + offset.to(output.dtype)
            if probe:  # a zero leaf whose gradient is the gradient with respect to the output
                self.leaf = torch.zeros_like(output, requires_grad=True)
                self.leaf.register_hook(self._record)
                output = output + self.leaf
            return output

        return hook

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Record the gradient with respect to what is perturbed, as this block's backward computes it.

        A hook on the tensor itself sees this pass's own gradient: not what earlier micro-batches
        accumulated in .grad, nor (under DDP) the average across processes.
        """
        if self.on_weights:
            self.leaf = self.embedding.weight
            handle = self.embedding.weight.register_hook(self._record)
        else:
            handle = self.embedding.register_forward_hook(self._output_hook(None, probe=True))
        try:
            yield
        finally:
            handle.remove()

    @contextlib.contextmanager
    def perturbed(self, r: torch.Tensor, probe: bool = False) -> Iterator[None]:
        """The embeddings moved by `r` inside the block; exactly as before after it, however it ends."""
        if not self.on_weights:
            handle = self.embedding.register_forward_hook(self._output_hook(r, probe))
            try:
                yield
            finally:
                handle.remove()
            return
        weight = self.embedding.weight
        saved = weight.data.clone()
        weight.data.add_(r.to(weight.dtype))
        self.leaf = weight
        try:
            yield
        finally:
            weight.data.copy_(saved)


class AdversarialMixin:
    """training_step: Trainer's own step on the batch, then on the batch perturbed (see the module doc)."""

    def __init__(self, *args: Any, adversarial: AdversarialSettings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adversarial = adversarial

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        attack = EmbeddingAttack(self.model)
        with attack.recording():
            loss = super().training_step(model, inputs, num_items_in_batch)  # clean: forward, scaled backward
        settings, r, grad = self.adversarial, None, attack.grad
        for ascent in range(settings.steps):
            r = settings.step(r, grad)
            if ascent < settings.steps - 1:  # PGD: where to go next; these passes' weight gradients are not kept
                with attack.perturbed(r, probe=not attack.on_weights):
                    grad = self._ascent_gradient(attack, inputs, num_items_in_batch)
        with attack.perturbed(r):
            super().training_step(model, inputs, num_items_in_batch)  # adversarial: gradients added to the clean ones
        return loss

    def _ascent_gradient(self, attack: EmbeddingAttack, inputs: dict[str, Any], num_items_in_batch: Any) -> Any:
        """The loss's gradient with respect to the perturbed tensor only (torch.autograd.grad: no .grad touched).

        Through the unwrapped model: a DDP wrapper would expect a synchronising backward after its forward.
        """
        prepared = self._prepare_inputs(inputs)
        with self.compute_loss_context_manager():
            loss = self.compute_loss(self.model, prepared, num_items_in_batch=num_items_in_batch)
        (grad,) = torch.autograd.grad(loss, attack.leaf)
        return grad.detach().float()


@functools.cache
def adversarial_class(base: type) -> type:
    """`base` (Trainer or a subclass: distillation's) with adversarial training steps."""
    return type(f"Adversarial{base.__name__}", (AdversarialMixin, base), {"__doc__": AdversarialMixin.__doc__})


def with_adversarial(trainer_class: Callable[..., Trainer], options: Any) -> Callable[..., Trainer]:
    """The trainer class for build_trainer: `trainer_class` as it is without --adversarial, else it with
    adversarial steps (a functools.partial keeps its arguments)."""
    settings = AdversarialSettings.from_options(options)
    if settings is None:
        return trainer_class
    if isinstance(trainer_class, functools.partial):
        base = adversarial_class(trainer_class.func)
        return functools.partial(base, *trainer_class.args, **trainer_class.keywords, adversarial=settings)
    return functools.partial(adversarial_class(trainer_class), adversarial=settings)


def adversarial_record(options: Any, model: torch.nn.Module) -> dict[str, Any] | None:
    """For results.json: the method, its settings and what it perturbs; None without --adversarial."""
    settings = AdversarialSettings.from_options(options)
    if settings is None:
        return None
    record: dict[str, Any] = {"method": settings.method, "epsilon": settings.epsilon}
    if settings.method == "pgd":
        record.update(steps=settings.steps, alpha=settings.alpha)
    frozen = not model.get_input_embeddings().weight.requires_grad
    record["perturbs"] = "word embedding output (the embeddings are frozen)" if frozen else "word embedding weights"
    record["norm"] = "L2 over the batch's whole perturbation"
    return record
