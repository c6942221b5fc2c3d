"""How busy the host was around a trial, and a gate that waits for other processes to quiet down."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil

_BUSY_EXCLUDED = ("idle", "iowait", "steal", "guest", "guest_nice")


def _busy_and_steal(cpus: Sequence[int]) -> tuple[float, float, float]:
    """(busy seconds, steal seconds, total seconds) summed over `cpus` since boot."""
    per_cpu = psutil.cpu_times(percpu=True)
    busy = steal = total = 0.0
    for c in cpus:
        if c >= len(per_cpu):
            continue
        t = per_cpu[c]._asdict()
        # guest time is already inside user time; counting it again would double it.
        total += sum(v for k, v in t.items() if k not in ("guest", "guest_nice"))
        busy += sum(v for k, v in t.items() if k not in _BUSY_EXCLUDED)
        steal += t.get("steal", 0.0)
    return busy, steal, total


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@dataclass
class HostMeter:
    """Meters one trial: busy CPUs on this process's CPUs, the workload's own share, and steal."""

    cpus: tuple[int, ...]

    def start(self) -> HostMeter:
        """Take the opening readings."""
        self._t0 = time.perf_counter()
        self._busy0, self._steal0, self._total0 = _busy_and_steal(self.cpus)
        self._own0 = _children_cpu_s()
        return self

    def stop(self) -> dict[str, float]:
        """Readings over the trial: CPUs busy with other processes' work, own CPUs, steal, load."""
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        busy, steal, total = _busy_and_steal(self.cpus)
        # The workload's processes were waited for, so their CPU time is in RUSAGE_CHILDREN.
        own = (_children_cpu_s() - self._own0) / elapsed
        busy_cpus = (busy - self._busy0) / elapsed
        dt = total - self._total0
        return {
            "workload_cpus": round(own, 4),
            "foreign_cpus": round(max(0.0, busy_cpus - own), 4),
            "steal_pct": round(100 * (steal - self._steal0) / dt, 4) if dt > 0 else 0.0,
            "host_load_1m": round(os.getloadavg()[0], 4),
        }


@dataclass
class QuietGate:
    """Before a trial, wait until other processes keep at most `max_foreign_cpus` busy.

    None disables the gate (every trial is taken as it comes; its readings still record the load).
    """

    max_foreign_cpus: float | None
    probe_s: float = 0.5
    wait_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def foreign_now(self, cpus: tuple[int, ...]) -> float:
        """CPUs kept busy by other processes over one probe (nothing of ours runs meanwhile)."""
        meter = HostMeter(cpus).start()
        self.sleep(self.probe_s)
        return meter.stop()["foreign_cpus"]

    def wait(self, cpus: tuple[int, ...]) -> str | None:
        """None once the host is quiet; after `wait_s` of noise, why the trial is invalid."""
        if self.max_foreign_cpus is None:
            return None
        deadline = time.monotonic() + self.wait_s
        while True:
            load = self.foreign_now(cpus)
            if load <= self.max_foreign_cpus:
                return None
            if time.monotonic() >= deadline:
                return (
                    f"host not quiet: other processes kept {load:.2f} CPUs busy "
                    f"(> {self.max_foreign_cpus:g}) for {self.wait_s:g} s"
                )

    def check(self, readings: dict[str, float]) -> str | None:
        """Why a finished trial is invalid (other processes too busy while it ran), else None."""
        if self.max_foreign_cpus is None or readings["foreign_cpus"] <= self.max_foreign_cpus:
            return None
        return (
            f"host not quiet: other processes kept {readings['foreign_cpus']:.2f} CPUs busy "
            f"(> {self.max_foreign_cpus:g}) during the trial"
        )
