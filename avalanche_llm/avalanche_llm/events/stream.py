"""Stream spike values from a model: forward windows, standardise u per layer, v per spike definition."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from avalanche_llm.events.spike import spike_values
from avalanche_llm.events.standardize import standardize
from avalanche_llm.model.forward import LogitsSink, forward_windows
from avalanche_llm.model.loader import LoadedModel

# consumer(layer, {spike_def: v [b, T, d_ff]}, rows); v lives in buffers reused by the next call,
# so a consumer copies what it keeps.
VConsumer = Callable[[int, dict[str, torch.Tensor], slice], None]


class Workspace:
    """Float32 buffers reused across layers and batches of a pass, one per name.

    A fresh host allocation of an activation-sized tensor is page-faulted in at every use, which on
    CPU cost more than the arithmetic written into it.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """The buffer `name` with the shape and device of `like` (reallocated if those change)."""
        buf = self.buffers.get(name)
        if buf is None or buf.shape != like.shape or buf.device != like.device:
            buf = self.buffers[name] = torch.empty(
                like.shape, dtype=torch.float32, device=like.device
            )
        return buf


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

    work = Workspace()

    def on_u(layer: int, u: torch.Tensor, rows: slice) -> None:
        z = standardize(u, mu_t[layer], sigma_t[layer], eps, out=work.get("z", u))
        consumer(layer, {sd: spike_values(z, sd, out=work.get(sd, u)) for sd in spike_defs}, rows)

    forward_windows(
        lm,
        windows,
        batch_size,
        u_sink=on_u,
        logits_sink=logits_sink,
        gain=gain,
        intervention=intervention,
    )
