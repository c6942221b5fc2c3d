"""Is a candidate better than the stock baseline? One-sided Welch for perf, CI bounds for latency and power."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.stats

from dream.config import Tolerance

MIN_N = 3  # fewer successful trials than this on either side: no verdict (None), never "improved"


def welch_greater(x: Sequence[float], baseline: Sequence[float]) -> float | None:
    """p-value of Welch's one-sided t-test that mean(x) > mean(baseline) (None when undefined)."""
    if len(x) < 2 or len(baseline) < 2:
        return None
    p = scipy.stats.ttest_ind(
        np.asarray(x, float), np.asarray(baseline, float), equal_var=False, alternative="greater"
    ).pvalue
    return float(p) if math.isfinite(p) else None


def _bound_test(ci: Sequence[float] | None, limit: float) -> dict[str, Any]:
    upper = None if ci is None else float(ci[1])
    passes = None if upper is None else upper <= limit
    return {"rule": "delta_pct CI upper <= limit", "upper": upper, "limit": limit, "passes": passes}


def regime_tests(
    kpis: Mapping[str, Sequence[float] | None],
    baseline_samples: Mapping[str, Sequence[float] | None] | None,
    delta_pct: Mapping[str, float | None],
    delta_pct_ci95: Mapping[str, Sequence[float] | None],
    tol: Tolerance,
) -> tuple[dict[str, Any], bool | None]:
    """The per-regime tests and whether the regime passes them all (None: not decidable)."""
    perf, base = kpis.get("perf"), (baseline_samples or {}).get("perf")
    if perf is None or base is None or len(perf) < MIN_N or len(base) < MIN_N:
        n_b = 0 if base is None else len(base)
        tests: dict[str, Any] = {
            "perf": {
                "rule": "welch one-sided p < alpha and delta_pct >= min",
                "passes": None,
                "reason": f"needs >= {MIN_N} trials on both sides (candidate "
                f"{0 if perf is None else len(perf)}, baseline {n_b})",
            }
        }
    else:
        p = welch_greater(perf, base)
        dp = delta_pct.get("perf")
        passes = (
            None
            if p is None or dp is None
            else (p < tol.perf_alpha and dp >= tol.perf_improvement_pct)
        )
        tests = {
            "perf": {
                "rule": "welch one-sided p < alpha and delta_pct >= min",
                "p_value": p,
                "alpha": tol.perf_alpha,
                "delta_pct": dp,
                "min_delta_pct": tol.perf_improvement_pct,
                "passes": passes,
            }
        }
    tests["p95_ms"] = _bound_test(delta_pct_ci95.get("p95_ms"), tol.latency_regression_pct)
    if kpis.get("watts") is not None:
        tests["watts"] = _bound_test(delta_pct_ci95.get("watts"), tol.power_regression_pct)
    verdicts = [t["passes"] for t in tests.values()]
    return tests, (None if None in verdicts else all(verdicts))


def improves_over_baseline(regime_verdicts: Sequence[bool | None]) -> bool | None:
    """True only when every regime passes; False when one fails; None while any is undecidable."""
    if any(v is False for v in regime_verdicts):
        return False
    if not regime_verdicts or None in regime_verdicts:
        return None
    return True
