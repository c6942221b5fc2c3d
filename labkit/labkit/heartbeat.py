"""Per-phase heartbeat: `logs/<phase>_heartbeat.json` (latest) and `.jsonl` (timeline), throttled.

Every heartbeat also feeds `labkit.progress`: a live bar on a terminal, one line per completed phase off it.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from labkit.atomic import atomic_write_json
from labkit.errors import Paused
from labkit.jsonl import append_jsonl
from labkit.progress import Stage, describe

STATUSES = ("running", "paused", "complete", "failed")
TERMINAL = ("paused", "complete", "failed")
_PHASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def heartbeat_path(run_dir: str | os.PathLike, phase: str) -> Path:
    """Where the latest heartbeat snapshot of `phase` lives inside `run_dir`."""
    if not _PHASE.match(phase):
        raise ValueError(f"phase name {phase!r} must be letters, digits, '_', '.' or '-'")
    return Path(run_dir) / "logs" / f"{phase}_heartbeat.json"


def run_relative(path: str | os.PathLike, run_dir: str | os.PathLike) -> str:
    """`path` relative to `run_dir` when it lies inside it, else as given."""
    try:
        return Path(path).resolve().relative_to(Path(run_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


def _utc(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jsonable(value: Any, where: str = "metrics") -> Any:
    """Convert metrics to strict JSON: numpy/torch scalars via .item(), NaN/inf as strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return jsonable(value.item(), where)
    raise TypeError(f"{where}: {type(value).__name__} is not a JSON scalar, list or mapping")


class Heartbeat:
    """Progress of one phase, written at most every `min_interval_s` seconds unless it matters.

    `beat()` sooner than the interval only updates memory; status changes, checkpoints and
    `force=True` always write. As a context manager it ends `complete`, `paused` on `Paused`,
    `failed` on any other exception.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        phase: str,
        total: int | None = None,
        *,
        step: int = 0,
        min_interval_s: float = 5.0,
        window: int = 8,
    ):
        self.path = heartbeat_path(run_dir, phase)
        self.timeline = self.path.with_suffix(".jsonl")
        self.run_dir = Path(run_dir)
        self.phase = phase
        self.total = total
        self.step = step
        self.status = "running"
        self.metrics: Mapping[str, Any] = {}
        self.checkpoint: str | None = None
        self.state: str | None = None
        self.error: str | None = None
        self.min_interval_s = min_interval_s
        self.started = datetime.now(UTC)
        # (monotonic time, step) at written beats at least min_interval_s apart: the throughput window.
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), step)], maxlen=window)
        self._last_write = time.monotonic()
        self.write()
        self._stage = Stage(phase, total, done=step)

    def beat(
        self,
        step: int,
        *,
        metrics: Mapping[str, Any] | None = None,
        checkpoint: str | os.PathLike | None = None,
        state: str | os.PathLike | None = None,
        force: bool = False,
    ) -> bool:
        """Record progress at `step`; write it if the interval passed, a checkpoint/state path came, or forced."""
        self.step = step
        if metrics is not None:
            self.metrics = metrics
        self._stage.update(step, detail=describe(self.metrics))
        urgent = force or checkpoint is not None or state is not None
        if not urgent and time.monotonic() - self._last_write < self.min_interval_s:
            return False
        if checkpoint is not None:
            self.checkpoint = run_relative(checkpoint, self.run_dir)
        if state is not None:
            self.state = run_relative(state, self.run_dir)
        self.write()
        return True

    def set_status(
        self,
        status: str,
        *,
        step: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        checkpoint: str | os.PathLike | None = None,
        error: str | None = None,
    ) -> None:
        """Change the status and write it now, with the step, metrics, checkpoint or error that go with it."""
        if status not in STATUSES:
            raise ValueError(f"unknown heartbeat status {status!r}; expected one of {STATUSES}")
        self.status = status
        self.error = error
        self.beat(
            self.step if step is None else step, metrics=metrics, checkpoint=checkpoint, force=True
        )
        if status in TERMINAL:
            self._stage.close(status)

    def throughput(self, now: float) -> float | None:
        """Steps per second over the recent window, None before any progress."""
        t0, s0 = self._samples[0]
        if now <= t0 or self.step <= s0:
            return None
        return (self.step - s0) / (now - t0)

    def snapshot(self) -> dict[str, Any]:
        """The heartbeat record as it would be written now."""
        now_mono = time.monotonic()
        now = datetime.now(UTC)
        rate = self.throughput(now_mono)
        eta_s = None
        if self.status == "running" and rate and self.total is not None:
            eta_s = max(self.total - self.step, 0) / rate
        return {
            "phase": self.phase,
            "status": self.status,
            "step": self.step,
            "total": self.total,
            "started_utc": _utc(self.started),
            "updated_utc": _utc(now),
            "elapsed_s": round((now - self.started).total_seconds(), 3),
            "throughput_steps_per_s": None if rate is None else round(rate, 6),
            "eta_s": None if eta_s is None else round(eta_s, 3),
            "eta_utc": None if eta_s is None else _utc(now + timedelta(seconds=eta_s)),
            "latest_checkpoint": self.checkpoint,
            "latest_state": self.state,
            "metrics": jsonable(self.metrics),
            "error": self.error,
            "min_interval_s": self.min_interval_s,
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
        }

    def write(self) -> dict[str, Any]:
        """Write the snapshot (atomically) and append it to the timeline, now."""
        snap = self.snapshot()
        atomic_write_json(self.path, snap)
        # The snapshot is the durable copy; timeline lines skip fsync (a killed process still
        # leaves them in the page cache), saving one of the three fsyncs of a write.
        append_jsonl(self.timeline, snap, fsync=False)
        now = time.monotonic()
        self._last_write = now
        if now - self._samples[-1][0] >= self.min_interval_s:
            self._samples.append((now, self.step))
        return snap

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.set_status("complete")
        elif issubclass(exc_type, Paused):
            if self.status != "paused":
                self.set_status("paused")
        else:
            self.set_status("failed", error=f"{exc_type.__name__}: {exc}")
