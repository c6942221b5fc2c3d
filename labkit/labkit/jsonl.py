"""Append-only JSON Lines logs that survive a crash mid-write."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def append_jsonl(path: str | os.PathLike, record: dict[str, Any], *, fsync: bool = True) -> None:
    """Append one record as a line, flushed (and fsynced unless told not to)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
    with open(path, "ab") as fh:
        _drop_torn_tail(fh)
        fh.write(line.encode("utf-8"))
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())


def _drop_torn_tail(fh: Any) -> None:
    # A crash mid-append leaves a fragment without its newline; the next record must not fuse with it.
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return
    with open(fh.name, "rb") as rd:
        rd.seek(size - 1)
        if rd.read(1) == b"\n":
            return
        rd.seek(0)
        keep = rd.read().rfind(b"\n") + 1
    fh.truncate(keep)
    fh.seek(keep)


@dataclass
class JsonlRead:
    """The records of a JSONL file and what had to be skipped to read it."""

    records: list[dict[str, Any]] = field(default_factory=list)
    torn_tail: bool = False  # the last line was cut off mid-write and was skipped
    bad_lines: list[int] = field(default_factory=list)  # 1-based numbers of unparsable inner lines


def read_jsonl(path: str | os.PathLike, *, strict: bool = False) -> JsonlRead:
    """Read every complete record; a torn last line is skipped and reported, not fatal."""
    out = JsonlRead()
    path = Path(path)
    if not path.exists():
        return out
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete_end = raw.endswith(b"\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        is_last = i == len(lines)
        try:
            out.records.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if is_last and not complete_end:
                out.torn_tail = True
            elif strict:
                raise ValueError(f"{path}: line {i} is not valid JSON") from None
            else:
                out.bad_lines.append(i)
    return out
