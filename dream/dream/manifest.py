"""Run manifests: `artifacts/manifests/<run_id>.json`, the record of one command that measured something."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock

from dream.domains import DOMAINS, domain_status
from dream.evaluator import EvalContext
from dream.host import host_fingerprint
from dream.workloads import supports_o_direct
from labkit.atomic import atomic_write_json
from labkit.errors import LabkitError, Paused, RunExistsError
from labkit.rundir import git_state, utc_now
from labkit.tracking import note as note_for_tracking

MANIFEST_SCHEMA = "dream_manifest.v1"
LOCK = "dream.lock"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")


def new_run_id(artifacts: str | os.PathLike) -> str:
    """`YYYY-MM-DDTHH-MM-SS_rNNN`: UTC start time and this out_root's run counter."""
    existing = list((Path(artifacts) / "manifests").glob("*_r[0-9][0-9][0-9]*.json"))
    return f"{_stamp()}_r{len(existing) + 1:03d}"


def recover_interrupted(out_root: str | os.PathLike) -> list[str]:
    """Under the lock: mark manifests a killed process left `running` as `interrupted`, drop its scratch."""
    shutil.rmtree(Path(out_root) / "scratch", ignore_errors=True)
    stale = []
    for path in sorted((Path(out_root) / "artifacts" / "manifests").glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("status") == "running":
            doc.update(status="interrupted", updated_utc=utc_now())
            atomic_write_json(path, doc)
            stale.append(doc["run_id"])
    return stale


@contextmanager
def exclusive(artifacts: str | os.PathLike) -> Iterator[None]:
    """Hold the out_root's lock: one measuring command per out_root at a time."""
    path = Path(artifacts) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RunExistsError(
            f"another dream command is writing to {Path(artifacts).parent} ({path} is locked)"
        ) from None
    try:
        yield
    finally:
        lock.release()


def capabilities(ctx: EvalContext) -> dict[str, Any]:
    """What this host can run and measure, as every pack of the run depends on it."""
    assert ctx.sensors is not None and ctx.actuation is not None
    return {
        "domains": [domain_status(d, ctx.host).to_dict() for d in DOMAINS],
        "unmeasurable": ctx.sensors.unmeasurable(),
        "o_direct": supports_o_direct(ctx.scratch_root),
        "actuation": ctx.actuation.mode,
        "euid": os.geteuid(),
    }


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("dream", "labkit", "optuna", "numpy", "scipy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


class Manifest:
    """One run's manifest, rewritten atomically as the run progresses and when it ends."""

    def __init__(self, ctx: EvalContext, command: str, settings: Mapping[str, Any]) -> None:
        self.path = ctx.artifacts / "manifests" / f"{ctx.run_id}.json"
        self.doc: dict[str, Any] = {
            "schema": MANIFEST_SCHEMA,
            "run_id": ctx.run_id,
            "command": command,
            "argv": list(sys.argv),
            "status": "running",
            "created_utc": utc_now(),
            "updated_utc": utc_now(),
            "ended_utc": None,
            "error": None,
            "profile": ctx.cfg.profile,
            "seeds": {"master": ctx.seed},
            "settings": dict(settings),
            "config_sha256": ctx.cfg.sha256(),
            "code_sha256": ctx.code_sha256,
            "host": host_fingerprint(),
            "capabilities": {},
            "versions": _versions(),
            "git": git_state(Path(__file__).parent),
            "progress": {},
            "resumes": [],  # runs a killed process left unfinished, taken over by this one
        }

    def update(self, **fields: Any) -> None:
        """Set fields and rewrite the manifest."""
        self.doc.update(fields, updated_utc=utc_now())
        atomic_write_json(self.path, self.doc)

    @contextmanager
    def running(self) -> Iterator[Manifest]:
        """Write it now; mark it complete, paused or failed when the block ends."""
        self.update()
        note_for_tracking(self.path, "dream")
        try:
            yield self
        except Paused:
            self.update(status="paused", ended_utc=utc_now())
            raise
        except BaseException as exc:
            why = str(exc) if isinstance(exc, LabkitError) else f"{type(exc).__name__}: {exc}"
            self.update(status="failed", ended_utc=utc_now(), error=why)
            raise
        self.update(status="complete", ended_utc=utc_now())
