"""The rehearsal switch, `LABKIT_REHEARSAL=1`: hub ids resolve to tiny offline replicas (labkit.zoo),
and run sizes are capped by the rehearsal profile of each config.

Run records keep the switch (`rehearsal: true`) and the caps (`rehearsal_profile`), so a replica's
output is never taken for a result.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from labkit.config import load_yaml
from labkit.errors import ConfigError, LabkitError, MissingInputError

ENV = "LABKIT_REHEARSAL"
_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def rehearsal_active() -> bool:
    """True if `LABKIT_REHEARSAL` asks for replicas; a value that is neither on nor off is exit 2."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ConfigError(f"{ENV}={value!r}: expected 1 (rehearse on replicas) or 0/unset")


def enable_rehearsal() -> None:
    """Turn rehearsal on for this process and every process it starts (sweep workers inherit it)."""
    os.environ[ENV] = "1"


def check_rehearsed(root: str | os.PathLike) -> list[Path]:
    """Every `run_record.json` under `root`, each saying `rehearsal: true`; exit 3 if none, 1 if one does not."""
    records = sorted(Path(root).rglob("run_record.json"))
    if not records:
        raise MissingInputError(f"no run_record.json under {root}")
    real = [
        p for p in records if json.loads(p.read_text(encoding="utf-8")).get("rehearsal") is not True
    ]
    if real:
        raise LabkitError(
            f"{len(real)} of {len(records)} run records under {root} do not say rehearsal: true: "
            + ", ".join(str(p) for p in real)
        )
    return records


# The caps of a rehearsal: one file per config folder, one section per config file.
PROFILE_FILE = "rehearsal_profile.yaml"
_applied: dict[str, list[str]] = {}


def _profile_section(config_path: Path) -> dict[str, Any]:
    profile = config_path.parent / PROFILE_FILE
    if not profile.is_file():
        return {}
    doc = load_yaml(profile)
    section = doc.get(config_path.name) or {}
    if not isinstance(section, dict) or not all(isinstance(k, str) for k in section):
        raise ConfigError(f"{profile}: {config_path.name!r} must map dotted config keys to values")
    return section


def profile_overrides(config_path: str | os.PathLike) -> list[str]:
    """The rehearsal caps of `config_path` as dot-key overrides; [] when not rehearsing.

    They come from the section named after the config file in `rehearsal_profile.yaml` beside it,
    are printed on stderr, and are kept for the run record (`applied_profile`).
    """
    if not rehearsal_active():
        return []
    path = Path(config_path)
    overrides = [f"{key}={json.dumps(value)}" for key, value in _profile_section(path).items()]
    _applied[str(path)] = overrides
    caps = ", ".join(overrides) if overrides else "none (no section in its rehearsal profile)"
    print(f"rehearsal profile for {path}: {caps}", file=sys.stderr)
    return overrides


def with_profile(config_path: str | os.PathLike, overrides: Iterable[str] = ()) -> list[str]:
    """The rehearsal caps of `config_path` followed by `overrides`, which win over the caps."""
    return [*profile_overrides(config_path), *overrides]


def applied_profile() -> dict[str, list[str]]:
    """Config path -> the rehearsal caps this process applied to it (run records keep it)."""
    return {path: list(caps) for path, caps in _applied.items()}


def forget_profile() -> None:
    """Forget the caps applied so far (a test's process loads many configs)."""
    _applied.clear()
