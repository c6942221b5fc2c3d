"""Rasters: A[n, l, t] = units of layer l spiking at token t (uint16), X = 1[A > 0] (uint8).

NPZ layout (CANON.ENUM.NPZ_KEY): `A`, `X` [C, N, L, T] (condition, sequence, layer, token),
`cond_id` [C], `seq_id` [N] (the windows' pool indices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from avalanche_llm.events.spike import spike_counts
from avalanche_llm.events.stream import Workspace, stream_spike_values
from avalanche_llm.model.forward import LogitsSink
from avalanche_llm.model.loader import LoadedModel
from labkit.errors import ConfigError

Key = tuple[str, str]  # (spike definition, rate key)


class RasterSink:
    """Stream consumer that counts spikes of every (spike definition, rate) into device tensors.

    Counts stay on the model's device for the whole pass and are copied to the host once, in
    `rasters()`: a per-layer copy would make the host wait for the device at every layer.
    """

    def __init__(
        self,
        n_windows: int,
        n_layers: int,
        seq_len: int,
        taus: Mapping[Key, np.ndarray],
        device: torch.device,
    ):
        self.order = list(taus)
        self.work = Workspace()
        self.keys = {
            sd: sorted(k for k in taus if k[0] == sd) for sd in sorted({k for k, _ in taus})
        }
        # taus_at[sd][layer] = that layer's thresholds, in the order of self.keys[sd]
        self.taus_at = {
            sd: np.stack([taus[k] for k in keys], axis=1).tolist() for sd, keys in self.keys.items()
        }
        self.counts = {
            sd: torch.zeros(
                (len(keys), n_windows, n_layers, seq_len), dtype=torch.int32, device=device
            )
            for sd, keys in self.keys.items()
        }

    def __call__(self, layer: int, vs: dict[str, torch.Tensor], rows: slice) -> None:
        """Count the units above tau_l at every site of this batch, for every rate at once."""
        for sd, counts in self.counts.items():
            scratch = self.work.get("compare", vs[sd])
            counts[:, rows, layer, :] = spike_counts(vs[sd], self.taus_at[sd][layer], scratch)

    def rasters(self) -> dict[Key, np.ndarray]:
        """The spike-count rasters [N, L, T] (uint16) by (spike definition, rate key), in `taus` order."""
        out = {}
        for sd, keys in self.keys.items():
            host = self.counts[sd].cpu().numpy().astype(np.uint16)
            out |= {key: host[k] for k, key in enumerate(keys)}
        return {key: out[key] for key in self.order}


def as_rasters(X: np.ndarray) -> np.ndarray:
    """One raster [L, T] or a stack [N, L, T] as [N, L, T]; any other shape is a config error."""
    arr = np.asarray(X)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ConfigError(f"raster must be [L, T] or [N, L, T], got shape {arr.shape}")
    return arr


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
    sink = RasterSink(windows.shape[0], lm.n_layers, windows.shape[1], taus, lm.device)
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
    return sink.rasters()


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
