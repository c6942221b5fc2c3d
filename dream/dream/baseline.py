"""Stock-genome baselines per (domain, regime): measured, pinned by hashes, refreshed, checked for drift."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from dream.config import REGIMES
from dream.evaluator import EvalContext, measure_regime, preflight, summarise_regime
from dream.host import host_fingerprint, sha256_text
from labkit.atomic import atomic_write_json
from labkit.config import validate
from labkit.errors import LabkitError, SchemaError

BASELINES_SCHEMA = "baselines.v2"
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "baselines.v2.schema.json"


class BaselineError(LabkitError):
    """The stock genome could not be measured: nothing can be compared against it."""


def baseline_hashes(ctx: EvalContext, domain: str, regime: str) -> dict[str, str]:
    """What a baseline is only valid for: this code, this host, this regime definition."""
    host = json.dumps(host_fingerprint(), sort_keys=True)
    return {
        "code": ctx.code_sha256,
        "host": sha256_text(host),
        "regime": ctx.cfg.regime_hash(domain, regime),
    }


class BaselineStore:
    """`artifacts/baselines.json`: `{"schema": "baselines.v2", domain: {regime: record}}`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = {"schema": BASELINES_SCHEMA}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise SchemaError(f"{self.path}: not valid JSON: {exc}") from None
            validate(self.data, json.loads(SCHEMA_FILE.read_text()), what=str(self.path))

    def get(self, domain: str, regime: str) -> dict[str, Any] | None:
        """The stored record of (domain, regime), current or not."""
        return self.data.get(domain, {}).get(regime)

    def current(self, domain: str, regime: str, hashes: Mapping[str, str]) -> dict[str, Any] | None:
        """The stored record if its code, host and regime hashes still match, else None."""
        record = self.get(domain, regime)
        return record if record is not None and record["hashes"] == dict(hashes) else None

    def put(self, record: Mapping[str, Any]) -> None:
        """Store (replace) a record and write the file atomically."""
        self.data.setdefault(record["domain"], {})[record["regime"]] = dict(record)
        validate(self.data, json.loads(SCHEMA_FILE.read_text()), what=str(self.path))
        atomic_write_json(self.path, self.data)


def measure_baseline(ctx: EvalContext, domain: str, regime: str) -> dict[str, Any]:
    """Run the stock genome (never a candidate) under the profile's execution policy and summarise it."""
    stock = ctx.spec(domain).stock()
    preflight(ctx, domain, [regime], stock)
    series = measure_regime(ctx, domain, regime, stock, ctx.cfg.policy)
    result = summarise_regime(ctx, domain, regime, series, None, {})
    need = ctx.cfg.policy.min_successful_trials
    if result.trials_ok < need:
        first = result.failed_trials[0]["reason"] if result.failed_trials else series.stop_reason
        raise BaselineError(
            f"stock baseline {domain}/{regime}: {result.trials_ok} of {result.trials} trials "
            f"succeeded, {need} needed; first failure: {first}"
        )
    now = datetime.now(UTC)
    return {
        "baseline_id": f"{domain}_{regime}_{now.strftime('%Y-%m-%dT%H-%M-%S')}",
        "domain": domain,
        "regime": regime,
        "profile": ctx.cfg.profile,
        "genome": stock,
        "kpis": {k: None if v is None else float(np.mean(v)) for k, v in result.kpis.items()},
        "samples": result.kpis,
        "ci95": result.ci95,
        "trials": result.trials,
        "trials_ok": result.trials_ok,
        "failed_trials": result.failed_trials,
        "unavailable": result.unavailable,
        "hashes": baseline_hashes(ctx, domain, regime),
        "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def ensure_baselines(
    ctx: EvalContext,
    store: BaselineStore,
    domain: str,
    *,
    regimes: Iterable[str] = REGIMES,
    refresh: bool = False,
) -> dict[str, dict[str, Any]]:
    """Current baselines of a domain's regimes, measuring the missing, stale or refreshed ones."""
    out = {}
    for regime in regimes:
        record = (
            None if refresh else store.current(domain, regime, baseline_hashes(ctx, domain, regime))
        )
        if record is None:
            record = measure_baseline(ctx, domain, regime)
            store.put(record)
        out[regime] = record
    return out


def detect_drift(
    record: Mapping[str, Any],
    samples: list[float],
    *,
    alpha: float = 0.01,
    min_change_pct: float = 5.0,
) -> dict[str, Any]:
    """Has stock perf moved since the baseline? Welch two-sided p < alpha and |change| > min_change_pct."""
    base = record["samples"].get("perf")
    if not base or len(base) < 2 or len(samples) < 2:
        return {"drift": None, "reason": "needs >= 2 perf samples on both sides"}
    p = float(scipy.stats.ttest_ind(samples, base, equal_var=False).pvalue)
    change = 100 * (float(np.mean(samples)) / float(np.mean(base)) - 1)
    drift = bool(np.isfinite(p) and p < alpha and abs(change) > min_change_pct)
    return {"drift": drift, "p_value": p if np.isfinite(p) else None, "change_pct": change}
