"""Spike definitions: v = z (one-sided) or |z| (two-sided); a unit spikes at a site iff v > tau_l."""

from __future__ import annotations

import torch

from labkit.errors import ConfigError

SPIKE_DEFS = ("SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS")


def spike_values(z: torch.Tensor, spike_def: str) -> torch.Tensor:
    """The value compared with the threshold under `spike_def`."""
    if spike_def == "SPIKE_ONE_SIDED_POS":
        return z
    if spike_def == "SPIKE_TWO_SIDED_ABS":
        return z.abs()
    raise ConfigError(f"unknown spike definition {spike_def!r}; known: {', '.join(SPIKE_DEFS)}")


def spike_counts(v: torch.Tensor, tau: float) -> torch.Tensor:
    """Units above `tau` per site: v [..., d_ff] -> int32 counts [...]."""
    return (v > tau).sum(dim=-1, dtype=torch.int32)
