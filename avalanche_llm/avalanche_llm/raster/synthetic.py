"""Synthetic rasters with a known answer: rate-matched iid noise and a lattice branching process.

Both have the [N, L, T] layout of a real raster, so the phase-5 analysis runs on them unchanged.
"""

from __future__ import annotations

import numpy as np

from avalanche_llm.raster.build import as_rasters

# Offspring of an event at (layer l, token t) land at token t+1 in layers l-1, l, l+1 (reflected
# at the first and last layer), so cascades spread over both axes of the lattice.
_SPREAD = 3


def iid_like(A: np.ndarray, seed: int) -> np.ndarray:
    """Poisson counts of A's shape with each layer's observed mean count: rate kept, structure gone."""
    counts = as_rasters(A).astype(np.float64)
    lam = counts.mean(axis=(0, 2), keepdims=True)
    rng = np.random.default_rng(seed)
    return rng.poisson(np.broadcast_to(lam, counts.shape)).astype(np.uint16)


def branching_raster(m: float, shape: tuple[int, int, int], lam: float, seed: int) -> np.ndarray:
    """Counts [N, L, T] of a driven branching process with branching ratio m and mean count lam.

    Each event has Poisson(m) offspring at the next token; a Poisson drive of lam*(1-m) per site
    keeps the mean count at lam when m < 1 (m = 1 starts at lam and drifts as a martingale).
    The first token is drawn at the stationary mean lam.
    """
    n, n_layers, n_tokens = shape
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, dtype=np.int64)
    out[:, :, 0] = rng.poisson(lam, size=(n, n_layers))
    drive = lam * (1.0 - m)
    for t in range(1, n_tokens):
        kids = rng.poisson(m * out[:, :, t - 1])
        stay = rng.binomial(kids, 1.0 / _SPREAD)
        up = rng.binomial(kids - stay, 0.5)
        down = kids - stay - up
        nxt = stay.copy()
        nxt[:, 1:] += up[:, :-1]
        nxt[:, -1] += up[:, -1]
        nxt[:, :-1] += down[:, 1:]
        nxt[:, 0] += down[:, 0]
        out[:, :, t] = nxt + rng.poisson(drive, size=(n, n_layers))
    return np.minimum(out, np.iinfo(np.uint16).max).astype(np.uint16)
