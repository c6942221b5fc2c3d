"""The objective: L = L_KD + λ_id L_id (clean steps) + λ_contr L_contr (corrupted steps) + λ_w ‖φ‖²."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass
class LayerKV:
    """One protected layer's repaired parts ('K' and/or 'V'): clean, corrupted and repaired tensors."""

    clean: dict[str, torch.Tensor]
    corrupted: dict[str, torch.Tensor]
    repaired: dict[str, torch.Tensor]
    damaged: bool  # C changed this layer on this step


def kd_loss(teacher: torch.Tensor, student: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(z_clean/T) ‖ softmax(z_rep/T)) per position [P, V], averaged over positions."""
    t = F.log_softmax(teacher.float() / temperature, dim=-1)
    s = F.log_softmax(student.float() / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")


def _sq(x: torch.Tensor) -> torch.Tensor:
    return x.float().pow(2).sum()


def identity_loss(layers: Sequence[LayerKV], eps0: float) -> torch.Tensor:
    """Σ_l Σ_parts ‖x_rep − x‖² / (Σ_parts ‖x‖² + eps0), x the clean cache."""
    total = torch.zeros(())
    for lay in layers:
        num = sum(_sq(lay.repaired[p] - lay.clean[p]) for p in lay.repaired)
        den = sum(_sq(lay.clean[p]) for p in lay.repaired)
        total = total + num / (den + eps0)
    return total


def contraction_ratios(layers: Sequence[LayerKV], eps0: float) -> torch.Tensor:
    """ρ_l = Σ_parts ‖x_rep − x‖ / (Σ_parts ‖x_corr − x‖ + eps0) for each damaged layer."""
    rhos = []
    for lay in layers:
        if not lay.damaged:
            continue
        num = sum(
            torch.linalg.vector_norm((lay.repaired[p] - lay.clean[p]).float()) for p in lay.repaired
        )
        den = sum(
            torch.linalg.vector_norm((lay.corrupted[p] - lay.clean[p]).float())
            for p in lay.repaired
        )
        rhos.append(num / (den + eps0))
    return torch.stack(rhos) if rhos else torch.zeros(0)


def contraction_loss(rho: torch.Tensor, alpha_contr: float) -> torch.Tensor:
    """Σ_l max(0, ρ_l − alpha_contr)²."""
    return F.relu(rho - alpha_contr).pow(2).sum()


def weight_penalty(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """‖φ‖², the sum of squares of every parameter."""
    return sum((_sq(p) for p in params), torch.zeros(()))
