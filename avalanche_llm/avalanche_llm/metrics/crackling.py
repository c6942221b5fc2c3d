"""Crackling relation <S>(D) ~ D^gamma: OLS on log-log means, avalanche-resampling CI (design §6)."""

from __future__ import annotations

import math

import numpy as np

from avalanche_llm.metrics.stats import resample_ci

D_RANGE = (3, 64)
MIN_POINTS = 8
CI_WIDTH_MAX = 0.5


def _mean_size_by_duration(
    sizes: np.ndarray, durations: np.ndarray, d_range: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    keep = (durations >= d_range[0]) & (durations <= d_range[1])
    d, s = durations[keep], sizes[keep]
    count = np.bincount(d, minlength=d_range[1] + 1)
    total = np.bincount(d, weights=s, minlength=d_range[1] + 1)
    present = np.flatnonzero(count)
    return present.astype(float), total[present] / count[present]


def _ols(log_d: np.ndarray, log_s: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(log_d, log_s, 1)
    resid = log_s - (slope * log_d + intercept)
    ss_tot = float(((log_s - log_s.mean()) ** 2).sum())
    return float(slope), (1.0 - float((resid**2).sum()) / ss_tot) if ss_tot else math.nan


def _gamma(
    sizes: np.ndarray, durations: np.ndarray, d_range: tuple[int, int], min_points: int
) -> float:
    d, s = _mean_size_by_duration(sizes, durations, d_range)
    return _ols(np.log(d), np.log(s))[0] if d.size >= min_points else math.nan


def crackling(
    sizes: np.ndarray,
    durations: np.ndarray,
    *,
    seed: int,
    reps: int,
    tau_s: float = math.nan,
    tau_d: float = math.nan,
    d_range: tuple[int, int] = D_RANGE,
    min_points: int = MIN_POINTS,
    ci_width_max: float = CI_WIDTH_MAX,
) -> dict[str, float | bool]:
    """gamma, its 95% CI, r2, n_duration_points, pass (CI width <= max) and the exponent prediction."""
    s = np.asarray(sizes, dtype=np.float64)
    dur = np.asarray(durations, dtype=np.int64)
    d, mean_s = _mean_size_by_duration(s, dur, d_range)
    out: dict[str, float | bool] = {
        "gamma": math.nan,
        "gamma_lo": math.nan,
        "gamma_hi": math.nan,
        "r2": math.nan,
        "n_duration_points": int(d.size),
        "gamma_pred": (tau_d - 1.0) / (tau_s - 1.0) if tau_s != 1.0 else math.nan,
        "pass": False,
    }
    if d.size < min_points:
        return out
    out["gamma"], out["r2"] = _ols(np.log(d), np.log(mean_s))

    def stat(idx: np.ndarray) -> np.ndarray:
        rows = idx.reshape(-1, idx.shape[-1])
        vals = [_gamma(s[r], dur[r], d_range, min_points) for r in rows]
        return np.asarray(vals).reshape(idx.shape[:-1])

    out["gamma_lo"], out["gamma_hi"] = resample_ci(s.size, stat, seed=seed, reps=reps)
    width = out["gamma_hi"] - out["gamma_lo"]
    out["pass"] = bool(np.isfinite(width) and width <= ci_width_max)
    return out
