"""Caps and the composite score: every KPI as its paired ratio to stock before the weights apply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dream.candidate_pack import RegimeResult
from dream.runner import TrialOutcome

# score_v2 = n_perf - 0.2 n_p95_ms - 0.1 n_watts over paired ratios to stock (each in [e^-2, e^2]):
# stock scores 0.7 (0.8 where watts is not measurable).
WEIGHTS = {"perf": 1.0, "p95_ms": -0.2, "watts": -0.1}
MEAN_KPIS = ("perf", "p95_ms", "watts", "temp_peak_c", "errors", "oom")


@dataclass
class CapVerdict:
    """The safety verdict over every regime of one candidate."""

    caps: dict[str, float]
    violations: list[dict[str, Any]] = field(default_factory=list)
    caps_unchecked: list[dict[str, str]] = field(default_factory=list)
    trial_failures: dict[str, int] = field(default_factory=dict)
    max_trial_failures: int = 0
    unsafe_reasons: list[str] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        """No cap exceeded and no regime with too many failed trials."""
        return not self.unsafe_reasons

    def to_dict(self) -> dict[str, Any]:
        """The pack's risk_profile."""
        return {
            "caps": self.caps,
            "violations": self.violations,
            "caps_unchecked": self.caps_unchecked,
            "trial_failures": self.trial_failures,
            "max_trial_failures": self.max_trial_failures,
            "unsafe_reasons": self.unsafe_reasons,
        }


def check_caps(
    caps: Mapping[str, float],
    outcomes: Mapping[str, Sequence[TrialOutcome]],
    *,
    max_trial_failures: int,
) -> CapVerdict:
    """A cap is violated when any trial, failed ones included, exceeds it; unmeasured caps are listed."""
    verdict = CapVerdict(dict(caps), max_trial_failures=max_trial_failures)
    every = [o for runs in outcomes.values() for o in runs]
    ok = [o for o in every if o.ok]
    for name, limit in caps.items():
        values = [o.metrics.get(name) for o in every]
        seen = [v for v in values if v is not None]
        if not seen:
            reasons = [o.reasons.get(name) for o in ok if o.reasons.get(name)]
            why = reasons[0] if reasons else "no successful trial to read it from"
            verdict.caps_unchecked.append({"cap": name, "reason": why})
            continue
        over = [v for v in seen if v > limit]
        if over:
            verdict.violations.append(
                {"cap": name, "limit": limit, "worst": max(over), "count": len(over)}
            )
            verdict.unsafe_reasons.append(f"{name} {max(over):g} > cap {limit:g}")
    for regime, runs in outcomes.items():
        failed = sum(not o.ok for o in runs)
        verdict.trial_failures[regime] = failed
        if failed > max_trial_failures:
            verdict.unsafe_reasons.append(
                f"{regime}: {failed} failed trials > max_trial_failures {max_trial_failures}"
            )
    return verdict


def _mean(values: Sequence[float] | None) -> float | None:
    return None if not values else float(np.mean(values))


def score_v2(normalised: Mapping[str, float | None]) -> tuple[float, list[str]]:
    """Weighted sum of the normalised KPIs that were measured, and the terms it used."""
    terms = [k for k in WEIGHTS if normalised.get(k) is not None]
    if "perf" not in terms:
        raise ValueError("score_v2 needs a normalised perf")
    return float(sum(WEIGHTS[k] * normalised[k] for k in terms)), terms


def aggregate(
    regimes: Sequence[RegimeResult],
    verdict: CapVerdict,
    *,
    min_successful_trials: int,
    improves: bool | None,
) -> dict[str, Any]:
    """Means, normalised means (x / baseline per regime, then averaged), score_v2 and its status."""
    means: dict[str, dict[str, float | None]] = {}
    norm: dict[str, dict[str, float | None]] = {}
    for k in MEAN_KPIS:
        means[k] = {r.regime: _mean(r.kpis.get(k)) for r in regimes}
        means[k]["overall"] = _mean([v for v in means[k].values() if v is not None])
    for k in WEIGHTS:
        # The paired ratio: exp(mean per-block ln(candidate / stock)), floored and clipped, so
        # every term is bounded (regimes.yaml kpis.log_ratio).
        ratios = {r.regime: (r.paired.get(k) or {}).get("ratio") for r in regimes}
        # A term counts only when it is measured in every regime: a partial mean is not comparable.
        full = all(v is not None for v in ratios.values())
        ratios["overall"] = _mean(list(ratios.values())) if full else None
        norm[k] = ratios
    if not verdict.safe:
        status = "unsafe"
    elif (
        any(r.blocks_valid < min_successful_trials for r in regimes)
        or norm["perf"]["overall"] is None
    ):
        status = "insufficient"
    else:
        status = "ok"
    score, terms = (None, [k for k in WEIGHTS if norm[k]["overall"] is not None])
    if status == "ok":
        score, terms = score_v2({k: v["overall"] for k, v in norm.items()})
    return {
        "means": means,
        "normalised": norm,
        "score_v2": score,
        "score_terms": terms,
        "score_status": status,
        "improves_over_baseline": improves,
    }
