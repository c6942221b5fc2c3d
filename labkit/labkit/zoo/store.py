"""The zoo cache on disk: its root, cache keys, and atomic builds guarded by a per-key file lock."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from labkit.atomic import atomic_write_json

# Written last into a finished build, so its presence is what makes a cache directory valid.
CARD_NAME = "zoo_card.json"


def zoo_home() -> Path:
    """The zoo cache root: `$LABKIT_HOME`, else `~/.cache/labkit`."""
    return Path(os.environ.get("LABKIT_HOME") or Path.home() / ".cache" / "labkit").expanduser()


def options_hash(options: Mapping[str, Any]) -> str:
    """Short hash of the canonical JSON of builder options (lists and tuples hash alike)."""
    canonical = json.dumps(dict(options), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:10]


def cache_key(size: str, seed: int, version: str, options: Mapping[str, Any]) -> str:
    """Directory name of one build, e.g. `test-s0-v1` or `default-s0-v1-<opthash>`."""
    key = f"{size}-s{seed}-v{version}"
    return f"{key}-{options_hash(options)}" if options else key


def item_dir(kind: str, name: str, key: str) -> Path:
    """Cache directory of one build of one item, e.g. `<home>/datasets/shapes10/test-s0-v1`."""
    return zoo_home() / f"{kind}s" / name / key


def is_built(path: Path) -> bool:
    """True if `path` holds a finished build."""
    return (path / CARD_NAME).is_file()


def read_card(path: Path) -> dict[str, Any]:
    """The zoo card of a finished build."""
    return json.loads((path / CARD_NAME).read_text(encoding="utf-8"))


def _remove_leftovers(target: Path) -> None:
    # Only called under the lock, so any temp or aside directory belongs to a build that died.
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for stale in target.parent.glob(pattern):
            shutil.rmtree(stale)


def _swap_in(tmp: Path, target: Path) -> None:
    # os.replace cannot overwrite a non-empty directory: move the old one aside first, delete it last.
    aside = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, aside)
    os.replace(tmp, target)
    if aside.exists():
        shutil.rmtree(aside)


def build_atomically(
    target: Path, build: Callable[[Path], dict[str, Any]], *, force: bool = False
) -> Path:
    """Return `target`, first filling it via `build(tmp_dir) -> card` unless it is already built.

    The build runs in a temp sibling under a per-key file lock; the card is written last and the
    directory renamed into place, so a killed build never leaves a directory that loads, and a
    second process waits for the first build instead of repeating it.
    """
    if is_built(target) and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        if is_built(target) and not force:
            return target  # another process finished it while we waited
        _remove_leftovers(target)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            card = build(tmp)
            atomic_write_json(tmp / CARD_NAME, card)
            _swap_in(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
