"""Pipeline config resolution: siblings, CANON references, constants, runtime flags, checks, hash."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avalanche_llm import canon
from labkit.config import apply_overrides, canonical_yaml, load_yaml, validate
from labkit.errors import ConfigError

SCHEMA = canon.SPEC_DIR / "pipeline_config.schema.json"


@dataclass(frozen=True)
class ResolvedConfig:
    """A fully resolved pipeline config, its canonical bytes and their sha256 (the config hash)."""

    data: dict[str, Any]
    text: str
    sha256: str
    source: Path
    overrides: tuple[str, ...] = ()

    @property
    def bytes(self) -> bytes:
        """The canonical UTF-8 bytes that were hashed."""
        return self.text.encode("utf-8")


def fill_missing(target: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    """Copy into `target` every key of `defaults` it lacks, descending into mappings present in both."""
    for key, value in defaults.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(target[key], dict) and isinstance(value, Mapping):
            fill_missing(target[key], value)


def _with_siblings(path: Path) -> dict[str, Any]:
    cfg = load_yaml(path)
    siblings = cfg.get("sibling_defaults", [])
    if not isinstance(siblings, list) or not all(isinstance(s, str) for s in siblings):
        raise ConfigError(f"{path}: sibling_defaults must be a list of file names")
    for name in siblings:
        fill_missing(cfg, load_yaml(path.parent / name))
    return cfg


def _fill_constants(cfg: dict[str, Any]) -> None:
    pipeline = cfg.setdefault("pipeline", {})
    if not isinstance(pipeline, dict):
        raise ConfigError("config key 'pipeline' must be a mapping")
    for name, value in canon.registry()["CONST"].items():
        pipeline.setdefault(name.lower(), copy.deepcopy(value))


def _schema() -> dict[str, Any]:
    # The schema names its enums as CANON references, so the registry stays their single source.
    return canon.resolve(json.loads(SCHEMA.read_text(encoding="utf-8")))


def resolve_config(
    path: str | Path,
    *,
    model_role: str = "INSTRUCT",
    device: str | None = None,
    dtype: str | None = None,
    overrides: Iterable[str] = (),
) -> ResolvedConfig:
    """Load, fill, resolve, check and hash the pipeline config at `path` for one model role."""
    path, overrides = Path(path), tuple(overrides)
    cfg = canon.resolve(_with_siblings(path))
    _fill_constants(cfg)
    cfg = canon.resolve(apply_overrides(cfg, overrides))
    runtime = cfg.setdefault("runtime", {})
    if not isinstance(runtime, dict):
        raise ConfigError("config key 'runtime' must be a mapping")
    runtime["model_role"] = model_role
    if device is not None:
        runtime["device"] = device
    if dtype is not None:
        runtime["dtype"] = dtype
    left = canon.leftover_refs(cfg)
    if left:
        raise ConfigError(f"unresolved CANON reference at {', '.join(left)}")
    validate(cfg, _schema(), what=str(path))
    check_rates(cfg["pipeline"])
    text = canonical_yaml(cfg)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return ResolvedConfig(cfg, text, digest, path, tuple(overrides))


def check_rates(pipeline: Mapping[str, Any]) -> None:
    """Exactly one of target_layer_rates / target_events_per_site must be set."""
    given = [k for k in ("target_layer_rates", "target_events_per_site") if pipeline.get(k)]
    if len(given) != 1:
        raise ConfigError(
            "set exactly one of pipeline.target_layer_rates and pipeline.target_events_per_site "
            f"(set: {', '.join(given) or 'neither'})"
        )
