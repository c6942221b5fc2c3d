"""An exponential-moving-average observation normaliser (decay 0.99), saved with the policy."""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-8
CLIP = 10.0


class EmaNormaliser:
    """Tracks per-feature mean and variance with EMA decay `decay`; the first batch sets them."""

    def __init__(self, dim: int, decay: float = 0.99):
        self.decay = decay
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = 0

    def update(self, batch: np.ndarray) -> None:
        """Fold in a batch [N, dim] of raw observations."""
        batch = np.asarray(batch, dtype=np.float64).reshape(-1, self.mean.size)
        mean, var = batch.mean(0), batch.var(0)
        if self.count == 0:
            self.mean, self.var = mean, var
        else:
            d = self.decay
            # The batch variance around the old mean keeps a shift in the mean visible as spread.
            self.var = d * self.var + (1 - d) * (var + (mean - self.mean) ** 2)
            self.mean = d * self.mean + (1 - d) * mean
        self.count += batch.shape[0]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Normalised float32 observations, clipped to ±10."""
        z = (np.asarray(obs, dtype=np.float64) - self.mean) / np.sqrt(self.var + EPS)
        return np.clip(z, -CLIP, CLIP).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Mean, variance, count and decay."""
        return {
            "mean": self.mean.tolist(),
            "var": self.var.tolist(),
            "count": self.count,
            "decay": self.decay,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`."""
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.var = np.asarray(state["var"], dtype=np.float64)
        self.count = state["count"]
        self.decay = state["decay"]
