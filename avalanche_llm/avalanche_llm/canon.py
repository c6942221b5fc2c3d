"""The CANON registry: parse the `CANON:` block of spec/00_CANONICAL.md and resolve `CANON.` strings."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from labkit.config import parse_yaml
from labkit.errors import ConfigError, MissingInputError

# The system folder (avalanche_llm/), which holds spec/ and configs/ beside the package.
ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = ROOT / "spec"
CANONICAL_MD = SPEC_DIR / "00_CANONICAL.md"
PREFIX = "CANON."
_BLOCK = re.compile(r"```yaml\n(CANON:\n.*?)```", re.DOTALL)


@cache
def registry(path: Path = CANONICAL_MD) -> dict[str, Any]:
    """The parsed `CANON` mapping from the registry file (exactly one `CANON:` YAML block)."""
    if not path.is_file():
        raise MissingInputError(f"CANON registry not found: {path}")
    blocks = _BLOCK.findall(path.read_text(encoding="utf-8"))
    if len(blocks) != 1:
        raise ConfigError(f"{path}: expected one ```yaml CANON: block, found {len(blocks)}")
    doc = parse_yaml(blocks[0], source=str(path))
    return doc["CANON"]


def lookup(ref: str, canon: dict[str, Any] | None = None) -> Any:
    """Value at dotted path `ref` (`CANON.CONST.EPS`), resolved recursively; unknown or cyclic -> exit 2."""
    canon = registry() if canon is None else canon
    return _resolve_ref(ref, canon, ())


def _resolve_ref(ref: str, canon: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if ref in seen:
        raise ConfigError(f"CANON reference cycle: {' -> '.join((*seen, ref))}")
    node: Any = canon
    for part in ref[len(PREFIX) :].split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"unresolved CANON reference {ref!r}: no key {part!r}")
        node = node[part]
    return resolve(node, canon, (*seen, ref))


def resolve(value: Any, canon: dict[str, Any] | None = None, _seen: tuple[str, ...] = ()) -> Any:
    """Return `value` with every string starting `CANON.` replaced by its registry value, recursively."""
    canon = registry() if canon is None else canon
    if isinstance(value, str) and value.startswith(PREFIX):
        return _resolve_ref(value, canon, _seen)
    if isinstance(value, list):
        return [resolve(v, canon, _seen) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, canon, _seen) for k, v in value.items()}
    return value


def leftover_refs(value: Any, where: str = "") -> list[str]:
    """Dotted keys of every string still starting with `CANON.` (must be empty after resolution)."""
    if isinstance(value, str):
        return [where or "(top level)"] if value.startswith(PREFIX) else []
    if isinstance(value, list):
        return [r for i, v in enumerate(value) for r in leftover_refs(v, f"{where}[{i}]")]
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in leftover_refs(v, f"{where}.{k}".lstrip("."))]
    return []


def stage_tag(subcommand: str) -> str:
    """Stage tag of a subcommand (`phase1_calibrate` -> `S01`)."""
    return registry()["ID"]["STAGE"][subcommand]


def output(name: str) -> str:
    """Run-relative path of a named output (`METRICS_PARQUET` -> `results/metrics.parquet`)."""
    return lookup(f"CANON.OUTPUT.{name}")
