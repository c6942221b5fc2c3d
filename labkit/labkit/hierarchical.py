"""Two-level (hierarchical) bootstrap CI of a grand mean: resample groups, then values within them.

For nested data, e.g. evaluation episodes within training seeds, a one-level bootstrap over the
pooled values treats every episode as independent and ignores the between-seed variation; one over
group means holds the episodes fixed. Resampling both levels covers both sources of variation.
When every group holds the same items in the same order (a crossed design: each training seed plays
the same episode seeds), `crossed=True` draws one set of item indices per resample and applies it to
every drawn group, so the items' shared effect is resampled as one effect, not averaged away.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labkit.errors import ConfigError
from labkit.stats import CIResult, Seed


def _groups(groups: Sequence[Sequence[float] | np.ndarray]) -> list[np.ndarray]:
    arrays = [np.asarray(g, dtype=float) for g in groups]
    for i, g in enumerate(arrays):
        if g.ndim != 1 or g.size == 0:
            raise ConfigError(f"group {i} must be a non-empty one-dimensional sample")
        if not np.isfinite(g).all():
            raise ConfigError(f"group {i} contains NaN or infinite values")
    return arrays


def hierarchical_bootstrap_ci(
    groups: Sequence[Sequence[float] | np.ndarray],
    *,
    seed: Seed,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    crossed: bool = False,
) -> CIResult:
    """Percentile CI of the mean of group means, resampling groups and then values within each.

    Each resample draws len(groups) groups with replacement and, for every drawn group, its values
    with replacement; the statistic is the mean of the drawn groups' means (each group weighs the
    same). One group reduces to an ordinary percentile bootstrap of its values. With `crossed`,
    the groups must have equal sizes, their i-th values belonging to the same item.
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}")
    arrays = _groups(groups)
    if crossed and len({g.size for g in arrays}) > 1:
        raise ConfigError("crossed groups need equal sizes (the same items in every group)")
    n_values = sum(g.size for g in arrays)
    base = {
        "n": len(arrays),
        "confidence": confidence,
        "n_resamples": n_resamples,
        "bootstrap_level": None,
    }
    if not arrays:
        return CIResult(
            None, None, None, method="none", degenerate=True, reason="no groups", **base
        )
    value = float(np.mean([g.mean() for g in arrays]))
    if n_values < 2:
        return CIResult(
            value, None, None, method="none", degenerate=True, reason="fewer than 2 values", **base
        )
    pooled = np.concatenate(arrays)
    if np.all(pooled == pooled[0]):
        return CIResult(
            value,
            value,
            value,
            method="constant",
            degenerate=True,
            reason="all values equal",
            **base,
        )
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(arrays), size=(n_resamples, len(arrays)))
    if crossed:
        table = np.stack(arrays)
        items = rng.integers(0, table.shape[1], size=(n_resamples, table.shape[1]))
        stats = table[picks[:, :, None], items[:, None, :]].mean(axis=(1, 2))
    else:
        means = np.empty(picks.shape)
        for i, g in enumerate(arrays):
            where = picks == i
            count = int(where.sum())
            if count:
                means[where] = g[rng.integers(0, g.size, size=(count, g.size))].mean(axis=1)
        stats = means.mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return CIResult(
        value,
        float(low),
        float(high),
        method="hierarchical percentile",
        **base | {"bootstrap_level": confidence},
    )
