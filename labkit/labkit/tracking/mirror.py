"""Mirror run directories to MLflow, after the fact and incrementally; the state lives in each run's record.

A run's record keeps `tracking`: the store, the MLflow run id (so a resumed run continues the same MLflow
run), how many lines of each step log and which file versions were sent, and whether the last mirror
failed and why. Only what changed since the last mirror is sent again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from labkit.atomic import atomic_write_json
from labkit.executors import error_line
from labkit.rundir import sha256_file, utc_now
from labkit.tracking.views import (
    STEP_KEY,
    RunView,
    avalanche_view,
    dream_view,
    flatten,
    labkit_view,
    read_json,
    sweep_view,
)

# MLflow's limits per log_batch call, and on the length of a param or tag value.
MAX_PARAMS, MAX_METRICS = 100, 1000
MAX_PARAM_VALUE, MAX_TAG_VALUE = 6000, 8000
_KEY_UNSAFE = re.compile(r"[^\w./\- :]")
# A store that does not answer must cost the run seconds, not MLflow's default minutes of retries.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
VIEWS = {"labkit": labkit_view, "avalanche": avalanche_view, "dream": dream_view}


def mirror_runs(uri: str, system: str, noted: Mapping[Path, str]) -> list[str]:
    """Mirror the noted runs (sweeps first, with their runs as children); return the failures."""
    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    mirror = _Mirror(uri)
    failures: list[str] = []
    done: set[Path] = set()
    for path, kind in sorted(noted.items(), key=lambda item: item[1] != "sweep"):
        if path in done:
            continue
        try:  # a run whose files cannot be read is reported; the others are still mirrored
            if kind == "sweep":
                view, children = sweep_view(path, system)
                parent = mirror.sync(view, None, failures)
                for child in children:
                    mirror.sync(labkit_view(child, system), parent, failures)
                    done.add(child)
            else:
                mirror.sync(VIEWS[kind](path, system), None, failures)
        except (OSError, ValueError, KeyError) as exc:
            failures.append(f"{path}: cannot read the run: {error_line(exc)}")
    return failures


def _key(text: str) -> str:
    return _KEY_UNSAFE.sub("_", text)[:250]


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:limit]


def numbers(record: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(key, value) of every finite number in nested mappings (booleans and lists left out)."""
    for key, value in flatten(record, prefix):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            yield _key(key), float(value)


def _step(record: Mapping[str, Any], line: int) -> int:
    step = record.get(STEP_KEY)
    return step if isinstance(step, int) and not isinstance(step, bool) else line


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))


class _Mirror:
    """One tracking store; `sync` mirrors one view into it."""

    def __init__(self, uri: str):
        self.uri = uri
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The MlflowClient, made on first use (importing mlflow takes seconds)."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            # MLflow's INFO lines (creating tables, migrations) would read as the command's own
            # output; importing mlflow set its level, so this comes after the import.
            logging.getLogger("mlflow").setLevel(logging.WARNING)
            logging.getLogger("alembic").setLevel(logging.WARNING)
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _artifact_location(self, experiment: str) -> str | None:
        # A SQLite store keeps artifacts beside its file, not in ./mlruns of whichever folder ran.
        if not self.uri.startswith("sqlite:///"):
            return None
        db = Path(self.uri.removeprefix("sqlite:///")).absolute()
        return (db.parent / f"{db.stem}_artifacts" / experiment).as_uri()

    def _experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(name, artifact_location=self._artifact_location(name))

    def sync(self, view: RunView, parent: str | None, failures: list[str]) -> str | None:
        """Mirror `view`; return its MLflow run id, or None after recording why it failed."""
        state = read_json(view.record).get("tracking") or {}
        if state.get("uri") != self.uri:
            state = {"backend": "mlflow", "uri": self.uri, "steps": {}, "files": {}}
        try:
            self._send(view, parent, state)
        except Exception as exc:  # the run's outcome stands whatever the store does
            reason = error_line(exc)
            state.update(status="failed", reason=reason, synced_utc=utc_now())
            failures.append(f"{view.record}: {reason}")
            try:
                _save_state(view.record, state)
            except OSError as write_error:
                failures.append(f"{view.record}: cannot record it: {error_line(write_error)}")
            return None
        return state["run_id"]

    def _send(self, view: RunView, parent: str | None, state: dict[str, Any]) -> None:
        client = self.client
        from mlflow.entities import Metric, Param, RunTag

        if state.get("run_id") is None:
            run = client.create_run(self._experiment_id(view.experiment), run_name=view.name)
            state.update(run_id=run.info.run_id, experiment_id=run.info.experiment_id)
            _save_state(view.record, {**state, "status": "syncing", "reason": None})
        run_id = state["run_id"]
        tags = {**view.tags, **({"mlflow.parentRunId": parent} if parent else {})}
        client.log_batch(
            run_id,
            tags=[
                RunTag(_key(k), _text(v, MAX_TAG_VALUE)) for k, v in tags.items() if v is not None
            ],
        )
        if not state.get("params_logged"):
            params = [
                Param(_key(k), _text(v, MAX_PARAM_VALUE))
                for k, v in view.params.items()
                if v is not None
            ]
            for batch in _chunks(params, MAX_PARAMS):
                client.log_batch(run_id, params=batch)
            state["params_logged"] = True
        now = int(time.time() * 1000)
        for name, records in view.steps.items():
            sent = state["steps"].get(name, 0)
            metrics = [
                Metric(key, value, now, _step(rec, line))
                for line, rec in enumerate(records[sent:], start=sent)
                for key, value in numbers(rec, name)
                if key.rsplit(".", 1)[-1] != STEP_KEY
            ]
            for batch in _chunks(metrics, MAX_METRICS):
                client.log_batch(run_id, metrics=batch)
            state["steps"][name] = len(records)
        for path in view.metric_files:
            rel, digest = self._changed(view, path, state)
            if digest is None:
                continue
            prefix = rel.removesuffix(".json")
            finals = [Metric(k, v, now, 0) for k, v in numbers(read_json(path), prefix)]
            for batch in _chunks(finals, MAX_METRICS):
                client.log_batch(run_id, metrics=batch)
            state["files"][rel] = digest
        for path in view.artifacts:
            if path == view.record:
                continue
            rel, digest = self._changed(view, path, state)
            if digest is not None:
                folder = str(Path(rel).parent)
                client.log_artifact(run_id, str(path), None if folder == "." else folder)
                state["files"][rel] = digest
        if view.status == "RUNNING":
            client.update_run(run_id, status="RUNNING")
        else:
            client.set_terminated(run_id, status=view.status)
        state.update(status="ok", reason=None, synced_utc=utc_now())
        _save_state(view.record, state)
        # Last, so the copy in MLflow shows this mirror's state too.
        client.log_artifact(run_id, str(view.record))

    @staticmethod
    def _changed(view: RunView, path: Path, state: dict[str, Any]) -> tuple[str, str | None]:
        rel = path.relative_to(view.root).as_posix() if view.root else path.name
        digest = sha256_file(path)
        return rel, None if state["files"].get(rel) == digest else digest


def _save_state(record: Path, state: dict[str, Any]) -> None:
    doc = read_json(record)
    doc["tracking"] = state
    atomic_write_json(record, doc)
