"""Is a candidate better than stock? Statistics on the paired per-block log ratios of ABBA blocks.

Every block holds one candidate and one stock trial run back to back, so the host's drift and load
hit both; the block's ln(candidate / stock) carries the stock side's own noise, which a comparison
against a stored baseline mean would ignore.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.stats

from dream.config import Tolerance
from labkit.stats import bootstrap_ci

MIN_BLOCKS = 3  # fewer valid blocks than this: no verdict (None), never "improved"
N_RESAMPLES = 9999


def log_ratio(x: float, stock: float, *, floor: float, max_abs: float) -> float:
    """ln(max(x, floor) / max(stock, floor)), clipped to [-max_abs, max_abs]: a bounded term."""
    value = math.log(max(x, floor) / max(stock, floor))
    return max(-max_abs, min(max_abs, value))


def paired_stats(
    pairs: Sequence[tuple[float, float]],
    *,
    floor: float,
    max_abs: float,
    seed: np.random.SeedSequence,
) -> dict[str, Any]:
    """Per-block log ratios, their mean as a ratio, a BCa CI of it and one-sided t-test p-values."""
    r = [log_ratio(a, b, floor=floor, max_abs=max_abs) for a, b in pairs]
    out: dict[str, Any] = {"n_blocks": len(r), "log_ratios": r, "floor": floor}
    if not r:
        return {**out, "ratio": None, "ratio_ci95": None, "ci_method": "none"}
    ci = bootstrap_ci(r, seed=seed, n_resamples=N_RESAMPLES)
    out["ratio"] = math.exp(float(np.mean(r)))
    out["ratio_ci95"] = None if ci.low is None else [math.exp(ci.low), math.exp(ci.high)]
    out["ci_method"] = ci.method
    if len(r) >= 2 and np.ptp(r) > 0:
        for side in ("greater", "less"):
            p = scipy.stats.ttest_1samp(r, 0.0, alternative=side).pvalue
            out[f"p_{side}"] = float(p) if math.isfinite(p) else None
    return out


def _upper_test(stats: Mapping[str, Any] | None, limit_pct: float) -> dict[str, Any]:
    ci = None if stats is None else stats.get("ratio_ci95")
    upper = None if ci is None else 100 * (ci[1] - 1)
    passes = None if upper is None else upper <= limit_pct
    rule = "paired ratio CI upper - 1 <= limit"
    return {"rule": rule, "upper_pct": upper, "limit_pct": limit_pct, "passes": passes}


def regime_tests(
    paired: Mapping[str, Mapping[str, Any] | None], tol: Tolerance, *, family: int = 1
) -> tuple[dict[str, Any], bool | None, bool | None]:
    """The regime's tests, whether perf gained significantly, and whether it is non-inferior.

    gain: one-sided paired t-test p < perf_alpha / family and the mean paired change >=
    perf_improvement_pct. `family` is how many regimes' gain tests can each make the candidate
    improve (its affected regimes): Bonferroni keeps the chance that any of them passes by
    noise at perf_alpha.
    non-inferior: perf ratio CI lower bound >= 1 - margin, and p95 (and watts where measured) CI
    upper bounds within their regression limits. None when there are too few valid blocks.
    """
    perf = paired.get("perf")
    n = 0 if perf is None else perf["n_blocks"]
    tests: dict[str, Any] = {}
    if perf is None or n < MIN_BLOCKS or perf["ratio_ci95"] is None:
        reason = f"needs >= {MIN_BLOCKS} valid ABBA blocks, has {n}"
        tests["perf_gain"] = {"passes": None, "reason": reason}
        tests["perf_noninferior"] = {"passes": None, "reason": reason}
    else:
        p = perf.get("p_greater")
        change = 100 * (perf["ratio"] - 1)
        alpha = tol.perf_alpha / family
        gain = None if p is None else p < alpha and change >= tol.perf_improvement_pct
        tests["perf_gain"] = {
            "rule": "paired one-sided t p < alpha / family and change >= min",
            "p_value": p,
            "alpha": tol.perf_alpha,
            "family": family,
            "alpha_adjusted": alpha,
            "change_pct": change,
            "min_change_pct": tol.perf_improvement_pct,
            "passes": gain,
        }
        lower = 100 * (perf["ratio_ci95"][0] - 1)
        tests["perf_noninferior"] = {
            "rule": "paired ratio CI lower - 1 >= -margin",
            "lower_pct": lower,
            "margin_pct": tol.noninferiority_margin_pct,
            "passes": lower >= -tol.noninferiority_margin_pct,
        }
    tests["p95_ms"] = _upper_test(paired.get("p95_ms"), tol.latency_regression_pct)
    if paired.get("watts") is not None:
        tests["watts"] = _upper_test(paired["watts"], tol.power_regression_pct)
    guards = [tests[k]["passes"] for k in tests if k != "perf_gain"]
    guard = False if False in guards else (None if None in guards else True)
    return tests, tests["perf_gain"]["passes"], guard


def improves_over_baseline(
    regimes: Sequence[tuple[bool, bool | None, bool | None]],
) -> bool | None:
    """(affected, gain, non-inferior) per regime -> does the candidate improve on stock?

    True: a significant paired gain on at least one regime a changed gene can affect, and
    non-inferior on every regime (unaffected ones are regression guards). False when a regime is
    inferior, when no regime is affected, or when no affected regime gained; None while undecided.
    """
    guards = [g for _, _, g in regimes]
    if False in guards:
        return False
    gains = [gain for affected, gain, _ in regimes if affected]
    if not regimes or not gains:
        return False if regimes else None
    if None in guards:
        return None
    if True in gains:
        return True
    return None if None in gains else False
