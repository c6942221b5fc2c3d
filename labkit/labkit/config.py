"""YAML configs: load, dot-key overrides, canonical bytes and hash, JSON-Schema validation."""

from __future__ import annotations

import copy
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from labkit.errors import ConfigError, MissingInputError, SchemaError


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` as a float (YAML 1.1 wants `1.0e-4`)."""


_FLOAT = re.compile(
    r"^[-+]?(?:\d[\d_]*\.?[\d_]*(?:[eE][-+]?\d+)?|\.\d[\d_]*(?:[eE][-+]?\d+)?|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"
)
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    """SafeDumper that never emits YAML anchors, so equal configs give equal bytes."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def parse_yaml(text: str, *, source: str = "<string>") -> Any:
    """Parse YAML text; a syntax error becomes a one-line ConfigError naming the source and line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML at {where}: {problem}") from None


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping from `path` (missing file -> exit 3, malformed or not a mapping -> exit 2)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    data = parse_yaml(text, source=str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and its YAML-typed value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} is not of the form dotted.key=value")
    return key.split("."), parse_yaml(raw, source=f"override {key}")


def _child(node: Any, part: str, dotted: str) -> tuple[Any, Any]:
    if isinstance(node, list):
        if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
            raise ConfigError(
                f"unknown config key {dotted!r}: index {part} is outside a list of {len(node)}"
            )
        return int(part), node[int(part)]
    return part, node.get(part)


def set_by_path(
    cfg: dict[str, Any], path: list[str], value: Any, *, allow_new: bool = False
) -> None:
    """Set `cfg[path[0]][path[1]]... = value`; a key that does not exist is an error unless allowed."""
    dotted = ".".join(path)
    node: Any = cfg
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if not isinstance(node, (dict, list)):
            parent = ".".join(path[:depth])
            raise ConfigError(
                f"cannot override {dotted!r}: {parent!r} is a {type(node).__name__}, not a mapping"
            )
        if isinstance(node, dict) and part not in node:
            if not allow_new:
                known = ", ".join(map(str, node)) or "(none)"
                where = ".".join(path[:depth]) or "the top level"
                raise ConfigError(
                    f"unknown config key {dotted!r} (known keys under {where}: {known})"
                )
            node[part] = value if last else {}
        key, child = _child(node, part, dotted)
        if last:
            node[key] = value
        else:
            node = child


def apply_overrides(
    cfg: Mapping[str, Any], overrides: Iterable[str], *, allow_new: bool = False
) -> dict[str, Any]:
    """Return a copy of `cfg` with each `a.b=value` override applied in order."""
    out = copy.deepcopy(dict(cfg))
    for text in overrides:
        path, value = parse_override(text)
        set_by_path(out, path, value, allow_new=allow_new)
    return out


def get_by_path(cfg: Mapping[str, Any], dotted: str, default: Any = ConfigError) -> Any:
    """Read `a.b.c` from a nested mapping; a missing key raises ConfigError unless a default is given."""
    node: Any = cfg
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif default is ConfigError:
            raise ConfigError(f"config has no key {dotted!r}")
        else:
            return default
    return node


def canonical_yaml(cfg: Mapping[str, Any]) -> str:
    """Serialise a config canonically: UTF-8 text, LF line ends, key order kept, no anchors."""
    return yaml.dump(
        dict(cfg),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=10_000,
    )


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Return the sha256 hex digest of the canonical serialisation of `cfg`."""
    return hashlib.sha256(canonical_yaml(cfg).encode("utf-8")).hexdigest()


def validate(
    doc: Any, schema: Mapping[str, Any] | str | os.PathLike, *, what: str = "config"
) -> None:
    """Validate `doc` against a JSON Schema (a dict or a .json/.yaml path); errors name the key path."""
    if not isinstance(schema, Mapping):
        schema_path = Path(schema)
        if not schema_path.is_file():
            raise MissingInputError(f"schema file not found: {schema_path}")
        schema = parse_yaml(schema_path.read_text(encoding="utf-8"), source=str(schema_path))
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise SchemaError(f"{what}: {where}: {error.message} (rule: {error.validator})")


def load_config(
    path: str | os.PathLike,
    overrides: Iterable[str] = (),
    *,
    allow_new: bool = False,
    schema: Mapping[str, Any] | str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Load a YAML config, apply dot-key overrides, and validate it if a schema is given."""
    cfg = apply_overrides(load_yaml(path), overrides, allow_new=allow_new)
    if schema is not None:
        validate(cfg, schema, what=str(path))
    return cfg
