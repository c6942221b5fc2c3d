"""Host sensors sampled during a trial; what a host cannot measure is None with a reason, never a guess."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

TemperatureSource = Callable[[], dict[str, list[Any]]]
SENSOR_METRICS = (
    "watts",
    "temp_peak_c",
    "oom",
    "package_power_w",
    "thermal_throttle_events",
    "ecc_errors",
    "swap_thrashing_mb_per_s",
    "cpu_temp_c",
    "gpu_temp_c",
    "dimm_temp_c",
    "nvme_temp_c",
    "psu_temp_c",
)
# psutil chip names -> the component they report on.
_COMPONENT_CHIPS = {
    "cpu_temp_c": ("coretemp", "k10temp", "zenpower", "cpu_thermal"),
    "gpu_temp_c": ("amdgpu", "nouveau", "radeon", "nvidia"),
    "dimm_temp_c": ("jc42", "spd5118", "ee1004"),
    "nvme_temp_c": ("nvme",),
    "psu_temp_c": ("corsairpsu", "psu"),
}


@dataclass
class Reading:
    """Sensor values of one trial: a number, or None with the reason in `reasons`."""

    values: dict[str, float | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


class Rapl:
    """Package energy counters under /sys/class/powercap, with counter wrap-around handled."""

    def __init__(self, root: str | os.PathLike = "/") -> None:
        base = Path(root, "sys/class/powercap")
        # Top-level zones only (intel-rapl:0), not their sub-zones (intel-rapl:0:0): no double counting.
        self.zones = sorted(
            p
            for p in base.glob("intel-rapl:*")
            if p.name.count(":") == 1 and (p / "energy_uj").exists()
        )
        self.ranges = [int((z / "max_energy_range_uj").read_text()) for z in self.zones]

    def read(self) -> list[int]:
        """Current energy_uj of every package zone."""
        return [int((z / "energy_uj").read_text()) for z in self.zones]

    def delta_uj(self, before: list[int], after: list[int]) -> int:
        """Energy used between two reads, summed over zones; a counter that wrapped adds its range."""
        total = 0
        for b, a, rng in zip(before, after, self.ranges, strict=True):
            d = a - b
            total += d + rng if d < 0 else d
        return total


def _counter_sum(paths: list[Path]) -> int | None:
    if not paths:
        return None
    return sum(int(p.read_text().strip()) for p in paths)


def _oom_file(root: Path) -> Path | None:
    rel = ""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrl, path = line.split(":", 2)
            if ctrl in ("", "memory"):
                rel = path.lstrip("/")
    except OSError:
        pass
    cg = root / "sys/fs/cgroup"
    for cand in (
        cg / rel / "memory.events",
        cg / "memory.events",
        cg / "memory" / rel / "memory.oom_control",
        cg / "memory" / "memory.oom_control",
    ):
        if cand.is_file() and "oom_kill " in cand.read_text():
            return cand
    return None


def _oom_kills(path: Path) -> int:
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    raise ValueError(f"{path} has no oom_kill line")


def _swap_pages(root: Path) -> int | None:
    vmstat = root / "proc/vmstat"
    if not vmstat.is_file():
        return None
    stats = dict(line.split() for line in vmstat.read_text().splitlines() if line.count(" ") == 1)
    if "pswpin" not in stats:
        return None
    return int(stats["pswpin"]) + int(stats["pswpout"])


class Sensors:
    """Every host sensor a trial may read; temperatures come from an injectable psutil-like source."""

    def __init__(
        self,
        root: str | os.PathLike = "/",
        *,
        temperatures: TemperatureSource = psutil.sensors_temperatures,
        sampling_ms: float = 100.0,
    ) -> None:
        self.root = Path(root)
        self.temperatures = temperatures
        self.sampling_s = sampling_ms / 1e3
        self.rapl = Rapl(root)
        self.oom_file = _oom_file(self.root)
        cpu = self.root / "sys/devices/system/cpu"
        self.throttle_files = sorted(cpu.glob("cpu[0-9]*/thermal_throttle/*_throttle_count"))
        edac = self.root / "sys/devices/system/edac/mc"
        self.ecc_files = sorted(edac.glob("mc[0-9]*/ce_count")) + sorted(
            edac.glob("mc[0-9]*/ue_count")
        )

    def unmeasurable(self) -> dict[str, str]:
        """Sensor metric -> why this host cannot measure it (found out once, before any trial)."""
        out: dict[str, str] = {}
        if not self.rapl.zones:
            why = "no RAPL package zones under /sys/class/powercap"
            out["watts"] = out["package_power_w"] = why
        temps = self.read_temperatures()
        if not temps:
            out["temp_peak_c"] = "no temperature sensors (psutil.sensors_temperatures() is empty)"
        for metric, chips in _COMPONENT_CHIPS.items():
            if not any(chip.startswith(chips) for chip in temps):
                out[metric] = f"no {metric.removesuffix('_temp_c')} temperature sensor"
        if self.oom_file is None:
            out["oom"] = "no cgroup memory.events or memory.oom_control with an oom_kill count"
        if not self.throttle_files:
            out["thermal_throttle_events"] = "no thermal_throttle counters in sysfs"
        if not self.ecc_files:
            out["ecc_errors"] = "no EDAC memory controllers in sysfs"
        if _swap_pages(self.root) is None:
            out["swap_thrashing_mb_per_s"] = "no pswpin/pswpout in /proc/vmstat"
        return out

    def read_temperatures(self) -> dict[str, list[float]]:
        """Current readings per chip (empty when the host exposes none)."""
        try:
            raw = self.temperatures() or {}
        except (OSError, RuntimeError):
            return {}
        return {
            chip: [float(e.current) for e in entries if e.current is not None]
            for chip, entries in raw.items()
            if any(e.current is not None for e in entries)
        }

    def start(self) -> SensorRun:
        """Begin sampling for one trial."""
        return SensorRun(self)


class SensorRun:
    """One trial's sampling thread; `stop()` returns the trial's Reading."""

    def __init__(self, sensors: Sensors) -> None:
        self.s = sensors
        self.missing = sensors.unmeasurable()
        self.peaks: dict[str, float] = {}
        self.interval_w: list[float] = []
        self.energy_uj = 0
        self._t0 = time.perf_counter()
        self._rapl_last = sensors.rapl.read() if sensors.rapl.zones else None
        self._rapl_t = self._t0
        self._oom0 = _oom_kills(sensors.oom_file) if sensors.oom_file else None
        self._throttle0 = _counter_sum(sensors.throttle_files)
        self._ecc0 = _counter_sum(sensors.ecc_files)
        self._swap0 = _swap_pages(sensors.root)
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="sensors", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        for chip, values in self.s.read_temperatures().items():
            metrics = ["temp_peak_c"] + [
                m for m, chips in _COMPONENT_CHIPS.items() if chip.startswith(chips)
            ]
            for m in metrics:
                self.peaks[m] = max(self.peaks.get(m, float("-inf")), *values)
        if self._rapl_last is not None:
            now, energy = time.perf_counter(), self.s.rapl.read()
            d = self.s.rapl.delta_uj(self._rapl_last, energy)
            if now > self._rapl_t:
                self.interval_w.append(d / 1e6 / (now - self._rapl_t))
            self.energy_uj += d
            self._rapl_last, self._rapl_t = energy, now

    def _loop(self) -> None:
        while not self._stop.wait(self.s.sampling_s):
            self._sample()

    def stop(self) -> Reading:
        """Stop sampling and turn the samples into the trial's sensor values."""
        self._stop.set()
        self._thread.join()
        self._sample()
        elapsed = time.perf_counter() - self._t0
        v: dict[str, float | None] = {m: None for m in SENSOR_METRICS}
        v.update(self.peaks)
        if self._rapl_last is not None and elapsed > 0:
            v["watts"] = self.energy_uj / 1e6 / elapsed
            v["package_power_w"] = max(self.interval_w) if self.interval_w else None
        if self._oom0 is not None:
            v["oom"] = float(_oom_kills(self.s.oom_file) - self._oom0)
        if self._throttle0 is not None:
            v["thermal_throttle_events"] = float(
                _counter_sum(self.s.throttle_files) - self._throttle0
            )
        if self._ecc0 is not None:
            v["ecc_errors"] = float(_counter_sum(self.s.ecc_files) - self._ecc0)
        if self._swap0 is not None and elapsed > 0:
            pages = _swap_pages(self.s.root) - self._swap0
            v["swap_thrashing_mb_per_s"] = pages * os.sysconf("SC_PAGE_SIZE") / 1e6 / elapsed
        reasons = {
            m: self.missing.get(m, "no sample in this trial") for m, x in v.items() if x is None
        }
        return Reading(values=v, reasons=reasons)
