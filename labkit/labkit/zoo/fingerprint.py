"""Which weights a model directory holds: one digest, so a run can refuse to mix models."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from labkit.errors import MissingInputError

CARD = "zoo_card.json"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def file_digests(model_dir: str | os.PathLike) -> dict[str, str]:
    """sha256 of each weight file (`*.safetensors`, else `*.bin`) in a saved model directory."""
    root = Path(model_dir)
    for pattern in WEIGHT_PATTERNS:
        files = sorted(root.glob(pattern))
        if files:
            digests = {}
            for path in files:
                with path.open("rb") as fh:  # hub snapshots are symlinks into blobs/: followed
                    digests[path.name] = hashlib.file_digest(fh, "sha256").hexdigest()
            return digests
    raise MissingInputError(f"{root} holds no *.safetensors or *.bin weights")


def weights_digest(model_dir: str | os.PathLike) -> str:
    """One sha256 over a model directory's weight files; a zoo build's card supplies them."""
    root = Path(model_dir).resolve()
    card = root / CARD
    digests = None
    if card.is_file():
        digests = json.loads(card.read_text(encoding="utf-8")).get("weights_sha256")
    if digests is None:
        digests = file_digests(root)
    canonical = json.dumps(digests, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
