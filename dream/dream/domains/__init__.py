"""The nine domains: their genes, how genes reach the workload, and whether this host can run them."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from dream.actuators import Actuation
from dream.genome import GenomeSpec
from dream.host import HostInfo
from labkit.errors import ConfigError

DOMAINS = (
    "cpu",
    "memory",
    "storage",
    "os_scheduler",
    "gpu",
    "audio",
    "asr_tts",
    "power_thermal",
    "conversation",
)
KPIS = ("perf", "p95_ms", "watts", "temp_peak_c", "errors", "oom")


def domain_module(name: str) -> ModuleType:
    """The module defining a domain's genes, metrics, workload parameters and availability."""
    if name not in DOMAINS:
        raise ConfigError(f"unknown domain {name!r} (known: {', '.join(DOMAINS)})")
    return importlib.import_module(f"dream.domains.{name}")


def metrics(name: str) -> tuple[str, ...]:
    """Every quantity a cap of this domain may name: the KPIs plus the domain's own sensors."""
    return KPIS + tuple(domain_module(name).METRICS)


@dataclass(frozen=True)
class DomainStatus:
    """Whether a domain can be evaluated on this host, and if not, why."""

    domain: str
    available: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        """The telemetry form: `{domain, status, reason}`."""
        status = "available" if self.available else "unavailable"
        return {"domain": self.domain, "status": status, "reason": self.reason}


def domain_status(name: str, host: HostInfo) -> DomainStatus:
    """Check a domain on this host without running anything."""
    reason = domain_module(name).unavailable(host)
    return DomainStatus(name, reason is None, reason)


def require_available(names: Iterable[str], host: HostInfo) -> None:
    """Fail before any work if a domain asked for by name cannot run here."""
    for name in names:
        status = domain_status(name, host)
        if not status.available:
            raise ConfigError(f"domain {name} is unavailable on this host: {status.reason}")


def genome_spec(name: str, host: HostInfo, actuation: Actuation) -> GenomeSpec:
    """The domain's genes on this host, with every gene the actuation cannot move frozen.

    Under real actuation a writable gene's stock is the host's current value (read before the
    first write), not the code's default: the stock baseline must be the host as it is.
    """
    genes = domain_module(name).genes(host)
    frozen = actuation.frozen(name, genes)
    if actuation.mode == "real":
        values, why = actuation.host_stock(name, genes)
        genes = tuple(
            dataclasses.replace(g, default=values[g.name]) if g.name in values else g for g in genes
        )
        frozen.update(why)
    return GenomeSpec(name, genes, frozen)
