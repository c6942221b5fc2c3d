"""The run's JSONL event log (`logs/events.jsonl`): one fsynced line per notable event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avalanche_llm import canon
from labkit.heartbeat import jsonable
from labkit.jsonl import append_jsonl
from labkit.rundir import utc_now


def log_event(run_path: Path, event: str, **fields: Any) -> None:
    """Append `{utc, event, **fields}` to the run's event log."""
    record = {"utc": utc_now(), "event": event, **jsonable(fields, event)}
    append_jsonl(run_path / canon.output("EVENT_LOG_JSONL"), record)
