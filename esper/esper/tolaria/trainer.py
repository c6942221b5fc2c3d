"""One training epoch and one validation pass, for classification and language modelling alike."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from esper.kasmina import MorphogeneticModel

PERPLEXITY_CAP = 20.0  # exp(loss) above this is reported as inf (the model has diverged)

Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class EpochResult:
    """Mean training loss and top-1 accuracy over the epoch's samples (tokens for LM)."""

    loss: float
    accuracy: float
    steps: int


@dataclass(frozen=True)
class ValResult:
    """Validation loss per sample (per token for LM), top-1 accuracy, and LM perplexity."""

    loss: float
    accuracy: float
    perplexity: float | None


def perplexity(loss: float) -> float:
    """exp(loss), or inf past PERPLEXITY_CAP."""
    return math.exp(loss) if loss <= PERPLEXITY_CAP else math.inf


def _loss_sum(logits: Tensor, y: Tensor) -> tuple[Tensor, int, int]:
    flat = logits.reshape(-1, logits.shape[-1])
    target = y.reshape(-1)
    loss = F.cross_entropy(flat, target, reduction="sum")
    hits = int((flat.argmax(-1) == target).sum())
    return loss, hits, target.numel()


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizers: Sequence[torch.optim.Optimizer],
    device: torch.device | str = "cpu",
) -> EpochResult:
    """Step every optimiser on every batch (host alone, or host and seed in incubator/blended mode)."""
    model.train()
    total, hits, count, steps = 0.0, 0, 0, 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        loss_sum, h, n = _loss_sum(model(x), y)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        (loss_sum / n).backward()
        _incubate(model, y)
        for opt in optimizers:
            opt.step()
        total += float(loss_sum.detach())
        hits, count, steps = hits + h, count + n, steps + 1
    if count == 0:
        raise ValueError("the training epoch had no batches")
    return EpochResult(total / count, hits / count, steps)


def _incubate(model: nn.Module, y: Tensor) -> None:
    """A TRAINING seed's gradients, from its own pass on this batch (the host's are left alone)."""
    if not isinstance(model, MorphogeneticModel):
        return
    with model.incubator() as logits:
        if logits is None:
            return
        loss_sum, _, n = _loss_sum(logits, y)
        params = [p for p in model.live_slot.seed.parameters() if p.requires_grad]
        for p, g in zip(params, torch.autograd.grad(loss_sum / n, params), strict=True):
            p.grad = g


@torch.no_grad()
def validate(
    model: nn.Module, batches: Iterable[Batch], task_type: str, device: torch.device | str = "cpu"
) -> ValResult:
    """Loss, accuracy (telemetry only) and, for `lm`, perplexity over the validation batches."""
    model.eval()
    total, hits, count = 0.0, 0, 0
    for x, y in batches:
        loss_sum, h, n = _loss_sum(model(x.to(device)), y.to(device))
        total, hits, count = total + float(loss_sum), hits + h, count + n
    if count == 0:
        raise ValueError("validation had no batches")
    loss = total / count
    return ValResult(loss, hits / count, perplexity(loss) if task_type == "lm" else None)
