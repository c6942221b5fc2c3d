"""Build the command of one trial: the regime's fixed work, shaped by the genome's workload genes."""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dream.config import DreamConfig
from dream.domains import domain_module
from dream.host import SCRIPTS_DIR, HostInfo
from labkit.errors import ConfigError

FIO_BUFFERED = (
    "fio --direct=0: the scratch file system refuses O_DIRECT, so I/O went through the page cache"
)


@dataclass(frozen=True)
class WorkloadCommand:
    """What to run for one trial attempt and where its output lands."""

    kind: str  # stress-ng | fio | script
    argv: tuple[str, ...]
    duration_s: float
    stressor: str | None = None  # stress-ng: the stressor whose bogo-ops/s is perf
    yaml_path: Path | None = None  # stress-ng: the --yaml metrics file
    notes: tuple[str, ...] = ()  # where this run departs from the regime's definition


def supports_o_direct(directory: Path) -> bool:
    """Whether files in `directory` can be opened with O_DIRECT (tmpfs and some overlays refuse)."""
    probe = directory / ".o_direct_probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    probe.unlink(missing_ok=True)
    return True


def _fill(template: str, params: Mapping[str, str], where: str) -> list[str]:
    try:
        text = template.format(**params)
    except KeyError as exc:
        raise ConfigError(
            f"{where}: args use {{{exc.args[0]}}}, which this domain does not set"
        ) from None
    return shlex.split(text)


def build_command(
    cfg: DreamConfig,
    domain: str,
    regime: str,
    genome: Mapping[str, Any],
    host: HostInfo,
    *,
    scratch: Path,
    seed: int,
) -> WorkloadCommand:
    """The argv of one trial of (domain, regime) for `genome`, writing only under `scratch`."""
    entry = cfg.regime(domain, regime)
    where = f"regimes.yaml domains.{domain}.{regime}"
    if entry["workload"] == "none":
        raise ConfigError(f"{where}: no workload ships for this regime ({entry['work']})")
    params = domain_module(domain).workload_params(genome, host)
    args = _fill(entry["args"], params, where)
    duration = cfg.duration_s(regime)
    seconds = str(max(1, round(duration)))  # stress-ng and fio take whole seconds
    if entry["workload"] == "stress-ng":
        yaml_path = scratch / "metrics.yaml"
        taskset = params.get("taskset", ",".join(map(str, host.cpus)))
        argv = ["stress-ng", *args, "--timeout", f"{seconds}s", "--metrics"]
        # Paths relative to the scratch dir it runs in: as `nobody` (runner) it may not traverse
        # the out_root's parents. --temp-path keeps its files there, --oomable stops it from
        # respawning a stressor the OOM killer took.
        argv += ["--yaml", yaml_path.name, "--temp-path", ".", "--oomable"]
        argv += ["--seed", str(seed), "--taskset", taskset]
        return WorkloadCommand("stress-ng", tuple(argv), duration, entry["stressor"], yaml_path)
    if entry["workload"] == "fio":
        if cfg.fio_size is not None:
            args = [re.sub(r"^--size=.*", f"--size={cfg.fio_size}", a) for a in args]
        argv = ["fio", "--name=dream", f"--directory={scratch}", *args, "--output-format=json"]
        argv += [f"--randseed={seed}", "--time_based", f"--runtime={seconds}"]
        direct = supports_o_direct(scratch)
        argv += ["--ioengine=libaio", f"--direct={int(direct)}"]
        notes = () if direct else (FIO_BUFFERED,)
        return WorkloadCommand("fio", tuple(argv), duration, notes=notes)
    script = SCRIPTS_DIR / entry["script"]
    if not script.is_file():
        raise ConfigError(f"{where}: script {script} does not exist")
    argv = [sys.executable, str(script), "--duration", f"{duration:g}", "--scratch", str(scratch)]
    argv += ["--seed", str(seed), *args]
    return WorkloadCommand("script", tuple(argv), duration)
