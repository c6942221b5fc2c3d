"""Run one trial: process group, timeout, retries, scratch dir, parsing; failure is a reason, never a number."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dream.kpis import BadOutput, WakeupProbe, parse_fio, parse_script, parse_stress_ng
from dream.reaper import PIDFILE, Registry, spawn
from dream.sensors import Reading, Sensors
from dream.workloads import WorkloadCommand

_TAIL = 200_000  # bytes of stdout/stderr kept from an attempt


@dataclass
class ProcessResult:
    """How a workload process ended."""

    rc: int | None  # None when it was killed on timeout
    stdout: str
    stderr: str
    elapsed_s: float
    timed_out: bool


@dataclass
class TrialOutcome:
    """One trial after its attempts: either ok with metrics, or failed with a reason."""

    trial: int
    ok: bool
    attempts: int
    elapsed_s: float
    # KPIs and sensor values; a failed trial keeps the worst sensor values of its attempts, which
    # count against the caps like any other reading (a trial that overheats and dies is not safe).
    metrics: dict[str, float | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # why a metric is None
    reason: str | None = None  # why the trial failed
    notes: list[str] = field(default_factory=list)  # how the workload deviated from its definition
    # Host readings over the trial (conditions.HostMeter); not a KPI, never in a statistic.
    conditions: dict[str, float] = field(default_factory=dict)
    invalid: bool = False  # the host was not quiet: neither a result nor a failure of the genome

    def failure_record(self) -> dict[str, object]:
        """The pack's `failed_trials` entry."""
        sensors = {k: v for k, v in self.metrics.items() if v is not None}
        return {
            "trial": self.trial,
            "attempts": self.attempts,
            "reason": self.reason,
            "sensors": sensors,
        }


class AttemptFailed(Exception):
    """One attempt failed; carries what the sensors read while it ran."""

    def __init__(self, reason: str, sensors: dict[str, float | None]) -> None:
        super().__init__(reason)
        self.sensors = sensors


def _tail(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - _TAIL))
        return fh.read().decode("utf-8", errors="replace")


