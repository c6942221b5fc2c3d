"""Load regimes.yaml and caps.yaml, validate them, and resolve one profile's execution policy."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dream.domains import DOMAINS, KPIS, domain_module, metrics
from dream.genome import resolve_number
from dream.host import DREAM_ROOT, HostInfo
from labkit.config import apply_overrides, config_hash, load_yaml, validate
from labkit.errors import ConfigError

REGIMES = ("idle", "normal", "stress", "mixed")
SCHEMAS = Path(__file__).resolve().parent / "schemas"
DEFAULT_REGIMES = DREAM_ROOT / "regimes.yaml"
DEFAULT_CAPS = DREAM_ROOT / "caps.yaml"


@dataclass(frozen=True)
class ExecutionPolicy:
    """How many trials a regime gets and when the evaluator stops, retries or gives up."""

    trials: int  # the most trials a regime runs (failed ones count)
    min_trials: int  # adaptive stopping is considered from here on
    rel_halfwidth: (
        float | None
    )  # stop once perf CI half-width / |mean| is below this; None: fixed count
    trial_delay_s: float
    failure_retry_count: int  # extra attempts of a failing trial before it counts as failed
    timeout_multiplier: float
    timeout_extra_s: float
    max_trial_duration_seconds: float
    min_successful_trials: int
    max_trial_failures: int

    def timeout_for(self, duration_s: float) -> float:
        """Wall-clock limit of one attempt of a trial that runs `duration_s`."""
        return min(
            self.timeout_multiplier * duration_s + self.timeout_extra_s,
            self.max_trial_duration_seconds,
        )

    def screening(self) -> ExecutionPolicy:
        """The policy of a screening pass: exactly min_trials trials, no adaptive extension."""
        n = self.min_trials
        return dataclasses.replace(
            self,
            trials=n,
            rel_halfwidth=None,
            min_successful_trials=min(self.min_successful_trials, n),
        )


@dataclass(frozen=True)
class Tolerance:
    """What counts as an improvement over the stock baseline."""

    perf_improvement_pct: float
    perf_alpha: float
    latency_regression_pct: float
    power_regression_pct: float
    noninferiority_margin_pct: float


@dataclass(frozen=True)
class DreamConfig:
    """Validated regimes + caps, resolved for one profile."""

    regimes: Mapping[str, Any]
    caps: Mapping[str, Any]
    profile: str
    policy: ExecutionPolicy
    tolerance: Tolerance

    @property
    def real_allowlist(self) -> tuple[str, ...]:
        """Genes (domain.gene) that real actuation may write."""
        return tuple(self.caps["real_allowlist"])

    @property
    def required_kpis(self) -> tuple[str, ...]:
        """KPIs a trial must report when this host can measure them."""
        return tuple(self.regimes["kpis"]["required"])

    @property
    def sampling_ms(self) -> float:
        """Sensor sampling period."""
        return float(self.regimes["kpis"]["sampling_ms"])

    @property
    def probe(self) -> tuple[float, float]:
        """Wakeup probe (sleep_ms, period_ms)."""
        p = self.regimes["kpis"]["probe"]
        return float(p["sleep_ms"]), float(p["period_ms"])

    @property
    def fio_size(self) -> str | None:
        """fio --size that replaces each regime's own under this profile (None: keep theirs)."""
        return self.regimes["profiles"][self.profile]["fio_size"]

    @property
    def screen(self) -> tuple[bool, int]:
        """(screening enabled, how many screened candidates get the full four-regime evaluation)."""
        s = self.regimes["profiles"][self.profile]["screen"]
        return bool(s["enabled"]), int(s["top_k"])

    @property
    def drift(self) -> Mapping[str, Any]:
        """Drift check: every_generations (0: never), trials, alpha, min_change_pct."""
        return self.regimes["profiles"][self.profile]["drift"]

    @property
    def quiet_host(self) -> Mapping[str, Any]:
        """Quiet-host gate: max_foreign_cpus (None: off), probe_s, wait_s."""
        return self.regimes["profiles"][self.profile]["quiet_host"]

    @property
    def log_ratio(self) -> Mapping[str, Any]:
        """Floors per KPI and the clip |ln ratio| <= max_abs of every paired ratio and score term."""
        return self.regimes["kpis"]["log_ratio"]

    def regime_genes(self, domain: str, regime: str) -> tuple[str, ...]:
        """The workload genes that can change a regime's work (real settings act on every regime)."""
        return tuple(self.regime(domain, regime)["genes"])

    @property
    def max_pending_approvals(self) -> int:
        """How many packs of one domain may wait for a human decision at once."""
        return int(self.caps["approvals"]["max_pending"])

    def sha256(self) -> str:
        """Hash of both resolved documents (after overrides), for manifests."""
        return config_hash({"regimes": dict(self.regimes), "caps": dict(self.caps)})

    def duration_s(self, regime: str) -> float:
        """How long one trial of `regime` runs under this profile."""
        return float(self.regimes["profiles"][self.profile]["durations_s"][regime])

    def regime(self, domain: str, regime: str) -> Mapping[str, Any]:
        """The workload entry of (domain, regime)."""
        if regime not in REGIMES:
            raise ConfigError(f"unknown regime {regime!r} (known: {', '.join(REGIMES)})")
        return self.regimes["domains"][domain][regime]

    def regime_hash(self, domain: str, regime: str) -> str:
        """sha256 of what defines a regime's trials: the workload, duration, fio size, KPI rules."""
        return config_hash(
            {
                "workload": dict(self.regime(domain, regime)),
                "duration_s": self.duration_s(regime),
                "fio_size": self.fio_size,
                "kpis": dict(self.regimes["kpis"]),
            }
        )

    def domain_caps(self, domain: str, host: HostInfo) -> dict[str, float]:
        """The caps of a domain with host multiples (`2*ncpu`) resolved."""
        caps = self.caps["domains"].get(domain) or {}
        return {name: resolve_number(limit, host) for name, limit in caps.items()}


