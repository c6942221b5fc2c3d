"""Per-domain evolution telemetry: one JSONL line per generation, or one saying the domain cannot run."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dream.config import REGIMES
from dream.domains import DomainStatus
from labkit.jsonl import append_jsonl, read_jsonl


def telemetry_path(artifacts: str | os.PathLike, domain: str) -> Path:
    """`artifacts/domain_evolution/<domain>_evolution.jsonl`."""
    return Path(artifacts) / "domain_evolution" / f"{domain}_evolution.jsonl"


def read_telemetry(artifacts: str | os.PathLike, domain: str) -> list[dict[str, Any]]:
    """Every complete line of a domain's telemetry (a torn last line is skipped)."""
    return read_jsonl(telemetry_path(artifacts, domain)).records


def generations_done(artifacts: str | os.PathLike, domain: str) -> set[int]:
    """Generations whose telemetry line is written: the service skips them on resume."""
    return {
        r["generation"] for r in read_telemetry(artifacts, domain) if r.get("status") == "evolved"
    }


def fitness(packs: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """best/avg/min over the finite score_v2 of the packs; None when no pack has one.

    The reference left best_fitness unset when the last candidate scored -inf (a missing `else`);
    here unsafe or unscoreable packs are simply not among the scores.
    """
    scores = [p["aggregate"]["score_v2"] for p in packs]
    finite = [s for s in scores if s is not None and math.isfinite(s)]
    if not finite:
        return {"best_fitness": None, "avg_fitness": None, "min_fitness": None}
    return {
        "best_fitness": max(finite),
        "avg_fitness": sum(finite) / len(finite),
        "min_fitness": min(finite),
    }


def outcome_counts(packs: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """valid (finite score), unsafe (a cap or the failure limit broken), failed (not scoreable)."""
    status = [p["aggregate"]["score_status"] for p in packs]
    return {
        "valid": sum(s == "ok" for s in status),
        "unsafe": sum(s == "unsafe" for s in status),
        "failed": sum(s == "insufficient" for s in status),
    }


def generation_record(
    *,
    domain: str,
    generation: int,
    run_id: str,
    packs: Sequence[Mapping[str, Any]],
    baseline_ids: Mapping[str, str],
    drift: Mapping[str, Any] | None,
    approvals: Mapping[str, Any],
) -> dict[str, Any]:
    """The generation's telemetry line; fitness is over full-stage packs, the only comparable ones."""
    full = [p for p in packs if p["stage"] == "full"]
    best = max(
        (p for p in full if p["aggregate"]["score_v2"] is not None),
        key=lambda p: p["aggregate"]["score_v2"],
        default=None,
    )
    return {
        "domain": domain,
        "status": "evolved",
        "generation": generation,
        "run_id": run_id,
        **fitness(full),
        "best_cand_id": None if best is None else best["cand_id"],
        "candidate_packs": [p["artifacts"]["pack"] for p in full],
        "screened_packs": [p["artifacts"]["pack"] for p in packs if p["stage"] == "screen"],
        "regimes": list(REGIMES),
        "trials_per_regime": {
            r: [x["trials_ok"] for p in full for x in p["regimes"] if x["regime"] == r]
            for r in REGIMES
        },
        "population": len(packs),
        **outcome_counts(packs),
        "baseline_ids": dict(baseline_ids),
        "drift": None if drift is None else dict(drift),
        "approvals": dict(approvals),
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def append_generation(artifacts: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append a generation line (fsynced)."""
    append_jsonl(telemetry_path(artifacts, record["domain"]), dict(record))


def note_unavailable(artifacts: str | os.PathLike, status: DomainStatus, run_id: str) -> bool:
    """One `{domain, status: unavailable, reason}` line, unless the last line already says so."""
    line = status.to_dict()
    records = read_telemetry(artifacts, status.domain)
    last = records[-1] if records else None
    if last is not None and {k: last.get(k) for k in line} == line:
        return False
    append_jsonl(telemetry_path(artifacts, status.domain), {**line, "run_id": run_id})
    return True
