"""Content hashes: bytes, arrays (dtype + shape + data), JSON documents, and the code version."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

import numpy as np

from avalanche_llm import canon

PACKAGE_DIR = canon.ROOT / "avalanche_llm"


def sha256_bytes(data: bytes) -> str:
    """sha256 hex digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_array(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and C-ordered bytes, so equal arrays hash alike."""
    arr = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """sha256 of the canonical (sorted-key, compact) JSON of `obj`."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return sha256_bytes(text.encode("utf-8"))


@cache
def code_version() -> str:
    """`src-<sha16>` over the package sources (tests excluded) and the spec: what determines results."""
    files = sorted(
        p
        for p in [*PACKAGE_DIR.rglob("*.py"), *canon.SPEC_DIR.rglob("*")]
        if p.is_file()
        and "tests" not in p.relative_to(canon.ROOT).parts[1:2]
        and "__pycache__" not in p.parts
    )
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(canon.ROOT).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return f"src-{h.hexdigest()[:16]}"
