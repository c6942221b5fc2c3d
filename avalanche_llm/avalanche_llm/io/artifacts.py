"""Immutable run directories: the run record, atomic artifact writes, and the artifact index."""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from avalanche_llm import canon
from avalanche_llm.config import ResolvedConfig
from avalanche_llm.io.hashing import code_version
from avalanche_llm.io.npz import load_npz, npz_bytes
from avalanche_llm.io.schema_validate import validate_run_record
from labkit.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_with,
    dumps_json,
    remove_stale_temps,
)
from labkit.errors import ConfigError, MissingInputError, RunExistsError
from labkit.rehearsal import applied_profile, rehearsal_active
from labkit.rundir import environment, git_state, sha256_file, utc_now
from labkit.tracking import note as note_for_tracking

RECORD = canon.output("RUN_RECORD_JSON")
CONFIG = canon.output("CONFIG_RESOLVED_YAML")
INCOMPLETE = ("started", "running", "failed")


def read_record(path: Path) -> dict[str, Any]:
    """The run record of run directory `path` (missing -> exit 3)."""
    record = path / RECORD
    if not record.is_file():
        raise MissingInputError(f"not a run directory (no {RECORD}): {path}")
    return json.loads(record.read_text(encoding="utf-8"))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Parquet bytes of `frame` without its index (pyarrow; same frame -> same bytes)."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


class RunArtifacts:
    """Read access to a finished run's artifacts, each checked against its recorded sha256."""

    def __init__(self, path: Path):
        self.path = path
        self.record = read_record(path)
        self.run_id: str = self.record["run_id"]
        self.stage_tag: str = self.record["stage_tag"]

    def artifact(self, rel: str) -> Path:
        """Path of artifact `rel` after checking it exists (exit 3) and matches its index hash (exit 2)."""
        target = self.path / rel
        entry = next((e for e in self.record["artifact_index"] if e["relative_path"] == rel), None)
        if entry is None or not target.is_file():
            raise MissingInputError(f"{self.run_id} has no artifact {rel}")
        if sha256_file(target) != entry["sha256"]:
            raise ConfigError(f"{self.run_id}/{rel} changed after it was written (sha256 mismatch)")
        return target

    def read_json(self, rel: str) -> Any:
        """A JSON artifact."""
        return json.loads(self.artifact(rel).read_text(encoding="utf-8"))

    def read_parquet(self, rel: str) -> pd.DataFrame:
        """A Parquet artifact as a DataFrame."""
        return pd.read_parquet(self.artifact(rel), engine="pyarrow")

    def load_npz(self, rel: str) -> dict[str, np.ndarray]:
        """An NPZ artifact as a dict of arrays."""
        return load_npz(self.artifact(rel))


