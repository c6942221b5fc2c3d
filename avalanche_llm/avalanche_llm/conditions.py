"""Condition vocabulary shared by every phase: target rates, condition keys `SD|rate`, gain labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RateTarget:
    """One target mean layer rate rho; `key` is the configured value as written (rate or lambda)."""

    key: str
    rho: float
    spec: str  # "layer_rate" or "events_per_site"


def rate_targets(pipeline: dict[str, Any], d_ff: int) -> list[RateTarget]:
    """The target rates of a config for a model with MLP width `d_ff`.

    `target_events_per_site` (lambda) keeps the reference's events per site on any width: rho = lambda / d_ff.
    """
    if pipeline.get("target_layer_rates"):
        return [
            RateTarget(f"{r:g}", float(r), "layer_rate") for r in pipeline["target_layer_rates"]
        ]
    return [
        RateTarget(f"{lam:g}", float(lam) / d_ff, "events_per_site")
        for lam in pipeline["target_events_per_site"]
    ]


def condition_key(spike_def: str, rate_key: str) -> str:
    """`SD|rate`, the key of a (spike definition, target rate) condition in gstar.json and tables."""
    return f"{spike_def}|{rate_key}"


def split_condition_key(key: str) -> tuple[str, str]:
    """Inverse of condition_key."""
    spike_def, _, rate_key = key.partition("|")
    return spike_def, rate_key
