"""Atomic torch checkpoints and the RNG states a bit-exact resume needs."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labkit.atomic import atomic_write_with
from labkit.errors import LabkitError, MissingInputError

_LAST_INT = re.compile(r"(\d+)(?!.*\d)")


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write `state` with torch.save atomically: a crash leaves the previous file, never a torn one."""
    return atomic_write_with(path, lambda fh: torch.save(dict(state), fh))


def replace_checkpoint(path: str | os.PathLike, state: Mapping[str, Any], pattern: str) -> Path:
    """Write `state` to `path`, then delete the older files matching `pattern` beside it."""
    path = save_checkpoint(path, state)
    for old in path.parent.glob(pattern):
        if old != path:
            old.unlink()
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint` (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"checkpoint not found: {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


def latest_checkpoint(directory: str | os.PathLike, pattern: str = "*.pt") -> Path | None:
    """The file matching `pattern` whose name holds the largest number (step_9 < step_10), or None."""
    found = [p for p in Path(directory).glob(pattern) if _LAST_INT.search(p.stem)]
    if not found:
        return None
    return max(found, key=lambda p: (int(_LAST_INT.search(p.stem).group(1)), p.name))


def rng_state() -> dict[str, Any]:
    """The python, numpy and torch (CPU and CUDA) RNG states, in a form `load_checkpoint` accepts."""
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the RNG states captured by `rng_state`."""
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def log_sizes(run_path: str | os.PathLike, names: Iterable[str]) -> dict[str, int]:
    """Byte size of each named log under `run_path` (0 if absent), to store in a checkpoint."""
    return {n: _size(Path(run_path) / n) for n in names}


def rewind_logs(run_path: str | os.PathLike, sizes: Mapping[str, int]) -> None:
    """Cut each log back to the size its checkpoint recorded, so redone steps are not logged twice."""
    for name, size in sizes.items():
        log = Path(run_path) / name
        if _size(log) < size:
            raise LabkitError(f"{log} is shorter ({_size(log)} B) than its checkpoint recorded")
        if log.exists():
            os.truncate(log, size)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
