"""memory: stress-ng vm/stream work; DRAM timings are firmware (frozen), workers and madvise are shadow."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from dream.genome import Gene, gene
from dream.host import HostInfo

MADVISE = ("none", "hugepage", "nohugepage")
METRICS = ("ecc_errors", "swap_thrashing_mb_per_s")


def genes(host: HostInfo) -> tuple[Gene, ...]:
    """The memory genome on this host."""
    firmware = [
        ("freq_idx", "0..7", 0),
        ("tcl", "28..40/2", 40),
        ("trcd", "28..40/2", 40),
        ("trp", "28..40/2", 40),
        ("tras", "50..80/2", 80),
        ("trc", "70..120/2", 120),
        ("trfc", "250..650/50", 650),
        ("trefi", "7800..15600/1000", 7800),
        ("tfaw", "16..48/4", 32),
        ("command_rate", "0..1", 1),
        ("vdd", "1100..1400/25", 1100),
        ("vddq", "1100..1400/25", 1100),
        ("vpp", "1700..1900/25", 1800),
        ("vdd2", "1000..1200/25", 1100),
    ]
    return (
        *(gene(name, spec, default, host) for name, spec, default in firmware),
        gene("vm_workers", "1..ncpu", "ncpu", host, workload=True),
        gene("vm_madvise_idx", "", 0, host, workload=True, choices=MADVISE),
    )


def workload_params(genome: Mapping[str, Any], host: HostInfo) -> dict[str, str]:
    """vm/stream workers and the madvise hint for their buffers."""
    madv = MADVISE[genome["vm_madvise_idx"]]
    return {
        "w": str(genome["vm_workers"]),
        "madv": "" if madv == "none" else f"--vm-madvise {madv}",
        "taskset": ",".join(map(str, host.cpus)),
    }


def unavailable(host: HostInfo) -> str | None:
    """Why memory trials cannot run here (None when they can)."""
    return None if shutil.which("stress-ng") else "stress-ng is not installed"
