"""What the dashboard shows about a pack: its queue entry, checksum, safety, and why it cannot be approved."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dream.approvals import Approvals, ineligible
from dream.candidate_pack import load_pack
from labkit.errors import LabkitError
from labkit.jsonl import read_jsonl
from labkit.rundir import sha256_file

# Domain and candidate names as the product writes them; anything else never reaches the file system.
NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass
class Review:
    """One pack as a reviewer sees it: evidence, queue entry, and every reason approval is blocked."""

    domain: str
    cand_id: str
    pack: dict[str, Any] | None
    entry: dict[str, Any] | None
    sha256: str | None
    blocked: list[str] = field(default_factory=list)  # why there is no approve button
    can_reject: bool = False

    @property
    def can_approve(self) -> bool:
        """A pending, unchanged, safe, eligible pack of an unpaused domain."""
        return not self.blocked

    @property
    def safety(self) -> str:
        """One word for the queue table: safe, UNSAFE, CHANGED (on disk) or UNREADABLE."""
        if self.pack is None:
            return "UNREADABLE"
        if self.entry is not None and self.sha256 != self.entry["pack_sha256"]:
            return "CHANGED"
        return "safe" if self.pack["safe"] else "UNSAFE"


def pack_path(artifacts: str | os.PathLike, domain: str, cand_id: str) -> Path:
    """`candidates/<domain>/<cand_id>.json`, for names the product could have written only."""
    if not (NAME.match(domain) and NAME.match(cand_id)):
        raise LookupError(f"no such pack: {domain}/{cand_id}")
    return Path(artifacts) / "candidates" / domain / f"{cand_id}.json"


def review(queue: Approvals, domain: str, cand_id: str) -> Review:
    """Load a pack and judge it by the rules `Approvals.decide` enforces, so the page can say why."""
    path = pack_path(queue.artifacts, domain, cand_id)
    entry = next((e for e in queue.entries(domain) if e["cand_id"] == cand_id), None)
    if entry is None and not path.exists():
        raise LookupError(f"no such pack: {domain}/{cand_id}")
    try:
        pack = load_pack(path)
    except LabkitError as exc:
        return Review(domain, cand_id, None, entry, None, [f"pack unreadable: {exc}"])
    out = Review(domain, cand_id, pack, entry, sha256_file(path))
    if entry is None:
        out.blocked.append(f"not in the approvals queue: {ineligible(pack) or 'never offered'}")
        return out
    if entry["status"] != "pending":
        out.blocked.append(f"{entry['status']}, not pending")
        return out
    if out.sha256 != entry["pack_sha256"]:
        out.blocked.append(
            f"changed on disk since it was queued (sha256 {out.sha256[:12]} != "
            f"{entry['pack_sha256'][:12]}): it cannot be approved or rejected"
        )
        return out
    out.can_reject = True
    if not pack["safe"]:
        out.blocked.append("unsafe: " + "; ".join(pack["risk_profile"]["unsafe_reasons"]))
    elif (why := ineligible(pack)) is not None:
        out.blocked.append(f"not eligible: {why}")
    paused = queue.paused(domain)
    if paused is not None:
        out.blocked.append(
            f"{domain} approvals paused by baseline drift since {paused['since_utc']}"
        )
    return out


def queue_reviews(queue: Approvals) -> list[Review]:
    """Every queue entry, pending first, then the most recently queued."""
    entries = sorted(queue.entries(), key=lambda e: e["queued_utc"], reverse=True)
    entries.sort(key=lambda e: e["status"] != "pending")
    return [review(queue, e["domain"], e["cand_id"]) for e in entries]


def unqueued_full_packs(queue: Approvals) -> list[Review]:
    """Full packs that never entered the queue (unsafe, unscored, not improving), with the reason."""
    queued = {(e["domain"], e["cand_id"]) for e in queue.entries()}
    out = []
    for path in sorted((queue.artifacts / "candidates").glob("*/*.json")):
        key = (path.parent.name, path.stem)
        if key in queued or not (NAME.match(key[0]) and NAME.match(key[1])):
            continue
        r = review(queue, *key)
        if r.pack is None or r.pack["stage"] == "full":
            out.append(r)
    return out


def history(artifacts: str | os.PathLike) -> dict[str, Any]:
    """Promotions in effect, every promotion and rollback, and the approvals log, newest first."""
    artifacts = Path(artifacts)
    promoted = artifacts / "promoted"
    current = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(promoted.glob("*.json"))]
    events = read_jsonl(promoted / "history.jsonl").records
    log = read_jsonl(artifacts / "approvals" / "log.jsonl").records
    return {"current": current, "promotions": events[::-1], "approvals_log": log[::-1]}
