"""Validate a run record against spec/run_record.schema.json (invalid -> SchemaError, exit 2)."""

from __future__ import annotations

from typing import Any

from avalanche_llm import canon
from labkit.config import validate


def validate_run_record(record: dict[str, Any]) -> None:
    """Raise SchemaError naming the bad key if `record` breaks the run-record schema."""
    validate(
        record, canon.ROOT / canon.lookup("CANON.PATH.RUN_RECORD_SCHEMA"), what="run_record.json"
    )