class StageRun(RunArtifacts):
    """The run directory a producing phase writes: created once, never overwritten, record kept current."""

    def __init__(self, path: Path, record: dict[str, Any], started: float | None = None):
        self.path = path
        self.record = record
        self.run_id = record["run_id"]
        self.stage_tag = record["stage_tag"]
        self._t0 = time.monotonic() if started is None else started

    @classmethod
    def create(
        cls,
        out_root: Path,
        run_id: str,
        *,
        config: ResolvedConfig,
        phase_id: str,
        stage_tag: str,
        dependencies: Sequence[RunArtifacts],
        determinism: Mapping[str, Any],
        allow_resume: bool,
        started: float | None = None,
    ) -> StageRun:
        """Create run `run_id` under `out_root`, or reopen it with `allow_resume` if its stage is incomplete.

        `started` (time.monotonic()) is when the phase began, for the wall-time budget; default now.
        """
        path = out_root / run_id
        if (path / RECORD).is_file():
            old = read_record(path)
            if not allow_resume or old.get("stage_status") not in INCOMPLETE:
                hint = (
                    "" if old.get("stage_status") == "complete" else "; --allow_resume continues it"
                )
                raise RunExistsError(
                    f"run directory {path} exists (stage {old.get('stage_status')}){hint}"
                )
            if old["hashes"]["config_sha256"] != config.sha256:
                raise RunExistsError(f"{path} was made from a different config; not resuming")
            if old.get("rehearsal", False) != rehearsal_active():
                raise RunExistsError(
                    f"{path} was made {'in' if old.get('rehearsal') else 'without'} a rehearsal "
                    f"(LABKIT_REHEARSAL); not resuming it the other way"
                )
            created = old["created_utc"]
            kept = {"tracking": old["tracking"]} if "tracking" in old else {}
            remove_stale_temps(path)  # what the dead attempt's atomic writes left half-done
        elif path.exists():
            raise RunExistsError(f"{path} exists and is not a run directory")
        else:
            path.mkdir(parents=True)
            created = utc_now()
            kept = {}
        cfg = config.data
        env = environment()
        record = {
            "project_id": cfg["project_id"],
            "pack_version": cfg["pack_version"],
            "run_id": run_id,
            "phase_id": phase_id,
            "stage_tag": stage_tag,
            "stage_status": "started",
            "created_utc": created,
            "updated_utc": created,
            "ended_utc": None,
            "command": list(sys.argv),
            # True when hub ids resolved to labkit.zoo replicas (LABKIT_REHEARSAL): not a result.
            "rehearsal": rehearsal_active(),
            "rehearsal_profile": applied_profile(),
            "model": {
                "role": cfg["runtime"]["model_role"],
                "hf_id": cfg["models"][cfg["runtime"]["model_role"]]["hf_id"],
            },
            "dataset": {},
            "conditions": [],
            "artifacts": {},
            "hashes": {
                "config_sha256": config.sha256,
                "code_version": code_version(),
                "dataset_slice_sha256": None,
            },
            "versions": {
                "python": env["python"],
                "torch": env["torch"],
                "transformers": env["transformers"],
                "numpy": env["numpy"],
                "transformers_pin": cfg["pipeline"]["transformers_version_pin"],
            },
            "environment": env,
            "git": git_state(canon.ROOT),
            "determinism": dict(determinism),
            "dependencies": [
                {
                    "stage_tag": d.stage_tag,
                    "run_id": d.run_id,
                    "config_sha256": d.record["hashes"]["config_sha256"],
                    "relative_path": d.run_id,
                }
                for d in dependencies
            ],
            "budget": {
                "phase_seconds_max": cfg["budgets"]["phase_seconds_max"],
                "elapsed_s": None,
                "within_budget": None,
            },
            "error": None,
            "artifact_index": [],
            **kept,  # a resumed stage stays the same MLflow run
        }
        run = cls(path, record, started)
        run._save()
        run.write_bytes(CONFIG, config.bytes)
        note_for_tracking(path, "avalanche")
        return run

    # -- record ----------------------------------------------------------------------------------
    def _save(self) -> None:
        self.record["updated_utc"] = utc_now()
        validate_run_record(self.record)
        atomic_write_json(self.path / RECORD, self.record)

    def update(self, **fields: Any) -> None:
        """Set top-level record fields (model, dataset, conditions, ...) and save; nested dicts merge."""
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(self.record.get(key), dict):
                self.record[key].update(value)
            else:
                self.record[key] = value
        self._save()

    def set_slice_hash(self, digest: str) -> None:
        """Record the hash of the data slice this run measured."""
        self.record["hashes"]["dataset_slice_sha256"] = digest
        self._save()

    def set_status(self, status: str, error: str | None = None) -> None:
        """Set the stage status; terminal statuses stamp the end time and the wall-time budget."""
        self.record["stage_status"] = status
        self.record["error"] = error
        if status in ("complete", "failed"):
            self.record["ended_utc"] = utc_now()
            elapsed = round(time.monotonic() - self._t0, 3)
            budget = self.record["budget"]
            budget.update(elapsed_s=elapsed, within_budget=elapsed <= budget["phase_seconds_max"])
        self._save()

    # -- artifacts -------------------------------------------------------------------------------
    def _register(self, rel: str, name: str | None) -> Path:
        target = self.path / rel
        entry = {
            "relative_path": rel,
            "sha256": sha256_file(target),
            "bytes": target.stat().st_size,
            "created_utc": utc_now(),
        }
        index = [e for e in self.record["artifact_index"] if e["relative_path"] != rel]
        self.record["artifact_index"] = [*index, entry]
        if name is not None:
            self.record["artifacts"][name] = rel
        self._save()
        return target

    def write_with(
        self, rel: str, writer: Callable[[BinaryIO], Any], *, name: str | None = None
    ) -> Path:
        """Write artifact `rel` atomically through `writer(fh)` and register it (`name`: its CANON id)."""
        atomic_write_with(self.path / rel, writer)
        return self._register(rel, name)

    def write_bytes(self, rel: str, data: bytes, *, name: str | None = None) -> Path:
        """Write and register a bytes artifact."""
        atomic_write_bytes(self.path / rel, data)
        return self._register(rel, name)

    def write_json(self, rel: str, obj: Any, *, name: str | None = None) -> Path:
        """Write and register a strict-JSON artifact."""
        return self.write_bytes(rel, dumps_json(obj).encode("utf-8"), name=name)

    def write_npz(
        self, rel: str, arrays: dict[str, np.ndarray], *, name: str | None = None
    ) -> Path:
        """Write and register a deterministic NPZ artifact."""
        return self.write_bytes(rel, npz_bytes(arrays), name=name)

    def write_parquet(self, rel: str, frame: pd.DataFrame, *, name: str | None = None) -> Path:
        """Write and register a Parquet artifact."""
        return self.write_bytes(rel, parquet_bytes(frame), name=name)
