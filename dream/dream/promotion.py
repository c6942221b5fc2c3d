"""Promote an approved pack (a record, or real host settings behind every gate) and roll it back."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dream.actuators import Actuation, ActuationError
from dream.approvals import Approvals
from dream.candidate_pack import load_pack
from dream.config import DreamConfig
from dream.domains import genome_spec
from dream.host import HostInfo, block_device, host_identity, same_host
from labkit.atomic import atomic_write_json
from labkit.errors import ConfigError, MissingInputError, SchemaError
from labkit.jsonl import append_jsonl
from labkit.rundir import sha256_file, utc_now

PROMOTION_SCHEMA = "dream_promotion.v1"


def promoted_path(artifacts: str | os.PathLike, domain: str) -> Path:
    """`artifacts/promoted/<domain>.json`: the genome in effect for a domain."""
    return Path(artifacts) / "promoted" / f"{domain}.json"


def _rollback_record(artifacts: Path, domain: str) -> Path:
    return artifacts / "rollback" / f"promoted_{domain}.json"


def current_promotion(artifacts: str | os.PathLike, domain: str) -> dict[str, Any] | None:
    """The promotion in effect for a domain, or None."""
    path = promoted_path(artifacts, domain)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _actuation(
    cfg: DreamConfig, artifacts: Path, domain: str, root: str | os.PathLike, euid: int | None
) -> Actuation:
    return Actuation(
        "real",
        rollback_path=_rollback_record(artifacts, domain),
        root=root,
        allowlist=cfg.real_allowlist,
        confirmed=True,
        euid=euid,
        blockdev=block_device(artifacts),
    )


def promote(
    cfg: DreamConfig,
    artifacts: str | os.PathLike,
    domain: str,
    cand_id: str,
    *,
    who: str,
    apply_real: bool = False,
    yes_write_host: bool = False,
    accept_unchecked_caps: bool = False,
    root: str | os.PathLike = "/",
    euid: int | None = None,
    host: HostInfo | None = None,
    identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Promote an approved pack: write `promoted/<domain>.json`; with apply_real also write its settings."""
    artifacts = Path(artifacts)
    approvals = Approvals(artifacts, max_pending=cfg.max_pending_approvals)
    entry = next(
        (e for e in approvals.entries(domain) if e["cand_id"] == cand_id),
        None,
    )
    if entry is None:
        raise MissingInputError(f"{domain}/{cand_id} is not in the approvals queue")
    if entry["status"] != "approved":
        raise ConfigError(f"{domain}/{cand_id} is {entry['status']}; only approved packs promote")
    approvals.require_unpaused(domain)
    path = artifacts.parent / entry["pack"]
    pack = load_pack(path)
    if sha256_file(path) != entry["pack_sha256"]:
        raise SchemaError(f"{path} changed since it was approved; refusing to promote it")
    here = host_identity() if identity is None else identity
    differ = same_host(pack["host"], here)
    if differ:
        k = differ[0]
        raise ConfigError(
            f"{domain}/{cand_id} was measured on {pack['host']['hostname']} ({k} "
            f"{pack['host'][k]!r}), this host has {k} {here[k]!r}: promote it on the host it was measured on"
        )
    current = current_promotion(artifacts, domain)
    changes: list[dict[str, str]] = []
    unchecked = pack["risk_profile"]["caps_unchecked"]
    if apply_real:
        if not yes_write_host:
            raise ConfigError("--apply-real writes host settings: add --yes-write-host")
        if pack["actuation"] != "real":
            raise ConfigError(
                f"{domain}/{cand_id} was evaluated in shadow mode: it changed no host setting, "
                "so there is nothing real to apply"
            )
        if unchecked and not accept_unchecked_caps:
            names = ", ".join(c["cap"] for c in unchecked)
            raise ConfigError(
                f"caps this host could not check: {names}; add --accept-unchecked-caps to promote anyway"
            )
        if current is not None and current["actuation"] == "real":
            raise ConfigError(
                f"{domain} already has real settings promoted ({current['cand_id']}); rollback first"
            )
        actuation = _actuation(cfg, artifacts, domain, root, euid)
        spec = genome_spec(domain, host or HostInfo.detect(), actuation)
        why = {g.name: actuation.real_unavailable(domain, g) for g in spec.genes if g.setting}
        if all(why.values()):
            reasons = "; ".join(sorted(set(why.values())))
            raise ConfigError(f"no {domain} setting can be written here: {reasons}")
        genome = spec.check(pack["genome"])
        changes = [asdict(c) for c in actuation.apply(spec, genome)]
    if current is not None:
        approvals.mark(domain, current["cand_id"], "superseded")
    doc = {
        "schema": PROMOTION_SCHEMA,
        "domain": domain,
        "cand_id": cand_id,
        "pack": entry["pack"],
        "pack_sha256": entry["pack_sha256"],
        "genome": pack["genome"],
        "score_v2": pack["aggregate"]["score_v2"],
        "approved_by": entry["decided_by"],
        "approved_utc": entry["decided_utc"],
        "promoted_by": who,
        "promoted_utc": utc_now(),
        "actuation": "real" if apply_real else "shadow",
        "changes": changes,
        "rollback_record": str(_rollback_record(artifacts, domain).relative_to(artifacts.parent))
        if changes
        else None,
        "accepted_unchecked_caps": [c["cap"] for c in unchecked] if apply_real else [],
        "previous": current,
    }
    atomic_write_json(promoted_path(artifacts, domain), doc)
    approvals.mark(domain, cand_id, "promoted")
    append_jsonl(artifacts / "promoted" / "history.jsonl", {"event": "promoted", **_brief(doc)})
    return doc


def rollback(
    cfg: DreamConfig,
    artifacts: str | os.PathLike,
    domain: str,
    *,
    who: str,
    root: str | os.PathLike = "/",
    euid: int | None = None,
) -> dict[str, Any]:
    """Undo the current promotion: restore real settings if any, and reinstate the previous one."""
    artifacts = Path(artifacts)
    current = current_promotion(artifacts, domain)
    if current is None:
        raise MissingInputError(f"nothing is promoted for {domain}")
    restored: list[dict[str, str]] = []
    if current["actuation"] == "real":
        record = _rollback_record(artifacts, domain)
        if not record.exists():
            raise ActuationError(f"real promotion of {domain} has no rollback record at {record}")
        restored = [asdict(c) for c in _actuation(cfg, artifacts, domain, root, euid).restore()]
    previous = current["previous"]
    approvals = Approvals(artifacts, max_pending=cfg.max_pending_approvals)
    approvals.mark(domain, current["cand_id"], "rolled_back", rolled_back_by=who)
    if previous is None:
        promoted_path(artifacts, domain).unlink()
    else:
        atomic_write_json(promoted_path(artifacts, domain), previous)
        approvals.mark(domain, previous["cand_id"], "promoted")
    event = {
        "event": "rolled_back",
        "by": who,
        "utc": utc_now(),
        "domain": domain,
        "cand_id": current["cand_id"],
        "restored": restored,
        "now_in_effect": None if previous is None else previous["cand_id"],
    }
    append_jsonl(artifacts / "promoted" / "history.jsonl", event)
    return event


def _brief(doc: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "domain",
        "cand_id",
        "pack_sha256",
        "promoted_by",
        "promoted_utc",
        "actuation",
        "changes",
    )
    return {k: doc[k] for k in keys}
