"""Rebuild a zoo model in a temp directory and compare its weights with the shipped (or cached) build."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from labkit.errors import ConfigError, MissingInputError
from labkit.zoo.build import run_builder
from labkit.zoo.catalog import ZooItem
from labkit.zoo.shipped import MANIFEST, cpu_name, shipped_dir, verify_shipped
from labkit.zoo.store import cache_key, is_built, item_dir, read_card


@dataclass(frozen=True)
class Reproduction:
    """The outcome of one rebuild: where the reference came from and both sets of weight digests."""

    name: str
    reference: Path
    shipped: bool
    expected: dict[str, str]
    rebuilt: dict[str, str]

    @property
    def identical(self) -> bool:
        """True if the rebuild wrote the reference's weight bytes."""
        return self.expected == self.rebuilt

    def verdict(self) -> str:
        """One paragraph saying whether this machine reproduced the reference, and what that means."""
        if self.identical:
            digests = ", ".join(f"{n} {d[:12]}" for n, d in sorted(self.rebuilt.items()))
            where = "shipped" if self.shipped else "cached"
            return f"{self.name}: the rebuild is byte-identical to the {where} weights ({digests})"
        diffs = "; ".join(
            f"{n}: {'shipped' if self.shipped else 'cached'} {self.expected.get(n, 'missing')[:12]}, "
            f"rebuilt {self.rebuilt.get(n, 'missing')[:12]}"
            for n in sorted(set(self.expected) | set(self.rebuilt))
            if self.expected.get(n) != self.rebuilt.get(n)
        )
        if not self.shipped:
            return f"{self.name}: the rebuild DIFFERS from the cached build ({diffs})"
        built_on = json.loads((self.reference / MANIFEST).read_text(encoding="utf-8"))["built_on"]
        here = {
            "cpu": cpu_name(),
            "torch": version("torch"),
            "transformers": version("transformers"),
        }
        same = all(built_on.get(k) == v for k, v in here.items())
        cause = (
            "this machine has the same CPU model and versions, so the build itself is not reproducible"
            if same
            else "zoo training is not byte-identical across CPUs and library versions"
        )
        return (
            f"{self.name}: the rebuild DIFFERS from the shipped weights ({diffs}). Shipped: built on "
            f"{built_on.get('cpu')} (torch {built_on.get('torch')}, transformers "
            f"{built_on.get('transformers')}); this machine: {here['cpu']} (torch {here['torch']}, "
            f"transformers {here['transformers']}); {cause}. The shipped weights stay canonical: "
            f"{self.name} still loads them, and the rebuild was discarded."
        )


def reproduce(item: ZooItem, size: str, seed: int) -> Reproduction:
    """Rebuild model `item` at `size`/`seed` in a temp directory and compare with its reference build."""
    name = f"{item.zoo_name}@{size} (seed {seed})"
    if item.kind != "model":
        raise ConfigError(f"--verify compares model weights; {item.zoo_name} is a {item.kind}")
    key = cache_key(size, seed, item.version, {})
    shipped = shipped_dir(item, key)
    reference = shipped or item_dir(item.kind, item.name, key)
    if shipped is not None:
        verify_shipped(shipped)
    elif not is_built(reference):
        raise MissingInputError(
            f"{name} is neither shipped nor built, so there is nothing to compare a rebuild with; "
            f"build it first: python -m labkit.zoo build {item.zoo_name}@{size} --seed {seed}"
        )
    expected = read_card(reference)["weights_sha256"]
    with tempfile.TemporaryDirectory(prefix=f"labkit-verify-{item.name}-") as tmp:
        rebuilt = run_builder(item, size, seed, {}, Path(tmp))["weights_sha256"]
    return Reproduction(name, reference, shipped is not None, expected, rebuilt)
