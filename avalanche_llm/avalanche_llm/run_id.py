"""Run ids: `RUN_{STAGE}_{HASH12}` from the resolved config bytes, or `RUN_{YYYYMMDD}_{NNNN}` by UTC date."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

from labkit.errors import ConfigError

MODES = ("content_hash", "timestamp_counter")
_COUNTER = re.compile(r"^RUN_(\d{8})_(\d{4})$")


def content_hash_run_id(config_bytes: bytes, stage_tag: str) -> str:
    """`RUN_{STAGE}_{HASH12}`, HASH12 = first 12 hex of sha256(config bytes + stage tag bytes)."""
    digest = hashlib.sha256(config_bytes + stage_tag.encode("utf-8")).hexdigest()
    return f"RUN_{stage_tag}_{digest[:12]}"


def next_counter_run_id(out_root: Path, now: datetime | None = None) -> str:
    """The next free `RUN_{YYYYMMDD}_{NNNN}` under `out_root` for today's UTC date."""
    day = (now or datetime.now(UTC)).strftime("%Y%m%d")
    taken = [
        int(m.group(2))
        for p in (out_root.iterdir() if out_root.is_dir() else ())
        if (m := _COUNTER.match(p.name)) and m.group(1) == day
    ]
    counter = max(taken, default=0) + 1
    if counter > 9999:
        raise ConfigError(f"more than 9999 timestamp_counter runs on {day} under {out_root}")
    return f"RUN_{day}_{counter:04d}"


def make_run_id(mode: str, config_bytes: bytes, stage_tag: str, out_root: Path) -> str:
    """The run id of a new run of `stage_tag` in `mode`."""
    if mode == "content_hash":
        return content_hash_run_id(config_bytes, stage_tag)
    if mode == "timestamp_counter":
        return next_counter_run_id(out_root)
    raise ConfigError(f"unknown run_id_mode {mode!r}; known: {', '.join(MODES)}")
