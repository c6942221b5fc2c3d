"""gpu: torch CUDA work (matmul, transformer-block inference); shadow genes shape how it runs."""

from __future__ import annotations

import glob
from collections.abc import Mapping
from typing import Any

from dream.genome import Gene, gene
from dream.host import HostInfo

PRECISIONS = ("fp32", "fp16", "bf16")
METRICS = ("power_draw_w",)


def genes(host: HostInfo) -> tuple[Gene, ...]:
    """The gpu genome; power and clock offsets need vendor tools and stay frozen."""
    return (
        gene("precision_mode", "", 0, host, workload=True, choices=PRECISIONS),
        gene("batch_size", "1..32", 8, host, workload=True),
        gene("cuda_streams", "1..8", 1, host, workload=True),
        gene("context_length", "512..8192/512", 1024, host, workload=True),
        gene("cuda_graphs_enabled", "0..1", 0, host, workload=True),
        gene("power_limit_pct", "50..100/10", 100, host),
        gene("mem_clock_offset", "-500..500/100", 0, host),
        gene("gpu_clock_offset", "-200..200/50", 0, host),
        gene("pcie_bar_size", "0..1", 0, host),
    )


def workload_params(genome: Mapping[str, Any], host: HostInfo) -> dict[str, str]:
    """Arguments of scripts/gpu_work.py."""
    return {
        "gpu_args": (
            f"--precision {PRECISIONS[genome['precision_mode']]} --batch {genome['batch_size']} "
            f"--streams {genome['cuda_streams']} --context {genome['context_length']}"
            + (" --cuda-graphs" if genome["cuda_graphs_enabled"] else "")
        )
    }


def unavailable(host: HostInfo) -> str | None:
    """Why gpu trials cannot run here (None when they can)."""
    if not glob.glob("/dev/nvidia[0-9]*"):
        return "no NVIDIA GPU device (/dev/nvidia* absent)"
    return None
