"""candidate_pack.v3: one candidate's multi-regime evidence, validated against its JSON Schema on write."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from labkit.atomic import atomic_write_json
from labkit.config import validate
from labkit.errors import ConfigError, MissingInputError, RunExistsError, SchemaError

PACK_SCHEMA = "candidate_pack.v3"
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "candidate_pack.v3.schema.json"
STAGES = ("screen", "full")
SCORE_STATUSES = ("ok", "unsafe", "insufficient")


@dataclass
class RegimeResult:
    """One regime's trials, baseline comparison, intervals and tests."""

    regime: str
    trials: int  # trials run, failed ones included
    trials_ok: int
    stop_reason: str
    kpis: dict[
        str, list[float] | None
    ]  # per successful trial; None: not measured (see unavailable)
    unavailable: dict[str, str]
    ci95: dict[str, list[float] | None]
    ci_method: dict[str, str]
    baseline: dict[str, Any] | None  # KPI means of the stock baseline and its baseline_id
    delta: dict[str, list[float] | None]  # x_i - baseline mean, per successful trial
    delta_pct: dict[str, float | None]  # 100 (mean / baseline mean - 1)
    delta_pct_ci95: dict[str, list[float] | None]
    tests: dict[str, Any]
    improves: bool | None
    failed_trials: list[dict[str, Any]]
    peaks: dict[str, float | None]  # worst value of each capped quantity over all trials
    trial_seconds: list[float]  # wall time of every trial, failed ones and retries included
    notes: list[str]  # where trials departed from the regime's definition (fio without O_DIRECT)
    stock_kpis: dict[str, list[float] | None]  # the paired stock trials' perf, p95_ms, watts
    blocks: list[dict[str, Any]]  # ABBA blocks: order, candidate/stock trial index, valid
    blocks_valid: int
    sequence: list[dict[str, Any]]  # every trial in run order (warm-ups too), with host readings
    paired: dict[str, dict[str, Any] | None]  # per KPI: per-block log ratios, ratio, CI, p-values
    affected: bool | None  # does a gene the candidate moved act on this regime (None: a baseline)
    gain: bool | None  # significant paired perf gain
    noninferior: bool | None  # every regression guard holds


@dataclass
class CandidatePack:
    """Everything known about one candidate genome after a screen or full evaluation."""

    run_id: str
    domain: str
    cand_id: str
    generation: int
    stage: str
    profile: str
    actuation: str
    seed: int
    genome: dict[str, Any]
    frozen_genes: dict[str, str]
    risk_profile: dict[str, Any]
    regimes: list[RegimeResult]
    aggregate: dict[str, Any]
    safe: bool
    baseline_ids: dict[str, str | None]
    artifacts: dict[str, str]
    code_sha256: str
    created_utc: str
    host: dict[str, Any]  # host_identity(): what `promote` checks it runs on
    measurement_notes: list[str]  # every regime's notes, once each
    schema: str = field(default=PACK_SCHEMA)

    def to_dict(self) -> dict[str, Any]:
        """The pack as the JSON document, `schema` first."""
        doc = asdict(self)
        return {"schema": doc.pop("schema"), **doc}


@cache
def pack_schema() -> dict[str, Any]:
    """The candidate_pack.v3 JSON Schema."""
    return json.loads(SCHEMA_FILE.read_text())


def validate_pack(doc: Any, *, what: str = "candidate pack") -> None:
    """Raise SchemaError unless `doc` is a valid candidate_pack.v3 document."""
    validate(doc, pack_schema(), what=what)


def write_pack(pack: CandidatePack | dict[str, Any], path: str | os.PathLike) -> Path:
    """Validate, then write strict JSON atomically (NaN/Infinity are refused, never written)."""
    doc = pack.to_dict() if isinstance(pack, CandidatePack) else pack
    validate_pack(doc, what=str(path))
    return atomic_write_json(path, doc)


def new_pack_path(artifacts: str | os.PathLike, domain: str, cand_id: str) -> Path:
    """Where a new pack named `cand_id` goes; a bad name exits 2 and an existing pack 4 (never replaced)."""
    if not re.fullmatch(pack_schema()["properties"]["cand_id"]["pattern"], cand_id):
        raise ConfigError(f"--cand-id {cand_id!r}: use letters, digits, '_', '.' and '-' only")
    path = Path(artifacts) / "candidates" / domain / f"{cand_id}.json"
    if path.exists():
        raise RunExistsError(
            f"{path} exists and a pack is never replaced; choose another --cand-id"
        )
    return path


def load_pack(path: str | os.PathLike) -> dict[str, Any]:
    """Read a pack with a strict parser (no NaN/Infinity) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"candidate pack not found: {path}")

    def refuse(token: str) -> float:
        raise SchemaError(f"{path}: non-standard JSON number {token}")

    doc = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    validate_pack(doc, what=str(path))
    return doc
