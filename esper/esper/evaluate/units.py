"""The evaluated policies as units: `ppo:DIR` (one trained Tamiyo per training seed; DIR may be a
glob) or a baseline name, all checked before any episode runs."""

from __future__ import annotations

import glob
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esper.evaluate.summary import BASELINES, LEARNED
from esper.kasmina import action_enum
from esper.tamiyo.ppo_policy import load_ppo_policy
from labkit.config import load_yaml
from labkit.errors import ConfigError, MissingInputError

POLICY_FILE = "policy.pt"
RUN_CONFIG = "config_resolved.yaml"
# The blocks that define the environment: a Tamiyo is evaluated only where it was trained.
ENV_BLOCKS = ("task", "data", "host", "slots", "optimizer", "governor", "reward", "gating")


@dataclass(frozen=True)
class Unit:
    """One evaluated policy instance: a baseline, or PPO trained with seed `unit` in run `source`."""

    policy: str
    unit: int | None = None
    source: str | None = None

    @property
    def label(self) -> str:
        """`ppo_s3`, `random`, ..."""
        return self.policy if self.unit is None else f"{self.policy}_s{self.unit}"

    @property
    def policy_path(self) -> Path | None:
        """The trained policy file, for PPO."""
        return None if self.source is None else Path(self.source) / POLICY_FILE


def expand_specs(specs: list[str]) -> list[str]:
    """Expand `ppo:GLOB` into one `ppo:DIR` per matching directory (sorted); others pass through."""
    out: list[str] = []
    for spec in specs:
        kind, sep, where = spec.partition(":")
        if kind == LEARNED and sep and glob.has_magic(where):
            # Run directories often sit beside their logs (runs/ppo_s0, runs/ppo_s0.log).
            matches = sorted(m for m in glob.glob(where) if Path(m).is_dir())
            if not matches:
                raise MissingInputError(f"policy {spec}: the glob matches no PPO run directory")
            out += [f"{LEARNED}:{m}" for m in matches]
        else:
            out.append(spec)
    return out


def _diff(a: Any, b: Any, where: str) -> str | None:
    """The first dotted key where `a` and `b` differ, or None."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            found = _diff(a.get(key), b.get(key), f"{where}.{key}")
            if found:
                return found
        return None
    return None if a == b else f"{where} (eval {a!r}, training {b!r})"


def _ppo_unit(where: str, cfg: Mapping[str, Any]) -> Unit:
    run = Path(where)
    if not (run / POLICY_FILE).is_file():
        raise MissingInputError(
            f"policy ppo:{where}: no {POLICY_FILE} in {run} (train-tamiyo first)"
        )
    if not (run / RUN_CONFIG).is_file():
        raise MissingInputError(
            f"policy ppo:{where}: no {RUN_CONFIG} in {run}; not a run directory"
        )
    trained = load_yaml(run / RUN_CONFIG)
    for block in ENV_BLOCKS:
        found = _diff(cfg.get(block), trained.get(block), block)
        if found:
            raise ConfigError(f"policy ppo:{where} was trained on another environment: {found}")
    policy = load_ppo_policy(run / POLICY_FILE)
    actions = [a.name for a in action_enum(cfg["task"]["topology"])]
    if policy.actions != actions:
        raise ConfigError(
            f"policy ppo:{where} acts over {policy.actions}, this task over {actions}"
        )
    return Unit(LEARNED, int(trained["seed"]), where)


def resolve_units(specs: list[str], cfg: Mapping[str, Any]) -> list[Unit]:
    """The units of `specs` (already glob-expanded): PPO seeds sorted, then the baselines as given."""
    ppo: list[Unit] = []
    baselines: list[Unit] = []
    for spec in specs:
        kind, sep, where = spec.partition(":")
        if kind == LEARNED and sep and where:
            ppo.append(_ppo_unit(where, cfg))
        elif spec in BASELINES:
            baselines.append(Unit(spec))
        else:
            known = ", ".join([f"{LEARNED}:DIR", *BASELINES])
            raise ConfigError(f"unknown policy {spec!r}; known: {known}")
    seeds = [u.unit for u in ppo]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"PPO runs share a training seed ({seeds}); each seed is one unit")
    if len({u.policy for u in baselines}) != len(baselines):
        raise ConfigError(f"a baseline is listed twice in {specs}")
    if not ppo and not baselines:
        raise ConfigError("no policies to evaluate")
    return sorted(ppo, key=lambda u: u.unit) + baselines
