"""Branching ratios b_time, b_depth, b_tot and their null contrasts on token x layer rasters (design §6).

Rasters are indexed [N, L, T] (sequence, layer, token), as one condition of the NPZ [C, N, L, T].
Every ratio is pooled over sequences: numerators and denominators are summed first, then divided.
"""

from __future__ import annotations

import numpy as np

from avalanche_llm.metrics.stats import pooled_ratio_ci
from avalanche_llm.raster.build import as_rasters
from labkit.errors import ConfigError

KINDS = ("time", "depth", "tot")


def branching_counts(X: np.ndarray) -> np.ndarray:
    """Per-sequence [N, 4] counts: time pairs, depth pairs, time+depth pairs, active sites."""
    x = as_rasters(X) > 0
    time = (x[:, :, 1:] & x[:, :, :-1]).sum(axis=(1, 2))
    depth = (x[:, 1:, :] & x[:, :-1, :]).sum(axis=(1, 2))
    active = x.sum(axis=(1, 2))
    return np.stack([time, depth, time + depth, active], axis=1).astype(np.int64)


def _pooled(counts: np.ndarray) -> dict[str, float]:
    total = counts.sum(axis=0)
    den = float(total[3])
    values = {
        f"b_{k}": (float(total[i]) / den if den else float("nan")) for i, k in enumerate(KINDS)
    }
    return {**values, "n_active": int(total[3])}


def branching(X: np.ndarray) -> dict[str, float]:
    """b_time, b_depth, b_tot pooled over sequences (NaN when no site is active) and n_active."""
    return _pooled(branching_counts(X))


def branching_with_nulls(
    X: np.ndarray,
    nulls: dict[str, np.ndarray],
    *,
    seed_of: dict[str, int],
    reps: int,
) -> dict[str, float]:
    """b_* with CIs, and per null b_*_<null>, delta_b_*_<null> (paired CIs) and b_tot/b_tot_<null>.

    `seed_of[tag]` seeds the bootstrap for tag "b" (the real rasters) and for every null name;
    real and null share sequence resamples, so the delta CI is paired.
    """
    real = branching_counts(X)
    row: dict[str, float] = dict(_pooled(real))
    for i, kind in enumerate(KINDS):
        lo, hi = pooled_ratio_ci(real[:, i], real[:, 3], seed=seed_of["b"], reps=reps)
        row[f"b_{kind}_lo"], row[f"b_{kind}_hi"] = lo, hi
    for name, Xn in nulls.items():
        null = branching_counts(Xn)
        if null.shape[0] != real.shape[0]:
            raise ConfigError(
                f"null {name!r} has {null.shape[0]} sequences, the real rasters {real.shape[0]}"
            )
        pooled = _pooled(null)
        for i, kind in enumerate(KINDS):
            b_null = pooled[f"b_{kind}"]
            row[f"b_{kind}_{name}"] = b_null
            row[f"delta_b_{kind}_{name}"] = row[f"b_{kind}"] - b_null
            lo, hi = pooled_ratio_ci(
                real[:, i], real[:, 3], null=(null[:, i], null[:, 3]), seed=seed_of[name], reps=reps
            )
            row[f"delta_b_{kind}_{name}_lo"], row[f"delta_b_{kind}_{name}_hi"] = lo, hi
        b_tot_null = pooled["b_tot"]
        row[f"ratio_b_tot_{name}"] = row["b_tot"] / b_tot_null if b_tot_null else float("nan")
    return row
