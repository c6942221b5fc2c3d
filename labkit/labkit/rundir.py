"""Run directories: create or resume one, keep `run_record.json` and its artifact index up to date."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labkit.atomic import atomic_write_json, atomic_write_text, remove_stale_temps
from labkit.config import canonical_yaml, config_hash, parse_yaml
from labkit.errors import LabkitError, MissingInputError, OutputPathError, Paused, RunExistsError
from labkit.rehearsal import ENV as REHEARSAL_ENV
from labkit.rehearsal import applied_profile, rehearsal_active
from labkit.tracking import note as note_for_tracking

RECORD = "run_record.json"
CONFIG = "config_resolved.yaml"
STATUSES = ("started", "running", "paused", "complete", "failed")
TERMINAL = ("complete", "failed")
BOOKKEEPING = (RECORD, CONFIG, "env.json", "git.json")  # what every run holds before any output


def utc_now() -> str:
    """Current UTC time as an ISO-8601 string with a Z suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Versions and hardware of this process, for `env.json` and the run record."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "numpy": _version("numpy"),
        "platform": platform.platform(),
        "cuda": None,
        "gpu_name": None,
        "cpu_capability": None,
    }
    if "torch" in sys.modules or env["torch"]:
        import torch

        env["cuda"] = torch.version.cuda
        # The instruction set torch's CPU kernels dispatch to (AVX2, AVX512...): CPU runs are
        # byte-identical only between machines that share it.
        env["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        if torch.cuda.is_available():
            env["gpu_name"] = torch.cuda.get_device_name(0)
    return env


def git_state(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """The git commit of `cwd` and whether tracked files differ from it (None outside a repository)."""

    def git(*args: str) -> str | None:
        try:
            # GIT_OPTIONAL_LOCKS=0: `git status` refreshes the index only when it may take
            # .git/index.lock, which would collide with the user's own git commands.
            out = subprocess.run(
                ["git", *args],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_creatable(path: str | os.PathLike) -> None:
    """Refuse (exit 2) an output directory that cannot be created: a file in the way, no write access.

    Commands call it before any heavy work, so an unusable path costs nothing.
    """
    target = Path(path).absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"cannot create {target}: {existing} is a file, not a directory")
    if existing == target:
        return  # an existing directory: whether it may be reused is RunDir.create's question
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot create {target}: {existing} is not writable")


def _failed_without_outputs(path: Path) -> bool:
    """True for a failed run whose files are only the record, resolved config, env and git."""
    if not (path / RECORD).is_file():
        return False
    try:
        record = json.loads((path / RECORD).read_text(encoding="utf-8"))
    except ValueError:
        return False  # unreadable: leave it to the user, never delete what we cannot judge
    files = {p.relative_to(path).as_posix() for p in path.rglob("*") if not p.is_dir()}
    return record.get("status") == "failed" and files <= set(BOOKKEEPING)


class RunDir:
    """One run's directory and its record; create it with `RunDir.create`, reopen with `RunDir.open`."""

    def __init__(self, path: str | os.PathLike, phase: str = "main", *, resumed: bool = False):
        # Absolute, so paths built from it stay valid whatever the caller joins them with.
        self.path = Path(path).absolute()
        self.phase = phase
        self.resumed = resumed  # True when this phase continues from an earlier, unfinished attempt
        self._record: dict[str, Any] | None = None

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, phase: str = "main") -> RunDir:
        """Open an existing run read/write; a directory without a record is a MissingInputError."""
        run = cls(path, phase)
        if not (run.path / RECORD).is_file():
            raise MissingInputError(f"not a run directory (no {RECORD}): {run.path}")
        note_for_tracking(run.path, "labkit")
        return run

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        config: Mapping[str, Any],
        *,
        phase: str = "main",
        resume: bool = False,
        force: bool = False,
        command: list[str] | None = None,
        config_path: str | os.PathLike | None = None,
        seeds: Mapping[str, Any] | None = None,
        determinism: Mapping[str, Any] | None = None,
        device: str = "cpu",
        extra: Mapping[str, Any] | None = None,
    ) -> RunDir:
        """Start `phase` of a run at `path`: a new run, a new phase of it, or a resumed phase.

        An existing phase is reused only with `resume` or restarted with `force`, and never once
        complete; a config whose hash differs from the run's is always refused, except that a failed
        run holding no outputs (only its bookkeeping files) is replaced.
        """
        path = Path(path)
        check_creatable(path)
        digest = config_hash(config)
        rehearsal = rehearsal_active()
        if _failed_without_outputs(path):
            # A run refused or failed before it produced anything blocks nothing: replace it.
            shutil.rmtree(path)
        if (path / RECORD).is_file():
            run = cls(path, phase)
            record = run.record
            if record.get("config_hash") != digest:
                raise RunExistsError(
                    f"{path} was made with config hash {str(record.get('config_hash'))[:12]}, "
                    f"this config hashes to {digest[:12]}; use a new --run_dir"
                )
            # A rehearsal's phases ran on replicas: real phases must never build on them, nor the reverse.
            if record.get("rehearsal", False) != rehearsal:
                made = "in a rehearsal" if record.get("rehearsal") else "without rehearsal"
                raise RunExistsError(
                    f"{path} was made {made} and {REHEARSAL_ENV} is now "
                    f"{'on' if rehearsal else 'off'}; use a new --run_dir"
                )
            state = record.get("phases", {}).get(phase)
            # A complete phase is immutable: not even `force` (--no-resume) redoes it.
            if state is not None and state["status"] == "complete":
                raise RunExistsError(
                    f"phase {phase!r} of {path} is complete and is never overwritten; use a new run dir"
                )
            if state is not None and not force and not resume:
                raise RunExistsError(
                    f"{path} already has phase {phase!r} ({state['status']}); resume it or use a new run dir"
                )
            run.resumed = state is not None and not force
            if run.resumed:
                remove_stale_temps(path)  # what the dead attempt's atomic writes left half-done
            run._begin_phase(command, restarted=force and state is not None)
            return run
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunExistsError(
                f"{path} exists and is not a labkit run directory; refusing to write into it"
            )
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path, phase)
        now = utc_now()
        env = environment()
        git = git_state()
        atomic_write_text(path / CONFIG, canonical_yaml(config))
        atomic_write_json(path / "env.json", env)
        atomic_write_json(path / "git.json", git)
        run._record = {
            "run_id": path.resolve().name,
            "status": "started",
            "created_utc": now,
            "updated_utc": now,
            "command": list(command if command is not None else sys.argv),
            "cwd": os.getcwd(),
            "config_path": None if config_path is None else str(config_path),
            "config_hash": digest,
            "env": env,
            "git": git,
            "hostname": socket.gethostname(),
            "device": device,
            "seeds": dict(seeds or {}),
            "determinism": dict(determinism or {}),
            # True when hub ids resolved to replicas (LABKIT_REHEARSAL): not a result.
            "rehearsal": rehearsal,
            # Config path -> the size caps the rehearsal applied to it (labkit.rehearsal).
            "rehearsal_profile": applied_profile() if rehearsal else {},
            "phases": {},
            "artifact_index": [],
            **dict(extra or {}),
        }
        run._begin_phase(command, restarted=False)
        for name in (CONFIG, "env.json", "git.json"):
            run.register_artifact(name)
        return run

    def _begin_phase(self, command: list[str] | None, *, restarted: bool) -> None:
        now = utc_now()
        phases = self.record.setdefault("phases", {})
        old = phases.get(self.phase)
        phases[self.phase] = {
            "status": "started",
            "started_utc": old["started_utc"] if old and self.resumed else now,
            "updated_utc": now,
            "ended_utc": None,
            "attempts": (old["attempts"] + 1) if old else 1,
            "restarted": restarted,
            "command": list(command if command is not None else sys.argv),
            # Where this attempt runs: a resumed phase may continue on another machine of a cluster.
            "hostname": socket.gethostname(),
        }
        self.record["status"] = "started"
        self._save()
        note_for_tracking(self.path, "labkit")

    # -- record --------------------------------------------------------------------------------
    @property
    def record(self) -> dict[str, Any]:
        """The run record as last read or written by this process."""
        if self._record is None:
            self._record = json.loads((self.path / RECORD).read_text(encoding="utf-8"))
        return self._record

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config this run was made with."""
        return parse_yaml(
            (self.path / CONFIG).read_text(encoding="utf-8"), source=str(self.path / CONFIG)
        )

    def _save(self) -> None:
        self.record["updated_utc"] = utc_now()
        atomic_write_json(self.path / RECORD, self.record)

    def update(self, **fields: Any) -> None:
        """Set top-level record fields (systems may add their own) and save."""
        self.record.update(fields)
        self._save()

    def set_status(self, status: str, **phase_fields: Any) -> None:
        """Set this phase's status (and the run's), with optional extra fields on the phase entry."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
        entry = self.record["phases"][self.phase]
        entry.update(status=status, updated_utc=utc_now(), **phase_fields)
        if status in (*TERMINAL, "paused"):
            entry["ended_utc"] = entry["updated_utc"]
        self.record["status"] = status
        self._save()

    def phase_status(self, phase: str | None = None) -> str | None:
        """Status of a phase of this run (this one by default), None if it never started."""
        entry = self.record.get("phases", {}).get(phase or self.phase)
        return None if entry is None else entry["status"]

    @contextmanager
    def running(self) -> Iterator[RunDir]:
        """Mark the phase running; complete on success, paused on `Paused`, failed on any error."""
        self.set_status("running")
        try:
            yield self
        except Paused:
            self.set_status("paused")
            raise
        except BaseException as exc:
            reason = str(exc) if isinstance(exc, LabkitError) else f"{type(exc).__name__}: {exc}"
            self.set_status("failed", error=reason)
            raise
        self.set_status("complete")

    # -- artifacts -----------------------------------------------------------------------------
    def file(self, *parts: str) -> Path:
        """Path of a file inside the run, with its parent folders created."""
        target = self.path.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def register_artifact(self, path: str | os.PathLike) -> dict[str, Any]:
        """Hash a file of this run into `artifact_index` (replacing an older entry for it)."""
        target = Path(path)
        if not target.is_absolute():
            target = self.path / target
        if not target.is_file():
            raise MissingInputError(f"cannot register missing artifact {target}")
        rel = target.resolve().relative_to(self.path.resolve()).as_posix()
        entry = {
            "relative_path": rel,
            "sha256": sha256_file(target),
            "bytes": target.stat().st_size,
            "created_utc": utc_now(),
        }
        index = [e for e in self.record["artifact_index"] if e["relative_path"] != rel]
        index.append(entry)
        self.record["artifact_index"] = index
        self._save()
        return entry
