"""Crackling relation <S>(D) ~ D^gamma: OLS on log-log means, avalanche-resampling CI, and the
exponent prediction gamma_pred = (alpha_D - 1)/(alpha_S - 1) with a propagated CI (design §6)."""

from __future__ import annotations

import math

import numpy as np

D_RANGE = (3, 64)
MIN_POINTS = 8
CI_WIDTH_MAX = 0.5
Z95 = 1.959963984540054
# A CI needs at least this share of replicates with a defined gamma; fewer -> no CI, said so.
MIN_DEFINED_SHARE = 0.5


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


def gamma_prediction(
    alpha_s: float, sigma_s: float, alpha_d: float, sigma_d: float
) -> tuple[float, float, float]:
    """gamma_pred = (alpha_D - 1)/(alpha_S - 1) and its 95% CI by first-order error propagation."""
    if not (np.isfinite([alpha_s, alpha_d]).all() and alpha_s != 1.0):
        return math.nan, math.nan, math.nan
    pred = (alpha_d - 1.0) / (alpha_s - 1.0)
    se = math.hypot(sigma_d / (alpha_s - 1.0), (alpha_d - 1.0) * sigma_s / (alpha_s - 1.0) ** 2)
    return pred, pred - Z95 * se, pred + Z95 * se


def crackling(
    sizes: np.ndarray,
    durations: np.ndarray,
    *,
    seed: int,
    reps: int,
    alpha_s: float = math.nan,
    sigma_s: float = math.nan,
    alpha_d: float = math.nan,
    sigma_d: float = math.nan,
    d_range: tuple[int, int] = D_RANGE,
    min_points: int = MIN_POINTS,
    ci_width_max: float = CI_WIDTH_MAX,
) -> dict[str, float | bool]:
    """gamma with its 95% CI over avalanche resamples, how many replicates defined a gamma, r2,
    gamma_pred with its CI, and pass: the CI is at most `ci_width_max` wide AND overlaps
    gamma_pred's CI (without exponents there is no prediction and no pass)."""
    s = np.asarray(sizes, dtype=np.float64)
    dur = np.asarray(durations, dtype=np.int64)
    d, mean_s = _mean_size_by_duration(s, dur, d_range)
    pred, pred_lo, pred_hi = gamma_prediction(alpha_s, sigma_s, alpha_d, sigma_d)
    out: dict[str, float | bool] = {
        "gamma": math.nan,
        "gamma_lo": math.nan,
        "gamma_hi": math.nan,
        "r2": math.nan,
        "n_duration_points": int(d.size),
        "n_reps": reps,
        "n_reps_defined": 0,
        "gamma_pred": pred,
        "gamma_pred_lo": pred_lo,
        "gamma_pred_hi": pred_hi,
        "pass": False,
    }
    if d.size < min_points:
        return out
    out["gamma"], out["r2"] = _ols(np.log(d), np.log(mean_s))
    # Replicates with too few duration points are counted and left out, never allowed to turn
    # the whole interval into NaN.
    idx = np.random.default_rng(seed).integers(0, s.size, size=(reps, s.size))
    reps_gamma = np.array([_gamma(s[r], dur[r], d_range, min_points) for r in idx])
    defined = reps_gamma[np.isfinite(reps_gamma)]
    out["n_reps_defined"] = int(defined.size)
    if defined.size < MIN_DEFINED_SHARE * reps or defined.size == 0:
        return out
    out["gamma_lo"], out["gamma_hi"] = (float(q) for q in np.percentile(defined, [2.5, 97.5]))
    width = out["gamma_hi"] - out["gamma_lo"]
    overlap = out["gamma_lo"] <= pred_hi and pred_lo <= out["gamma_hi"]
    out["pass"] = bool(width <= ci_width_max and overlap)
    return out
