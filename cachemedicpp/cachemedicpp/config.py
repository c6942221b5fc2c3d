"""Run configs: load with labkit, fill schema defaults, inline the mixture Π, validate, check meaning."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from labkit.config import apply_overrides, load_yaml, validate
from labkit.errors import ConfigError
from labkit.rehearsal import with_profile

PROJECT = Path(__file__).resolve().parent.parent
SCHEMAS = PROJECT / "schemas"


def project_path(path: str | os.PathLike) -> Path:
    """A config path: absolute as given, else relative to the cachemedicpp folder (not the cwd)."""
    path = Path(path)
    return path if path.is_absolute() else PROJECT / path


@cache
def schema(name: str) -> dict[str, Any]:
    """A JSON Schema of `cachemedicpp/schemas/` by short name (`config`, `log_record`, ...)."""
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))


def _fill_defaults(validator: Any, properties: Mapping, instance: Any, sub: Mapping) -> Iterator:
    if isinstance(instance, dict):
        for key, prop in properties.items():
            if "default" in prop:
                instance.setdefault(key, copy.deepcopy(prop["default"]))
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](
        validator, properties, instance, sub
    )


_DefaultFiller = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"properties": _fill_defaults}
)


def _schema_order(doc: Any, node: Mapping[str, Any]) -> Any:
    # Keys in schema order make the config hash independent of how the YAML file orders them.
    props = node.get("properties")
    if not isinstance(doc, dict) or not props:
        return doc
    ordered = {k: _schema_order(doc[k], props[k]) for k in props if k in doc}
    ordered.update((k, v) for k, v in doc.items() if k not in ordered)
    return ordered


def _fill_and_inline(cfg: dict[str, Any]) -> None:
    for _ in _DefaultFiller(schema("config")).iter_errors(cfg):
        pass  # only filling here; `validate` reports the best error in one line
    corruption = cfg.get("corruption")
    if isinstance(corruption, dict) and isinstance(corruption.get("mix"), str):
        corruption["mix"] = load_yaml(project_path(corruption["mix"]))


def resolve(
    raw: Mapping[str, Any], overrides: Iterable[str] = (), *, what: str = "config"
) -> dict[str, Any]:
    """Fill defaults, inline Π, apply dot-key overrides, validate (closed schema), check meaning.

    Defaults are filled before the overrides so that any key the schema knows can be overridden,
    whether or not the file spells it out. Resolving a resolved config returns it unchanged.
    """
    cfg = copy.deepcopy(dict(raw))
    _fill_and_inline(cfg)
    cfg = apply_overrides(cfg, overrides)
    _fill_and_inline(cfg)
    validate(cfg, schema("config"), what=what)
    check(cfg)
    return _schema_order(cfg, schema("config"))


def load_run_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Load a YAML config, apply dot-key overrides, and resolve it (exit 2 on any bad key or value);
    rehearsing, the config's rehearsal profile caps it first (labkit.rehearsal)."""
    return resolve(load_yaml(path), with_profile(path, overrides), what=str(path))


def check(cfg: Mapping[str, Any]) -> None:
    """Rules across keys that the schema cannot express; model-shape checks happen at model load."""
    corr, rep = cfg["corruption"], cfg["repair"]
    axes = corr["axes"]
    if sum(corr["mix"].values()) <= 0:
        raise ConfigError("corruption.mix: the weights must not all be zero")
    for key, win in (
        ("axes.window", axes["window"]),
        ("params.overwrite_window", corr["params"]["overwrite_window"]),
    ):
        if win is not None and win[0] >= win[1]:
            raise ConfigError(f"corruption.{key}: need start < end, got {win}")
    if axes["time_mode"] == "window" and axes["window"] is None:
        raise ConfigError("corruption.axes.window is required when time_mode is 'window'")
    targeted_type = "targeted" in cfg["eval"]["corruption_eval"]
    protect = set(rep["protect_layers"])
    if (targeted_type or axes["layer_mode"] == "targeted") and not (
        axes["layers"] and set(axes["layers"]) <= protect
    ):
        raise ConfigError(
            f"corruption.axes.layers {axes['layers']} must be a non-empty subset of "
            f"repair.protect_layers {sorted(protect)} for targeted corruption"
        )
    if (targeted_type or axes["head_mode"] == "targeted") and not axes["heads"]:
        raise ConfigError(
            "corruption.axes.heads must name at least one head for targeted corruption"
        )
    if corr["calibrate"]["enabled"] and corr["eps_mode"] != "matched":
        raise ConfigError("corruption.calibrate.enabled needs corruption.eps_mode 'matched'")
    cal = corr["calibrate"]
    if cal["stride"] is not None and cal["stride"] > cal["window"]:
        raise ConfigError(
            f"corruption.calibrate.stride {cal['stride']} exceeds its window {cal['window']}"
        )
    if rep["head_embedding"] and rep["option"] != "C":
        raise ConfigError("repair.head_embedding applies to option C only")
    if cfg["loss"]["kd_positions"] >= cfg["data"]["prefix_tokens"]:
        raise ConfigError(
            f"loss.kd_positions ({cfg['loss']['kd_positions']}) must be below data.prefix_tokens "
            f"({cfg['data']['prefix_tokens']})"
        )


def fragment_overrides(path: str | os.PathLike) -> list[str]:
    """A config fragment (e.g. configs/operators/optionB_default.yaml) as dot-key overrides."""

    def walk(node: Any, prefix: str) -> Iterator[str]:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            yield f"{prefix}={json.dumps(node)}"

    return list(walk(load_yaml(project_path(path)), ""))
