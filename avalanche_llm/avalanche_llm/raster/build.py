"""Rasters: A[n, l, t] = units of layer l spiking at token t (uint16), X = 1[A > 0] (uint8).

NPZ layout (CANON.ENUM.NPZ_KEY): `A`, `X` [C, N, L, T] (condition, sequence, layer, token),
`cond_id` [C], `seq_id` [N] (the windows' pool indices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from avalanche_llm.events.spike import spike_counts
from avalanche_llm.events.stream import stream_spike_values
from avalanche_llm.model.forward import LogitsSink
from avalanche_llm.model.loader import LoadedModel
from labkit.errors import ConfigError

Key = tuple[str, str]  # (spike definition, rate key)


class RasterSink:
    """Stream consumer that fills one spike-count raster [N, L, T] per (spike definition, rate)."""

    def __init__(self, n_windows: int, n_layers: int, seq_len: int, taus: Mapping[Key, np.ndarray]):
        self.taus = taus
        self.A = {key: np.zeros((n_windows, n_layers, seq_len), np.uint16) for key in taus}

    def __call__(self, layer: int, vs: dict[str, torch.Tensor], rows: slice) -> None:
        """Count the units above tau_l at every site of this batch."""
        for (sd, rk), tau in self.taus.items():
            self.A[sd, rk][rows, layer, :] = spike_counts(vs[sd], float(tau[layer])).cpu().numpy()


def occupancy(A: np.ndarray) -> np.ndarray:
    """X = 1[A > 0] as uint8."""
    return (A > 0).astype(np.uint8)


def extract_rasters(
    lm: LoadedModel,
    windows: np.ndarray,
    taus: Mapping[Key, np.ndarray],
    *,
    batch_size: int,
    mu: np.ndarray,
    sigma: np.ndarray,
    eps: float,
    gain: float,
    intervention: str = "MLP_GLOBAL",
    logits_sink: LogitsSink | None = None,
) -> dict[Key, np.ndarray]:
    """One forward pass at `gain`: spike-count rasters [N, L, T] for every (spike definition, rate).

    `logits_sink(logits, rows)`, if given, receives each batch's logits from the same pass.
    """
    if lm.d_ff > np.iinfo(np.uint16).max:
        raise ConfigError(f"d_ff {lm.d_ff} does not fit uint16 spike counts")
    sink = RasterSink(windows.shape[0], lm.n_layers, windows.shape[1], taus)
    stream_spike_values(
        lm,
        windows,
        batch_size=batch_size,
        mu=mu,
        sigma=sigma,
        eps=eps,
        spike_defs=sorted({sd for sd, _ in taus}),
        gain=gain,
        consumer=sink,
        intervention=intervention,
        logits_sink=logits_sink,
    )
    return sink.A


def raster_arrays(
    rasters: Sequence[np.ndarray], cond_ids: Sequence[int], seq_ids: np.ndarray
) -> dict[str, np.ndarray]:
    """The NPZ arrays of stacked condition rasters [C, N, L, T]."""
    A = np.stack(rasters).astype(np.uint16)
    return {
        "X": occupancy(A),
        "A": A,
        "cond_id": np.asarray(cond_ids, dtype=np.int32),
        "seq_id": np.asarray(seq_ids, dtype=np.int64),
    }