def _check_names(regimes: Mapping[str, Any], caps: Mapping[str, Any]) -> None:
    kpis = regimes["kpis"]
    named = list(kpis["required"]) + list(kpis["optional"])
    unknown = [k for k in named if k not in KPIS]
    if unknown:
        raise ConfigError(f"regimes.yaml: unknown KPI {unknown[0]!r} (known: {', '.join(KPIS)})")
    missing = [k for k in KPIS if k not in named]
    if missing or len(named) != len(set(named)):
        raise ConfigError(
            f"regimes.yaml: kpis must list each of {', '.join(KPIS)} once (required or optional)"
        )
    for domain, domain_caps in caps["domains"].items():
        known = metrics(domain)
        for name in domain_caps or {}:
            if name not in known:
                raise ConfigError(
                    f"caps.yaml: unknown cap {name!r} for {domain} (known: {', '.join(known)})"
                )
    # Gene names do not depend on the host; a host with every quantity known resolves every domain.
    names_host = HostInfo(cpus=(0, 1), tdp_w=100.0)
    for domain, entries in regimes["domains"].items():
        workload = {g.name for g in domain_module(domain).genes(names_host) if g.workload}
        for regime, entry in entries.items():
            bad = [g for g in entry["genes"] if g not in workload]
            if bad:
                raise ConfigError(
                    f"regimes.yaml domains.{domain}.{regime}.genes: {bad[0]!r} is not a workload "
                    f"gene of {domain} (known: {', '.join(sorted(workload)) or 'none'})"
                )
    for entry in caps["real_allowlist"]:
        domain, _, gene_name = entry.partition(".")
        if domain not in DOMAINS:
            raise ConfigError(f"caps.yaml: real_allowlist names unknown domain in {entry!r}")
        try:
            genes = {g.name: g for g in domain_module(domain).genes(HostInfo.detect())}
        except ConfigError:
            continue  # genes that depend on what this host lacks (tdp) cannot be actuated here anyway
        if gene_name not in genes or genes[gene_name].setting is None:
            raise ConfigError(
                f"caps.yaml: real_allowlist entry {entry!r} is not a gene with a real setting"
            )


def _policy(regimes: Mapping[str, Any], caps: Mapping[str, Any], profile: str) -> ExecutionPolicy:
    if profile not in regimes["profiles"]:
        known = ", ".join(regimes["profiles"])
        raise ConfigError(f"unknown profile {profile!r} (known: {known})")
    # The profile may tighten or loosen caps.yaml's global trial limits for itself.
    merged = {**caps["global"], **regimes["profiles"][profile]["execution"]}
    policy = ExecutionPolicy(**merged)
    if policy.min_trials > policy.trials:
        raise ConfigError(
            f"profile {profile}: min_trials {policy.min_trials} exceeds trials {policy.trials}"
        )
    if policy.min_successful_trials > policy.trials:
        raise ConfigError(
            f"profile {profile}: min_successful_trials {policy.min_successful_trials} "
            f"exceeds trials {policy.trials}"
        )
    return policy


def load_config(
    regimes_path: str | os.PathLike = DEFAULT_REGIMES,
    caps_path: str | os.PathLike = DEFAULT_CAPS,
    *,
    profile: str = "local",
    overrides: Iterable[str] = (),
) -> DreamConfig:
    """Load, override (`regimes.a.b=v`, `caps.a.b=v`), validate and resolve both files for a profile."""
    docs = {"regimes": load_yaml(regimes_path), "caps": load_yaml(caps_path)}
    for text in overrides:
        target, dot, rest = text.partition(".")
        if target not in docs or not dot:
            raise ConfigError(f"override {text!r} must start with 'regimes.' or 'caps.'")
        docs[target] = apply_overrides(docs[target], [rest])
    validate(docs["regimes"], SCHEMAS / "regimes.schema.json", what=str(regimes_path))
    validate(docs["caps"], SCHEMAS / "caps.schema.json", what=str(caps_path))
    _check_names(docs["regimes"], docs["caps"])
    t = docs["caps"]["tolerance"]
    return DreamConfig(
        regimes=docs["regimes"],
        caps=docs["caps"],
        profile=profile,
        policy=_policy(docs["regimes"], docs["caps"], profile),
        tolerance=Tolerance(**t),
    )
