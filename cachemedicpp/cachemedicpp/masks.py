"""Where a corruption event strikes: layers, heads and cache positions, drawn from the event's seed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from labkit.determinism import generator


@dataclass(frozen=True)
class Axes:
    """The mask axes of `corruption.axes`: a layer ∧ head ∧ time mask over the cache."""

    layer_mode: str = "all"  # all | bernoulli | targeted
    p_layer: float = 0.5
    layers: tuple[int, ...] = ()
    head_mode: str = "all"  # all | bernoulli | targeted
    p_head: float = 0.25
    heads: tuple[int, ...] = ()
    time_mode: str = "all_past"  # all_past | old_only | window
    n_recent: int = 32
    window: tuple[int, int] | None = None

    @classmethod
    def from_config(cls, axes: Mapping[str, Any]) -> Axes:
        """Axes from the resolved `corruption.axes` mapping."""
        window = axes["window"]
        return cls(
            layer_mode=axes["layer_mode"],
            p_layer=axes["p_layer"],
            layers=tuple(axes["layers"]),
            head_mode=axes["head_mode"],
            p_head=axes["p_head"],
            heads=tuple(axes["heads"]),
            time_mode=axes["time_mode"],
            n_recent=axes["n_recent"],
            window=None if window is None else (window[0], window[1]),
        )

    def targeted(self) -> Axes:
        """The same axes restricted to `layers` and `heads` (the `targeted` wrapper)."""
        return replace(self, layer_mode="targeted", head_mode="targeted")


def layer_set(axes: Axes, protect_layers: Sequence[int], key: tuple) -> tuple[int, ...]:
    """The protected layers this event hits (drawn once per event for `bernoulli`)."""
    if axes.layer_mode == "all":
        return tuple(protect_layers)
    if axes.layer_mode == "targeted":
        return tuple(layer for layer in protect_layers if layer in axes.layers)
    draws = torch.rand(len(protect_layers), generator=generator(*key, "layers"))
    return tuple(
        layer for layer, u in zip(protect_layers, draws.tolist(), strict=True) if u < axes.p_layer
    )


def head_mask(axes: Axes, n_heads: int, key: tuple, layer: int) -> torch.Tensor:
    """Boolean [n_heads]: the heads of `layer` this event hits."""
    if axes.head_mode == "all":
        return torch.ones(n_heads, dtype=torch.bool)
    if axes.head_mode == "targeted":
        mask = torch.zeros(n_heads, dtype=torch.bool)
        mask[list(axes.heads)] = True
        return mask
    return torch.rand(n_heads, generator=generator(*key, layer, "heads")) < axes.p_head


def time_mask(axes: Axes, length: int) -> torch.Tensor:
    """Boolean [length]: the absolute cache positions this event hits in a cache of `length`."""
    t = torch.arange(length)
    if axes.time_mode == "all_past":
        return torch.ones(length, dtype=torch.bool)
    if axes.time_mode == "old_only":
        return t < length - axes.n_recent
    start, end = axes.window
    return (t >= start) & (t < end)
