"""Stream spike values from a model: forward windows, standardise u per layer, v per spike definition."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from avalanche_llm.events.spike import spike_values
from avalanche_llm.events.standardize import standardize
from avalanche_llm.model.forward import LogitsSink, forward_windows
from avalanche_llm.model.loader import LoadedModel

# consumer(layer, {spike_def: v [b, T, d_ff]}, rows)
VConsumer = Callable[[int, dict[str, torch.Tensor], slice], None]


def stream_spike_values(
    lm: LoadedModel,
    windows: np.ndarray,
    *,
    batch_size: int,
    mu: np.ndarray,
    sigma: np.ndarray,
    eps: float,
    spike_defs: Sequence[str],
    gain: float,
    consumer: VConsumer,
    intervention: str = "MLP_GLOBAL",
    logits_sink: LogitsSink | None = None,
) -> None:
    """One forward pass over `windows` at `gain`, handing v of every spike definition to `consumer`.

    With `logits_sink` the LM head runs too and gets the logits of each batch (e.g. for NLL).
    """
    mu_t = torch.as_tensor(mu, dtype=torch.float32, device=lm.device)
    sigma_t = torch.as_tensor(sigma, dtype=torch.float32, device=lm.device)

    def on_u(layer: int, u: torch.Tensor, rows: slice) -> None:
        z = standardize(u, mu_t[layer], sigma_t[layer], eps)
        consumer(layer, {sd: spike_values(z, sd) for sd in spike_defs}, rows)

    forward_windows(
        lm,
        windows,
        batch_size,
        u_sink=on_u,
        logits_sink=logits_sink,
        gain=gain,
        intervention=intervention,
    )
