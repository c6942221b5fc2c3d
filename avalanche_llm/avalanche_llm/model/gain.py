"""Gain interventions: scale an MLP's (or attention's) residual contribution by g through forward hooks.

h_next = h + attn + g * mlp(h). No weight is edited; hooks are removed when the context exits.
MLP_BAND_* scale one third of the layers (np.array_split of the depth into early, mid, late).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from avalanche_llm.model.hooks import attentions, mlps
from labkit.errors import ConfigError

BANDS = ("MLP_BAND_EARLY", "MLP_BAND_MID", "MLP_BAND_LATE")
INTERVENTIONS = ("MLP_GLOBAL", "ATTN_GLOBAL", *BANDS)


def layer_gains(intervention: str, gain: float, n_layers: int) -> list[float]:
    """Per-layer gains of an intervention: g on its target layers, 1.0 elsewhere."""
    if intervention not in INTERVENTIONS:
        raise ConfigError(
            f"unknown intervention {intervention!r}; known: {', '.join(INTERVENTIONS)}"
        )
    if intervention in ("MLP_GLOBAL", "ATTN_GLOBAL"):
        return [float(gain)] * n_layers
    band = np.array_split(np.arange(n_layers), 3)[BANDS.index(intervention)]
    return [float(gain) if layer in band else 1.0 for layer in range(n_layers)]


def _scale(gain: float):
    def hook(_module: nn.Module, _inputs: tuple, output):
        if isinstance(output, tuple):
            return (output[0] * gain, *output[1:])
        return output * gain

    return hook


@contextmanager
def apply_gain(model: nn.Module, gain: float, intervention: str = "MLP_GLOBAL") -> Iterator[None]:
    """Scale every target module's output by its layer gain (1.0 too, so g=1 exercises the hooks)."""
    targets = attentions(model) if intervention == "ATTN_GLOBAL" else mlps(model)
    gains = layer_gains(intervention, gain, len(targets))
    handles = []
    try:
        for module, g in zip(targets, gains, strict=True):
            handles.append(module.register_forward_hook(_scale(g)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def mlp_output_at(
    model: nn.Module, layer: int, input_ids: torch.Tensor, gain: float
) -> torch.Tensor:
    """What layer `layer`'s MLP adds to the residual under MLP_GLOBAL gain `gain` (for checks)."""
    seen: list[torch.Tensor] = []
    with apply_gain(model, gain):
        # Registered after the gain hook, so it sees the scaled output.
        handle = mlps(model)[layer].register_forward_hook(lambda _m, _i, out: seen.append(out))
        try:
            model(input_ids=input_ids)
        finally:
            handle.remove()
    return seen[0]
