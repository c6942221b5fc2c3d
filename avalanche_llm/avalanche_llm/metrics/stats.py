"""Sequence-resampling bootstrap CIs (percentile, 95%) over `labkit.stats`, seeded per design §6."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import scipy.stats

from labkit.stats import bootstrap_ci

BOOTSTRAP_SEED = 1337


def ci_seed(run_id: str, cond_id: int | str, tag: str, base: int = BOOTSTRAP_SEED) -> int:
    """Seed from sha256("base|run_id|cond_id|tag"), so every CI is reproducible from its names."""
    digest = hashlib.sha256(f"{base}|{run_id}|{cond_id}|{tag}".encode()).hexdigest()
    return int(digest[:16], 16)


def _nan_pair(lo: float | None, hi: float | None) -> tuple[float, float]:
    return (float("nan") if lo is None else lo, float("nan") if hi is None else hi)


def resample_ci(
    n: int, statistic: Callable[[np.ndarray], np.ndarray], *, seed: int, reps: int
) -> tuple[float, float]:
    """Percentile 95% CI of `statistic(idx)` where idx resamples range(n) (shape [..., n])."""

    # Resampling positions lets one resample drive several paired per-sequence arrays at once.
    def stat(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(np.moveaxis(idx, axis, -1).astype(np.int64))

    res = bootstrap_ci(
        np.arange(n, dtype=float),
        seed=seed,
        statistic=stat,
        method="percentile",
        n_resamples=reps,
        expand=False,
    )
    return _nan_pair(res.low, res.high)


def pooled_ratio_ci(
    num: np.ndarray,
    den: np.ndarray,
    *,
    seed: int,
    reps: int,
    null: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, float]:
    """CI of sum(num)/sum(den) over resampled sequences, or of its paired difference to `null`."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)

    def ratio(n_: np.ndarray, d_: np.ndarray, idx: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return n_[idx].sum(axis=-1) / d_[idx].sum(axis=-1)

    if null is None:
        return resample_ci(num.size, lambda idx: ratio(num, den, idx), seed=seed, reps=reps)
    nn, nd = (np.asarray(a, dtype=np.float64) for a in null)
    return resample_ci(
        num.size, lambda idx: ratio(num, den, idx) - ratio(nn, nd, idx), seed=seed, reps=reps
    )


def mean_ci(values: np.ndarray, *, seed: int, reps: int) -> tuple[float, float]:
    """Percentile 95% CI of the mean of per-item values."""
    res = bootstrap_ci(
        np.asarray(values, dtype=float),
        seed=seed,
        method="percentile",
        n_resamples=reps,
        expand=False,
    )
    return _nan_pair(res.low, res.high)


def paired_difference_ci(
    before: np.ndarray,
    after: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    seed: int,
    reps: int,
) -> tuple[float, float]:
    """CI of statistic(after) - statistic(before) over items resampled jointly (paired).

    `statistic` maps per-item values [..., n] to one number per leading index.
    """
    a, b = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    return resample_ci(
        a.size, lambda idx: statistic(b[idx]) - statistic(a[idx]), seed=seed, reps=reps
    )


def mcnemar_exact_p(correct_before: np.ndarray, correct_after: np.ndarray) -> float:
    """Exact McNemar p-value: a two-sided binomial test on the discordant pairs (1.0 without any)."""
    a = np.asarray(correct_before, dtype=bool)
    b = np.asarray(correct_after, dtype=bool)
    gained, lost = int((~a & b).sum()), int((a & ~b).sum())
    if gained + lost == 0:
        return 1.0
    return float(scipy.stats.binomtest(gained, gained + lost, 0.5).pvalue)
