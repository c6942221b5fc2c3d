"""cpu: stress-ng CPU work; shadow genes set workers and CPU affinity, real ones the cpufreq/SMT knobs."""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping
from typing import Any

from dream.genome import Gene, Setting, gene
from dream.host import HostInfo

GOVERNORS = ("performance", "powersave", "schedutil", "ondemand", "conservative")
METRICS = ("package_power_w", "thermal_throttle_events")
_CPUFREQ = "sys/devices/system/cpu/cpu[0-9]*/cpufreq"


def genes(host: HostInfo) -> tuple[Gene, ...]:
    """The cpu genome on this host."""
    return (
        gene("core_utilization", "0.25..1/0.25", 1.0, host, workload=True),
        gene("thread_count", "1..ncpu", "ncpu", host, workload=True),
        gene(
            "hugepages_mb",
            "0..2048/256",
            0,
            host,
            workload=True,
            setting=Setting(("proc/sys/vm/nr_hugepages",), scale=0.5),
        ),
        gene(
            "governor_idx",
            "",
            2,
            host,
            choices=GOVERNORS,
            setting=Setting((f"{_CPUFREQ}/scaling_governor",), encode="choice"),
        ),
        gene(
            "smt_enabled",
            "0..1",
            1,
            host,
            setting=Setting(("sys/devices/system/cpu/smt/control",), encode="onoff"),
        ),
        gene(
            "epp_value",
            "0..255/15",
            120,
            host,
            setting=Setting((f"{_CPUFREQ}/energy_performance_preference",)),
        ),
        gene(
            "turbo_enabled",
            "0..1",
            1,
            host,
            setting=Setting(("sys/devices/system/cpu/intel_pstate/no_turbo",), encode="inverted01"),
        ),
    )


def workload_params(genome: Mapping[str, Any], host: HostInfo) -> dict[str, str]:
    """Workers, the CPUs they may use, and hugepage madvise for the vm part of `mixed`."""
    n = max(1, math.ceil(genome["core_utilization"] * host.ncpu))
    return {
        "w": str(genome["thread_count"]),
        "taskset": ",".join(str(c) for c in host.cpus[:n]),
        "madv": "--vm-madvise hugepage" if genome["hugepages_mb"] > 0 else "",
    }


def unavailable(host: HostInfo) -> str | None:
    """Why cpu trials cannot run here (None when they can)."""
    return None if shutil.which("stress-ng") else "stress-ng is not installed"
