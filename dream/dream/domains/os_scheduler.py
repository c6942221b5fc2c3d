"""os_scheduler: stress-ng context-switch work; workers and policy are shadow, sched/vm sysctls real."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from dream.domains.cpu import GOVERNORS
from dream.genome import Gene, Setting, gene
from dream.host import HostInfo

POLICIES = ("other", "batch")
THP = ("never", "madvise", "always")
METRICS: tuple[str, ...] = ()


def _sched(name: str) -> Setting:
    # Kernels >= 5.13 moved these from /proc/sys/kernel to debugfs; whichever exists is written.
    return Setting((f"proc/sys/kernel/sched_{name}", f"sys/kernel/debug/sched/{name}"))


def genes(host: HostInfo) -> tuple[Gene, ...]:
    """The os_scheduler genome on this host."""
    vm, kernel, thp = "proc/sys/vm", "proc/sys/kernel", "sys/kernel/mm/transparent_hugepage"
    return (
        gene(
            "cpu_governor_idx",
            "",
            2,
            host,
            choices=GOVERNORS,
            setting=Setting(
                ("sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor",), encode="choice"
            ),
        ),
        gene(
            "sched_migration_cost_ns",
            "1e5..1e7/1e5",
            5e5,
            host,
            setting=_sched("migration_cost_ns"),
        ),
        gene(
            "sched_min_granularity_ns",
            "1e6..1e7/5e5",
            3e6,
            host,
            setting=_sched("min_granularity_ns"),
        ),
        gene(
            "sched_wakeup_granularity_ns",
            "1e6..2e7/1e6",
            4e6,
            host,
            setting=_sched("wakeup_granularity_ns"),
        ),
        gene("irq_cpu_isolation", "0..0.5/0.1", 0, host),
        gene("vm_swappiness", "0..100/10", 60, host, setting=Setting((f"{vm}/swappiness",))),
        gene(
            "vm_vfs_cache_pressure",
            "50..200/25",
            100,
            host,
            setting=Setting((f"{vm}/vfs_cache_pressure",)),
        ),
        gene("vm_dirty_ratio", "5..40/5", 20, host, setting=Setting((f"{vm}/dirty_ratio",))),
        gene(
            "vm_dirty_background_ratio",
            "1..20/2",
            11,
            host,
            setting=Setting((f"{vm}/dirty_background_ratio",)),
        ),
        gene(
            "vm_min_free_kbytes",
            "16384..524288/32768",
            81920,
            host,
            setting=Setting((f"{vm}/min_free_kbytes",)),
        ),
        gene(
            "thp_enabled",
            "",
            1,
            host,
            choices=THP,
            setting=Setting((f"{thp}/enabled",), encode="choice", bracketed=True),
        ),
        gene(
            "thp_defrag",
            "",
            1,
            host,
            choices=THP,
            setting=Setting((f"{thp}/defrag",), encode="choice", bracketed=True),
        ),
        gene("zram_size_pct", "0..50/10", 0, host),
        gene("zram_compression", "0..3", 0, host),
        gene("irq_balance_enabled", "0..1", 1, host),
        gene(
            "numa_balancing",
            "0..1",
            0,
            host,
            setting=Setting((f"{kernel}/numa_balancing",), encode="bool01"),
        ),
        gene(
            "zone_reclaim_mode",
            "0..1",
            0,
            host,
            setting=Setting((f"{vm}/zone_reclaim_mode",), encode="bool01"),
        ),
        gene("zram_enabled", "0..1", 0, host),
        gene(
            "autogroup_enabled",
            "0..1",
            1,
            host,
            setting=Setting((f"{kernel}/sched_autogroup_enabled",), encode="bool01"),
        ),
        gene(
            "sched_child_runs_first",
            "0..1",
            0,
            host,
            setting=Setting((f"{kernel}/sched_child_runs_first",), encode="bool01"),
        ),
        gene("workers", "1..ncpu", "ncpu", host, workload=True),
        gene("sched_policy_idx", "", 0, host, workload=True, choices=POLICIES),
    )


def workload_params(genome: Mapping[str, Any], host: HostInfo) -> dict[str, str]:
    """Context-switch workers and the scheduling policy stress-ng runs them under."""
    return {
        "w": str(genome["workers"]),
        "sched": f"--sched {POLICIES[genome['sched_policy_idx']]}",
        "taskset": ",".join(map(str, host.cpus)),
    }


def unavailable(host: HostInfo) -> str | None:
    """Why os_scheduler trials cannot run here (None when they can)."""
    return None if shutil.which("stress-ng") else "stress-ng is not installed"
