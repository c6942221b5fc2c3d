"""Susceptibility chi: the variance-to-mean ratio of per-sequence spike totals (design §6)."""

from __future__ import annotations

import numpy as np

from avalanche_llm.raster.build import as_rasters

CHI_EPS = 1e-8


def chi(A: np.ndarray, eps: float = CHI_EPS) -> float:
    """Susceptibility Var_n(Y_n) / (Mean_n(Y_n) + eps) of the per-sequence spike totals Y_n."""
    y = as_rasters(A).sum(axis=(1, 2), dtype=np.float64)
    return float(y.var() / (y.mean() + eps))
