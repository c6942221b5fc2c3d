"""Bootstrap confidence intervals (scipy BCa, seeded) that stay finite on degenerate data."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
import scipy.stats

from labkit.errors import ConfigError

Seed = int | np.random.SeedSequence | np.random.Generator

# Resampled data is materialised batch x n; this bounds it to ~64 MB of float64 for any n.
_MAX_BATCH_ELEMENTS = 8_000_000


@dataclass(frozen=True)
class CIResult:
    """A point estimate with its bootstrap interval; `low`/`high` are None when none exists."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    confidence: float
    method: str  # what produced low/high: "BCa", "percentile", "basic", "constant" or "none"
    n_resamples: int
    bootstrap_level: (
        float | None
    )  # level handed to scipy (> confidence when expanded); None if unused
    degenerate: bool = False
    reason: str | None = None  # why the interval is missing, exact, or not the method asked for

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a strict-JSON-able dict."""
        return asdict(self)


def _as_sample(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ConfigError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ConfigError(f"{what} contains NaN or infinite values")
    return arr


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def expanded_level(confidence: float, n: int) -> float:
    """Two-sided level whose normal quantile is sqrt(n/(n-1)) times the t(n-1) quantile of `confidence`."""
    z = math.sqrt(n / (n - 1)) * scipy.stats.t.ppf((1 + confidence) / 2, n - 1)
    return float(2 * scipy.stats.norm.cdf(z) - 1)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    seed: Seed,
    statistic: Callable[..., Any] = np.mean,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    method: str = "BCa",
    expand: bool = True,
) -> CIResult:
    """Bootstrap CI of `statistic(values)` with a private seeded Generator; never returns NaN.

    With `expand`, the level handed to scipy is widened for small n so the interval has the width
    of a t interval (Hesterberg 2015, "expanded" bootstrap); without it a 95% interval holds the
    mean of n=10 normal draws only ~89% of the time. The widening vanishes as n grows.
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}")
    if method not in ("BCa", "percentile", "basic"):
        raise ConfigError(f"method must be 'BCa', 'percentile' or 'basic', got {method!r}")
    data = _as_sample(values, "values")
    result = partial(
        CIResult,
        n=int(data.size),
        confidence=confidence,
        n_resamples=n_resamples,
        bootstrap_level=None,
    )
    if data.size == 0:
        return result(None, None, None, method="none", degenerate=True, reason="no values")
    value = _finite(statistic(data))
    if data.size < 2:
        return result(
            value, None, None, method="none", degenerate=True, reason="fewer than 2 values"
        )
    if np.all(data == data[0]):
        return result(
            value, value, value, method="constant", degenerate=True, reason="all values equal"
        )
    level = expanded_level(confidence, data.size) if expand else confidence
    result = partial(result, bootstrap_level=level)
    rng = np.random.default_rng(seed)
    kwargs = {"confidence_level": level, "batch": max(1, _MAX_BATCH_ELEMENTS // data.size)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = scipy.stats.bootstrap(
            (data,), statistic, n_resamples=n_resamples, method=method, rng=rng, **kwargs
        )
        low, high = _finite(res.confidence_interval.low), _finite(res.confidence_interval.high)
        if low is not None and high is not None:
            return result(value, low, high, method=method)
        # BCa's bias or acceleration term is undefined when (almost) every resample gives the same
        # statistic; the percentile interval of the very same resamples is still meaningful.
        ci = scipy.stats.bootstrap(
            (data,), statistic, n_resamples=0, method="percentile", bootstrap_result=res, **kwargs
        ).confidence_interval
    warned = [w for w in caught if issubclass(w.category, scipy.stats.DegenerateDataWarning)]
    why = f"{method} failed: " + (
        str(warned[0].message).split(".")[0] if warned else "non-finite bound"
    )
    low, high = _finite(ci.low), _finite(ci.high)
    if low is None or high is None:
        return result(
            value, None, None, method="none", degenerate=True, reason=f"{why}; percentile too"
        )
    return result(
        value,
        low,
        high,
        method="percentile",
        degenerate=True,
        reason=f"{why}; fell back to percentile",
    )


def paired_delta_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    seed: Seed,
    statistic: Callable[..., Any] = np.mean,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    method: str = "BCa",
    expand: bool = True,
) -> CIResult:
    """Bootstrap CI of `statistic` over the per-item differences `b - a`."""
    a_arr, b_arr = _as_sample(a, "a"), _as_sample(b, "b")
    if a_arr.size != b_arr.size:
        raise ConfigError(
            f"paired samples differ in length: a has {a_arr.size}, b has {b_arr.size}"
        )
    return bootstrap_ci(
        b_arr - a_arr,
        seed=seed,
        statistic=statistic,
        confidence=confidence,
        n_resamples=n_resamples,
        method=method,
        expand=expand,
    )