def run_process(
    argv: Iterable[str], *, timeout_s: float, cwd: Path, drop_root: bool = False
) -> ProcessResult:
    """Run argv in its own session, tied to dream's life; on timeout, or when it leaves children, kill the group.

    `cwd` is the attempt's private dir in the scratch root, whose pid file names the process while it
    runs (reaper.sweep kills what a crashed run left).
    """
    out, err = cwd / ".stdout", cwd / ".stderr"
    registry = Registry(cwd.parent / PIDFILE)
    t0 = time.perf_counter()
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = spawn(list(argv), cwd=cwd, stdout=fo, stderr=fe, drop_root=drop_root)
        with registry.running(proc, cwd):
            try:
                rc: int | None = proc.wait(timeout=timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                rc, timed_out = None, True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return ProcessResult(rc, _tail(out), _tail(err), time.perf_counter() - t0, timed_out)


def _stress_ng_metrics(cmd: WorkloadCommand, res: ProcessResult) -> dict[str, float]:
    # Exit status 2 means a stressor reported failures: the run still measured, its errors are counted.
    if res.rc not in (0, 2):
        last = (res.stderr.strip().splitlines() or ["no stderr"])[-1]
        raise BadOutput(f"stress-ng exited with status {res.rc}: {last[:160]}")
    if cmd.yaml_path is None or not cmd.yaml_path.is_file():
        raise BadOutput("stress-ng wrote no --yaml metrics file")
    perf = parse_stress_ng(cmd.yaml_path.read_text(errors="replace"), cmd.stressor or "")
    fails = sum(" fail: " in line for line in res.stderr.splitlines())
    return {"perf": perf, "errors": float(max(fails, 1) if res.rc == 2 else 0)}


def _parse(cmd: WorkloadCommand, res: ProcessResult) -> dict[str, float]:
    if res.timed_out:
        raise BadOutput(f"timed out after {res.elapsed_s:.1f} s (process group killed)")
    if cmd.kind == "stress-ng":
        return _stress_ng_metrics(cmd, res)
    if res.rc != 0:
        last = (res.stderr.strip().splitlines() or ["no stderr"])[-1]
        raise BadOutput(f"{cmd.kind} exited with status {res.rc}: {last[:160]}")
    return parse_fio(res.stdout) if cmd.kind == "fio" else parse_script(res.stdout)


def _attempt(
    make_command: Callable[[Path], WorkloadCommand],
    *,
    timeout_s: float,
    sensors: Sensors,
    probe: tuple[float, float],
    required: Iterable[str],
    workdir: Path,
) -> tuple[dict[str, float | None], dict[str, str]]:
    cmd = make_command(workdir)
    run = sensors.start()
    wake = WakeupProbe(*probe).start() if cmd.kind == "stress-ng" else None
    try:
        res = run_process(
            cmd.argv, timeout_s=timeout_s, cwd=workdir, drop_root=cmd.kind == "stress-ng"
        )
    finally:
        p95 = wake.stop() if wake else None
        reading = run.stop()
    try:
        return _metrics(cmd, res, reading, p95, sensors, required)
    except BadOutput as exc:
        raise AttemptFailed(str(exc), reading.values) from None


def _metrics(
    cmd: WorkloadCommand,
    res: ProcessResult,
    reading: Reading,
    p95: float | None,
    sensors: Sensors,
    required: Iterable[str],
) -> tuple[dict[str, float | None], dict[str, str]]:
    parsed = _parse(cmd, res)
    metrics: dict[str, float | None] = dict(reading.values)
    reasons = dict(reading.reasons)
    if cmd.kind == "stress-ng":
        parsed["p95_ms"] = p95
    for key, value in parsed.items():
        if value is not None or metrics.get(key) is None:
            metrics[key] = value
            reasons.pop(key, None)
    if "errors" not in parsed:
        metrics["errors"] = None
        reasons["errors"] = f"{cmd.kind} workload does not report errors"
    unmeasurable = set(sensors.unmeasurable())
    for kpi in required:
        value = metrics.get(kpi)
        if value is None and kpi not in unmeasurable:
            raise BadOutput(f"required KPI {kpi} is measurable here but missing from the trial")
        if value is not None and not math.isfinite(value):
            raise BadOutput(f"KPI {kpi} is not finite: {value}")
    return metrics, {k: v for k, v in reasons.items() if metrics.get(k) is None}


def run_trial(
    make_command: Callable[[Path], WorkloadCommand],
    *,
    trial: int,
    timeout_s: float,
    retries: int,
    sensors: Sensors,
    probe: tuple[float, float],
    required: Iterable[str],
    scratch_root: Path,
) -> TrialOutcome:
    """Run up to 1 + retries attempts in fresh scratch dirs; the first good one makes the trial ok."""
    scratch_root.mkdir(parents=True, exist_ok=True)
    required = tuple(required)
    reason, t0 = "not attempted", time.perf_counter()
    worst: dict[str, float | None] = {}
    notes: list[str] = []
    for attempt in range(1, retries + 2):
        workdir = Path(tempfile.mkdtemp(prefix=f"trial{trial:03d}_a{attempt}_", dir=scratch_root))

        def command(wd: Path) -> WorkloadCommand:
            cmd = make_command(wd)
            notes.extend(n for n in cmd.notes if n not in notes)
            return cmd

        try:
            metrics, reasons = _attempt(
                command,
                timeout_s=timeout_s,
                sensors=sensors,
                probe=probe,
                required=required,
                workdir=workdir,
            )
        except AttemptFailed as exc:
            reason = str(exc)
            for key, value in exc.sensors.items():
                if value is not None:
                    worst[key] = max(value, worst.get(key) or value)
            continue
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        elapsed = time.perf_counter() - t0
        return TrialOutcome(trial, True, attempt, elapsed, metrics, reasons, notes=notes)
    elapsed = time.perf_counter() - t0
    return TrialOutcome(
        trial, False, retries + 1, elapsed, metrics=worst, reason=reason, notes=notes
    )
