"""power_thermal: stress-ng load under package power limits; needs RAPL to measure what it tunes."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dream.genome import Gene, Setting, gene
from dream.host import HostInfo

METRICS = ("cpu_temp_c", "gpu_temp_c", "dimm_temp_c", "nvme_temp_c", "psu_temp_c")
_RAPL = "sys/class/powercap/intel-rapl:0"


def genes(host: HostInfo) -> tuple[Gene, ...]:
    """The power_thermal genome; PL1/PL2 are real RAPL limits, the rest firmware (frozen)."""
    uw = 1e6  # RAPL limits are written in microwatts, genes are in watts
    firmware = [
        ("cpu_ppt", "35..1.5tdp/5", "tdp"),
        ("cpu_edc", "50..200/10", 150),
        ("cpu_tdc", "40..160/10", 100),
        ("gpu_power_limit_pct", "50..120/5", 100),
        ("cpu_fan_idle", "50..100/10", 70),
        ("cpu_fan_load", "100..255/10", 200),
        ("cpu_fan_temp_low", "30..50/5", 40),
        ("cpu_fan_temp_high", "60..85/5", 75),
        ("case_fan_idle", "30..80/10", 50),
        ("case_fan_load", "80..255/10", 200),
        ("cpu_undervolt_mv", "-150..0/10", 0),
        ("gpu_undervolt_mv", "-100..0/10", 0),
        ("cache_undervolt_mv", "-100..0/10", 0),
        ("package_c_state_limit", "0..8", 8),
        ("boost_duration_ms", "1000..60000/1000", 28000),
        ("c_states_enabled", "0..1", 1),
        ("boost_enabled", "0..1", 1),
    ]
    return (
        gene(
            "cpu_pl1",
            "15..tdp/5",
            "tdp",
            host,
            setting=Setting((f"{_RAPL}/constraint_0_power_limit_uw",), scale=uw),
        ),
        gene(
            "cpu_pl2",
            "tdp..2tdp/10",
            "1.25tdp",
            host,
            setting=Setting((f"{_RAPL}/constraint_1_power_limit_uw",), scale=uw),
        ),
        *(gene(name, spec, default, host) for name, spec, default in firmware),
    )


def workload_params(genome: Mapping[str, Any], host: HostInfo) -> dict[str, str]:
    """All CPUs work; the genome acts on power limits, not on the work."""
    return {"w": str(host.ncpu), "taskset": ",".join(map(str, host.cpus))}


def unavailable(host: HostInfo) -> str | None:
    """Why power_thermal trials cannot run here (None when they can)."""
    if not shutil.which("stress-ng"):
        return "stress-ng is not installed"
    if not any(Path("/sys/class/powercap").glob("intel-rapl:*")) or host.tdp_w is None:
        return (
            "no RAPL power zones (/sys/class/powercap): package power cannot be measured or limited"
        )
    return None
