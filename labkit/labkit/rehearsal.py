"""The rehearsal switch, `LABKIT_REHEARSAL=1`: hub ids resolve to tiny offline replicas (labkit.zoo).

Run records keep the switch (`rehearsal: true`), so a replica's output is never taken for a result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

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
