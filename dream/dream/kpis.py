"""Read KPIs from workload output (stress-ng --yaml, fio JSON, script JSON) and a wakeup-latency probe."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

import numpy as np
import yaml


class BadOutput(ValueError):
    """Workload output that does not hold the numbers a trial needs."""


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadOutput(f"{what} is not a finite number: {value!r}")
    return float(value)


def parse_stress_ng(yaml_text: str, stressor: str) -> float:
    """perf: bogo-ops-per-second-real-time of the primary stressor in a `--yaml` file."""
    try:
        doc = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        raise BadOutput(f"stress-ng YAML does not parse: {str(exc).splitlines()[0]}") from None
    rows = doc.get("metrics") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise BadOutput("stress-ng YAML has no metrics list")
    for row in rows:
        if isinstance(row, dict) and row.get("stressor") == stressor:
            perf = _finite(row.get("bogo-ops-per-second-real-time"), f"{stressor} bogo-ops/s")
            if perf <= 0:
                raise BadOutput(f"stressor {stressor} completed no bogo ops")
            return perf
    raise BadOutput(f"stress-ng metrics have no row for stressor {stressor}")


def _json_object(text: str, what: str) -> dict[str, Any]:
    # fio may print notices before its JSON; the document starts at the first line opening with `{`.
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("{")), None)
    if start is None:
        raise BadOutput(f"{what} printed no JSON object")
    try:
        doc, _ = json.JSONDecoder().raw_decode("\n".join(lines[start:]))
    except json.JSONDecodeError as exc:
        raise BadOutput(f"{what} JSON does not parse: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict):
        raise BadOutput(f"{what} JSON is not an object")
    return doc


def parse_fio(text: str) -> dict[str, float]:
    """perf (MB/s summed over jobs and directions), p95_ms (worst direction), errors."""
    doc = _json_object(text, "fio")
    jobs = doc.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise BadOutput("fio JSON has no jobs")
    bw, p95, errors = 0.0, [], 0.0
    for job in jobs:
        errors += _finite(job.get("total_err", 0), "fio total_err") + (1 if job.get("error") else 0)
        for rw in ("read", "write", "trim"):
            d = job.get(rw) or {}
            if not d.get("total_ios"):
                continue
            bw += _finite(d.get("bw_bytes"), f"fio {rw}.bw_bytes")
            pct = (d.get("clat_ns") or {}).get("percentile") or {}
            p95.append(_finite(pct.get("95.000000"), f"fio {rw} clat p95") / 1e6)
    if not p95 or bw <= 0:
        raise BadOutput("fio completed no I/O")
    return {"perf": bw / 1e6, "p95_ms": max(p95), "errors": errors}


def parse_script(stdout: str) -> dict[str, float]:
    """The last non-empty stdout line as one JSON object with finite perf and p95_ms."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise BadOutput("script printed nothing")
    try:
        doc = json.loads(lines[-1])
    except json.JSONDecodeError:
        raise BadOutput(f"script's last line is not JSON: {lines[-1][:80]!r}") from None
    if not isinstance(doc, dict):
        raise BadOutput("script's last line is not a JSON object")
    out = {}
    for key, value in doc.items():
        if value is None:
            continue
        out[key] = _finite(value, f"script {key}")
    for key in ("perf", "p95_ms"):
        if key not in out:
            raise BadOutput(f"script output has no {key}")
    if out["perf"] <= 0:
        raise BadOutput("script reports perf <= 0")
    return out


class WakeupProbe:
    """Sleeps `sleep_ms` every `period_ms` in a thread and records how late each wakeup was."""

    def __init__(self, sleep_ms: float = 1.0, period_ms: float = 10.0) -> None:
        self.sleep_s, self.period_s = sleep_ms / 1e3, period_ms / 1e3
        self.overshoot_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wakeup-probe", daemon=True)

    def _run(self) -> None:
        next_at = time.perf_counter()
        while not self._stop.is_set():
            t0 = time.perf_counter()
            time.sleep(self.sleep_s)
            self.overshoot_ms.append((time.perf_counter() - t0 - self.sleep_s) * 1e3)
            next_at += self.period_s
            self._stop.wait(max(0.0, next_at - time.perf_counter()))

    def start(self) -> WakeupProbe:
        """Begin probing."""
        self._thread.start()
        return self

    def stop(self) -> float | None:
        """Stop and return the 95th percentile overshoot in ms (None if no wakeup was observed)."""
        self._stop.set()
        self._thread.join()
        return float(np.percentile(self.overshoot_ms, 95)) if self.overshoot_ms else None
