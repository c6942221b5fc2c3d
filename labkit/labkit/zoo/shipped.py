"""Zoo builds shipped in the repository (the default models), verified against their card on every load.

A shipped build is the zoo's own build directory copied under `labkit/zoo/shipped/<kind>s/<item>/<key>/`,
plus `shipped.json`: the sha256 of every other file in it and the machine that built it. Training is not
byte-identical across CPUs, so the shipped weights are the canonical ones; `python -m labkit.zoo build
NAME --verify` rebuilds in a temp directory and says whether this machine reproduces them.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

import labkit
from labkit.atomic import atomic_write_json
from labkit.errors import LabkitError
from labkit.zoo.catalog import ZooItem
from labkit.zoo.store import CARD_NAME

SHIPPED_ROOT = Path(__file__).parent / "shipped"
MANIFEST = "shipped.json"


class ShippedBuildError(LabkitError):
    """A shipped build's files do not match its card or manifest (truncated, edited, a Git LFS pointer)."""


def shipped_dir(item: ZooItem, key: str) -> Path | None:
    """The shipped build of `item` under cache key `key`, or None if the repository ships none."""
    path = SHIPPED_ROOT / f"{item.kind}s" / item.name / key
    return path if (path / MANIFEST).is_file() else None


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def cpu_name() -> str:
    """This machine's CPU model as /proc/cpuinfo names it (else the platform's processor string)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def verify_shipped(path: Path) -> Path:
    """`path` once its weights match its card's sha256 and every other file its manifest; else raise."""
    card, manifest = _read_json(path / CARD_NAME), _read_json(path / MANIFEST)
    checks = [(name, digest, "card") for name, digest in card.get("weights_sha256", {}).items()]
    checks += [(name, digest, MANIFEST) for name, digest in manifest.get("files", {}).items()]
    seen: dict[str, str] = {}
    for name, expected, source in checks:
        file = path / name
        if name not in seen:
            seen[name] = _sha256(file) if file.is_file() else "missing"
        if seen[name] != expected:
            raise ShippedBuildError(
                f"shipped file {file} does not match its {source} (sha256 {seen[name][:12]}, expected "
                f"{expected[:12]}): truncated or edited; restore it with `git checkout -- {path}`"
            )
    return path


def _read_json(file: Path) -> dict[str, Any]:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ShippedBuildError(f"shipped file {file} is unreadable ({exc})") from None


def ship(built: Path, item: ZooItem, key: str) -> Path:
    """Copy the finished cache build `built` into the repository as the shipped build of `item`/`key`."""
    target = SHIPPED_ROOT / f"{item.kind}s" / item.name / key
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(built, target)
    files = sorted(p.name for p in target.iterdir() if p.is_file() and p.name != MANIFEST)
    atomic_write_json(
        target / MANIFEST,
        {
            "files": {name: _sha256(target / name) for name in files},
            "built_on": {
                "cpu": cpu_name(),
                "torch": version("torch"),
                "transformers": version("transformers"),
                "labkit": labkit.__version__,
            },
        },
    )
    return verify_shipped(target)
