"""The approvals queue: eligible full packs wait for a human; at most max_pending per domain."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock

from dream.candidate_pack import load_pack
from labkit.atomic import atomic_write_json
from labkit.errors import ConfigError, MissingInputError, SchemaError
from labkit.jsonl import append_jsonl
from labkit.rundir import sha256_file, utc_now

QUEUE_SCHEMA = "dream_approvals.v1"
DECISIONS = {"approve": "approved", "reject": "rejected"}


def ineligible(pack: Mapping[str, Any]) -> str | None:
    """Why a pack may not be queued (None when it may): full stage, safe, a score, an improvement."""
    agg = pack["aggregate"]
    if pack["stage"] != "full":
        return "screen-stage pack (only full four-regime packs are reviewed)"
    if not pack["safe"]:
        return "unsafe"
    if agg["score_v2"] is None:
        return f"no score ({agg['score_status']})"
    if agg["improves_over_baseline"] is not True:
        return f"improves_over_baseline is {agg['improves_over_baseline']}"
    return None


def current_user() -> str:
    """Who is deciding: the login name."""
    return getpass.getuser()


class Approvals:
    """`artifacts/approvals/queue.json` (state) and `log.jsonl` (every event), edited under a lock."""

    def __init__(self, artifacts: str | os.PathLike, *, max_pending: int) -> None:
        self.artifacts = Path(artifacts)
        self.dir = self.artifacts / "approvals"
        self.path = self.dir / "queue.json"
        self.log = self.dir / "log.jsonl"
        self.max_pending = max_pending

    def read(self) -> dict[str, Any]:
        """The queue document (empty when nothing was ever queued)."""
        if not self.path.exists():
            return {"schema": QUEUE_SCHEMA, "entries": [], "paused": {}}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise SchemaError(f"{self.path}: not valid JSON: {exc}") from None
        if doc.get("schema") != QUEUE_SCHEMA:
            raise SchemaError(f"{self.path}: schema must be {QUEUE_SCHEMA}")
        return doc

    @contextmanager
    def _edit(self, event: str, **info: Any) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Read-modify-write the queue under its lock; `info` (which the caller may add to) is logged."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(self.dir / "queue.lock", timeout=60):
            doc = self.read()
            yield doc, info
            atomic_write_json(self.path, doc)
            append_jsonl(self.log, {"event": event, "utc": utc_now(), **info})

    def record(self, event: str, **info: Any) -> None:
        """Log an event that changes no entry (a refused dashboard action), under the queue's lock."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(self.dir / "queue.lock", timeout=60):
            append_jsonl(self.log, {"event": event, "utc": utc_now(), **info})

    def entries(self, domain: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Queue entries, oldest first, filtered by domain and status."""
        return [
            e
            for e in self.read()["entries"]
            if (domain is None or e["domain"] == domain)
            and (status is None or e["status"] == status)
        ]

    def paused(self, domain: str) -> dict[str, Any] | None:
        """Why approvals of a domain are paused (baseline drift), or None."""
        return self.read()["paused"].get(domain)

    def require_unpaused(self, domain: str) -> None:
        """Refuse (exit 2) while baseline drift pauses the domain: pending packs are judged on stale stock."""
        why = self.paused(domain)
        if why is not None:
            raise ConfigError(
                f"{domain} approvals are paused by baseline drift since {why['since_utc']} "
                f"({why.get('reason')}); run `baseline --refresh-baseline` and re-evaluate"
            )

    def pause(self, domain: str, info: Mapping[str, Any]) -> None:
        """Stop queueing a domain's packs until its baselines are refreshed."""
        with self._edit("paused", domain=domain, info=dict(info)) as (doc, _):
            doc["paused"][domain] = {**info, "since_utc": utc_now()}

    def resume(self, domain: str) -> bool:
        """Lift a drift pause (after the baselines were refreshed); False when none was set."""
        if self.paused(domain) is None:
            return False
        with self._edit("resumed", domain=domain) as (doc, _):
            doc["paused"].pop(domain, None)
        return True

    def offer(self, pack: Mapping[str, Any]) -> dict[str, Any]:
        """Queue an eligible pack; when the domain's queue is full, a better pack displaces the worst."""
        domain, cid = pack["domain"], pack["cand_id"]
        why = ineligible(pack)
        if why is None and self.paused(domain):
            why = "approvals paused: baseline drift"
        if why is not None:
            return {"cand_id": cid, "queued": False, "reason": why}
        if any(e["cand_id"] == cid for e in self.entries(domain)):
            return {"cand_id": cid, "queued": False, "reason": "already queued"}
        digest = sha256_file(self.artifacts.parent / pack["artifacts"]["pack"])
        agg = pack["aggregate"]
        entry = {
            "domain": domain,
            "cand_id": cid,
            "generation": pack["generation"],
            "run_id": pack["run_id"],
            "pack": pack["artifacts"]["pack"],
            "pack_sha256": digest,
            "score_v2": agg["score_v2"],
            "score_terms": agg["score_terms"],
            "baseline_ids": pack["baseline_ids"],
            "status": "pending",
            "queued_utc": utc_now(),
            "decided_by": None,
            "decided_utc": None,
            "note": None,
            "displaced_by": None,
        }
        with self._edit("offered", domain=domain, cand_id=cid) as (doc, log):
            pending = [
                e for e in doc["entries"] if e["domain"] == domain and e["status"] == "pending"
            ]
            outcome = {"cand_id": cid, "queued": True, "reason": None}
            if len(pending) >= self.max_pending:
                # Scores compare only under the same terms and the same stock baselines.
                comparable = [
                    e
                    for e in pending
                    if e["score_terms"] == entry["score_terms"]
                    and e["baseline_ids"] == entry["baseline_ids"]
                ]
                worst = min(comparable, key=lambda e: e["score_v2"], default=None)
                if worst is None or worst["score_v2"] >= entry["score_v2"]:
                    outcome["queued"] = False
                    outcome["reason"] = (
                        f"queue full ({len(pending)} pending) and not better than "
                        "any comparable pending pack"
                    )
                else:
                    worst["status"], worst["displaced_by"] = "displaced", cid
                    log["displaced"] = worst["cand_id"]
            if outcome["queued"]:
                doc["entries"].append(entry)
            log.update(queued=outcome["queued"], reason=outcome["reason"])
        return outcome

    def decide(
        self, domain: str, cand_id: str, decision: str, *, who: str, note: str | None = None
    ) -> dict[str, Any]:
        """Approve or reject a pending pack, recording who, when, and the sha256 of the pack decided on."""
        if decision not in DECISIONS:
            raise ConfigError(f"decision must be one of {sorted(DECISIONS)}, got {decision!r}")
        if decision == "approve":
            self.require_unpaused(domain)
        with self._edit(DECISIONS[decision], domain=domain, cand_id=cand_id, who=who) as (doc, log):
            entry = _find(doc, domain, cand_id)
            if entry["status"] != "pending":
                raise ConfigError(f"{domain}/{cand_id} is {entry['status']}, not pending")
            path = self.artifacts.parent / entry["pack"]
            load_pack(path)
            digest = sha256_file(path)
            if digest != entry["pack_sha256"]:
                raise SchemaError(
                    f"{path} changed since it was queued (sha256 {digest[:12]} != "
                    f"{entry['pack_sha256'][:12]}); refusing to decide on it"
                )
            entry.update(
                status=DECISIONS[decision], decided_by=who, decided_utc=utc_now(), note=note
            )
            log["pack_sha256"] = digest
        return dict(entry)

    def mark(self, domain: str, cand_id: str, status: str, **fields: Any) -> None:
        """Move an entry to `promoted` or back to `approved` (rollback), logging the event."""
        with self._edit(status, domain=domain, cand_id=cand_id, **fields) as (doc, _):
            _find(doc, domain, cand_id).update(status=status, **fields)


def _find(doc: Mapping[str, Any], domain: str, cand_id: str) -> dict[str, Any]:
    for e in doc["entries"]:
        if e["domain"] == domain and e["cand_id"] == cand_id:
            return e
    raise MissingInputError(f"no approvals entry for {domain}/{cand_id}")
