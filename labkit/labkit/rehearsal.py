"""The rehearsal switch, `LABKIT_REHEARSAL=1`: hub ids resolve to tiny offline replicas (labkit.zoo).

Run records keep the switch (`rehearsal: true`), so a replica's output is never taken for a result.
"""

from __future__ import annotations

import os

from labkit.errors import ConfigError

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
