"""storage: fio and file-system scripts; I/O shape genes are shadow, block/VM knobs real, mount options frozen."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from dream.genome import Gene, Setting, gene
from dream.host import HostInfo

SCHEDULERS = ("none", "mq-deadline", "kyber", "bfq")
ASPM = ("default", "performance", "powersave", "powersupersave")
METRICS: tuple[str, ...] = ()
_QUEUE = "sys/block/{blockdev}/queue"


def genes(host: HostInfo) -> tuple[Gene, ...]:
    """The storage genome on this host."""
    vm = "proc/sys/vm"
    return (
        gene("queue_depth_log2", "5..10", 5, host, workload=True),
        gene("io_size_kb_log2", "2..9", 2, host, workload=True),
        gene(
            "scheduler_idx",
            "",
            1,
            host,
            choices=SCHEDULERS,
            setting=Setting((f"{_QUEUE}/scheduler",), encode="choice", bracketed=True),
        ),
        gene(
            "readahead_kb",
            "128..4096/256",
            128,
            host,
            setting=Setting((f"{_QUEUE}/read_ahead_kb",)),
        ),
        gene("dirty_ratio", "5..40/5", 20, host, setting=Setting((f"{vm}/dirty_ratio",))),
        gene(
            "dirty_background_ratio",
            "1..20/2",
            11,
            host,
            setting=Setting((f"{vm}/dirty_background_ratio",)),
        ),
        gene(
            "dirty_expire_centisecs",
            "300..3000/300",
            3000,
            host,
            setting=Setting((f"{vm}/dirty_expire_centisecs",)),
        ),
        gene(
            "aspm_policy",
            "",
            0,
            host,
            choices=ASPM,
            setting=Setting(
                ("sys/module/pcie_aspm/parameters/policy",), encode="choice", bracketed=True
            ),
        ),
        gene("commit_interval", "5..60/5", 5, host),
        gene("compression_level", "1..9", 3, host),
        gene("apst_enabled", "0..1", 1, host),
        gene("noatime", "0..1", 0, host),
        gene("compression_enabled", "0..1", 0, host),
    )


def workload_params(genome: Mapping[str, Any], host: HostInfo) -> dict[str, str]:
    """fio queue depth and block size (powers of two)."""
    return {
        "qd": str(2 ** genome["queue_depth_log2"]),
        "bs": str(2 ** genome["io_size_kb_log2"]),
    }


def unavailable(host: HostInfo) -> str | None:
    """Why storage trials cannot run here (None when they can)."""
    return None if shutil.which("fio") else "fio is not installed"
