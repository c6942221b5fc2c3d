"""What this host is: CPU count, tool versions, the fingerprint and code hash that baselines pin."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DREAM_ROOT = (
    Path(__file__).resolve().parents[1]
)  # the `dream/` folder: regimes.yaml, caps.yaml, scripts/
PACKAGE_ROOT = Path(__file__).resolve().parent
SCRIPTS_DIR = DREAM_ROOT / "scripts"


@dataclass(frozen=True)
class HostInfo:
    """The facts about a host that gene ranges and workloads depend on."""

    cpus: tuple[int, ...]  # the CPUs this process may run on
    tdp_w: float | None = (
        None  # package power limit PL1 from RAPL, the nearest thing to TDP a host exposes
    )

    @property
    def ncpu(self) -> int:
        """How many CPUs workloads may use."""
        return len(self.cpus)

    @classmethod
    def detect(cls, sysfs_root: str | os.PathLike = "/") -> HostInfo:
        """Read the usable CPU count and, where RAPL exposes it, the package power limit."""
        pl1 = Path(sysfs_root, "sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw")
        try:
            tdp = int(pl1.read_text().strip()) / 1e6
        except (OSError, ValueError):
            tdp = None
        return cls(cpus=tuple(sorted(os.sched_getaffinity(0))), tdp_w=tdp)


def _first_line(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


@cache
def tool_versions() -> dict[str, str | None]:
    """Version lines of the workload tools (None where a tool is not installed)."""
    return {
        "stress-ng": _first_line(["stress-ng", "--version"]),
        "fio": _first_line(["fio", "--version"]),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_fingerprint() -> dict[str, object]:
    """CPU model, CPU count, kernel and tool versions: what makes timings comparable."""
    return {
        "cpu_model": _cpu_model(),
        "ncpu": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "tools": tool_versions(),
    }


def _machine_id(root: Path) -> str | None:
    for rel in ("etc/machine-id", "var/lib/dbus/machine-id"):
        try:
            text = (root / rel).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return None


def host_identity(root: str | os.PathLike = "/") -> dict[str, object]:
    """Which machine a pack was measured on: hostname, machine id, kernel, CPU model, core count."""
    return {
        "hostname": platform.node().split(".")[0],
        "machine_id": _machine_id(Path(root)),
        "kernel": platform.release(),
        "cpu_model": _cpu_model(),
        "ncpu": os.cpu_count() or 1,
    }


def same_host(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
    """The identity fields (hostname aside: it names, it does not identify) where two hosts differ."""
    keys = ("machine_id", "kernel", "cpu_model", "ncpu")
    return [k for k in keys if a.get(k) != b.get(k)]


def sha256_text(text: str) -> str:
    """sha256 hex digest of UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def code_hash() -> str:
    """sha256 over the package sources and workload scripts, so a code change invalidates baselines."""
    h = hashlib.sha256()
    files = sorted(PACKAGE_ROOT.rglob("*.py")) + sorted(SCRIPTS_DIR.rglob("*.py"))
    for path in files:
        h.update(str(path.relative_to(DREAM_ROOT)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def block_device(path: str | os.PathLike) -> str | None:
    """The whole-disk block device (e.g. `vda`) holding `path`, or None for virtual file systems."""
    st = os.stat(path)
    node = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if not node.exists():
        return None
    real = node.resolve()
    return real.parent.name if (real / "partition").exists() else real.name
