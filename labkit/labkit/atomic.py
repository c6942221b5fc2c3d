"""Atomic file writes: a reader sees the old file or the new one, never a torn one."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

# mkstemp names the temp file of `name` ".{name}.<8 random characters from [a-z0-9_]>.tmp"; a stale one matches this.
_TEMP = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_with(path: str | os.PathLike, writer: Callable[[BinaryIO], Any]) -> Path:
    """Call `writer(fh)` on a temp file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    return atomic_write_with(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` with LF line ends to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Serialise `obj` as strict, indented JSON (NaN and Infinity are refused)."""
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as strict JSON to `path` atomically."""
    return atomic_write_text(path, dumps_json(obj))


def remove_stale_temps(root: str | os.PathLike) -> list[Path]:
    """Delete the temp files that atomic writes of a killed process left under `root`.

    Call it only while no other process writes there: when a run resumes after its writer died.
    """
    stale = [p for p in Path(root).rglob(".*.tmp") if _TEMP.fullmatch(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
