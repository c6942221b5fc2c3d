"""Training-free KV defenses (§7): each rewrites K,V [1,H,T,d] of its layers inside a region only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from cachemedicpp.masks import Axes
from labkit.determinism import generator

HEURISTICS = ("reset_clear", "smoothing", "masking_dropout", "clipping_renorm")


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=-1, keepdim=True).sqrt()


@dataclass(frozen=True)
class Heuristic:
    """One heuristic defense with its parameters; `__call__` follows intervention.KVDefense."""

    name: str
    layers: frozenset[int] | None
    oracle_mask: bool
    axes: Axes | None = None
    beta: float = 0.3
    dropout_p: float = 0.02
    clip_value: float = 6.0
    target_rms: float = 1.0
    seed: int = 0

    def __call__(
        self, layer: int, key: torch.Tensor, value: torch.Tensor, region: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """K,V with this heuristic applied where `region` [1,H,T,1] is set."""
        return self._one(layer, 0, key, region), self._one(layer, 1, value, region)

    def _one(self, layer: int, which: int, x: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        if self.name == "reset_clear":
            new = torch.zeros_like(x)
        elif self.name == "smoothing":
            prev = torch.cat([x[..., :1, :], x[..., :-1, :]], dim=-2)
            new = (1 - self.beta) * x + self.beta * prev
        elif self.name == "masking_dropout":
            # Seeded by (seed, layer, K/V, length): the same read always drops the same entries.
            g = generator(self.seed, "masking_dropout", layer, which, x.shape[-2])
            keep = torch.rand(x.shape, generator=g) >= self.dropout_p
            new = x * keep.to(x.device, x.dtype)
        else:
            clipped = x.clamp(-self.clip_value, self.clip_value)
            new = clipped * (self.target_rms / _rms(clipped).clamp_min(1e-12))
        return torch.where(region, new, x)


def clean_median_rms(records: Mapping[int, Any]) -> float:
    """Median per-vector RMS of the clean K and V that `intervene(..., record=...)` captured."""
    rms = [_rms(t).flatten() for r in records.values() for t in (r.key, r.value)]
    return float(torch.cat(rms).median())


def build_heuristic(
    name: str, cfg: Mapping[str, Any], target_rms: float | None = None
) -> Heuristic:
    """The heuristic `name` with the config's `baseline` settings on the protected layers."""
    base = cfg["baseline"]
    rms = base["target_rms"]
    if rms == "auto":
        if target_rms is None:
            raise ValueError("clipping_renorm with target_rms 'auto' needs the clean median RMS")
        rms = target_rms
    return Heuristic(
        name=name,
        layers=frozenset(cfg["repair"]["protect_layers"]),
        oracle_mask=base["oracle_mask"],
        axes=Axes.from_config(cfg["corruption"]["axes"]),
        beta=base["smoothing_beta"],
        dropout_p=base["dropout_p"],
        clip_value=base["clip_value"],
        target_rms=float(rms),
        seed=cfg["seed"],
    )
