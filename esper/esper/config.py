"""Esper configs: the JSON Schema, loading with overrides, checks that need code, and TaskConfig."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from esper.kasmina import BlueprintRegistry, build_host
from esper.leyline import TASK_TYPES, TaskConfig
from esper.tamiyo import POLICIES
from esper.utils.data import ImageData, TokenData
from labkit.config import load_config
from labkit.errors import ConfigError, MissingInputError
from labkit.rehearsal import with_profile

# Every integer has a sane maximum, so a huge value is refused before any work (exit 2).
_BIG = 1_000_000
_INT1 = {"type": "integer", "minimum": 1, "maximum": _BIG}
_INT0 = {"type": "integer", "minimum": 0, "maximum": _BIG}
_WIDTH = {"type": "integer", "minimum": 1, "maximum": 8192}  # layer widths: the allocator's limit
_POS = {"type": "number", "exclusiveMinimum": 0}
_CAP = {"type": ["integer", "null"], "minimum": 1, "maximum": _BIG}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(required),
        "properties": required | (optional or {}),
    }


_DATA_COMMON = {
    "dataset": {"type": "string", "minLength": 1},
    "size": {"type": ["string", "null"]},
    "train_split": {"type": "string"},
    "test_split": {"type": "string"},  # scored only at an episode's end
    "val_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "batch_size": _INT1,
    "max_train_batches": _CAP,
    "max_val_batches": _CAP,
}
_RGB = {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}
CALIBRATED = "calibrated"
_POLICY_FILE = {"type": "string", "pattern": r"\.pt$"}  # a trained Tamiyo: train-tamiyo's policy.pt
_NUM = {"type": "number"}
_FRACTION = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
_NONNEG = {"type": "number", "minimum": 0}
# Every key optional: an absent one keeps the §6 default (simic.reward.RewardConfig).
REWARD = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "loss_mode": {"enum": ["potential", "seed_asymmetric"]},
        "loss_delta_weight": _NONNEG,
        "max_loss_delta": _POS,
        "regression_scale": _FRACTION,
        "stage_weight": _NONNEG,
        "gamma": _FRACTION,
        "stage_bonus": {"enum": ["potential", "presence"]},
        "terminal_weight": _NONNEG,
        "rent_weight": _NONNEG,
        "rent_cap": _POS,
        "rent_grace_epochs": _INT0,
        "germination_grace_epochs": _INT0,
        "governor_penalty": _NONNEG,
    },
}
# The design's optional reference gating; absent = no gating (every lifecycle-legal action allowed).
GATING = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "min_epoch": _INT0,
        "min_plateau": _INT0,
        "min_cull_age": _INT0,
    },
}
PPO = _obj(
    {
        "backend": {"enum": ["cleanrl", "sb3"]},
        "episodes": _INT1,
        "num_envs": _INT1,
        "lr": _POS,
        "gamma": _FRACTION,
        "gae_lambda": _FRACTION,
        "clip_coef": _POS,
        "clip_vloss": {"type": "boolean"},
        "vf_coef": _NONNEG,
        "max_grad_norm": _POS,
        "update_epochs": _INT1,
        "minibatch_size": _INT1,
        "target_kl": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "kl_stop_factor": _POS,
        "ent_coef": _NONNEG,
        "ent_coef_final": _NONNEG,
        "hidden": _WIDTH,
        "head_hidden": _WIDTH,
        "obs_ema": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "baseline_episodes": _INT0,
        # Rollout worker processes (1 = in this process); the logs do not depend on it.
        "workers": {"type": "integer", "minimum": 1, "maximum": 64},
    }
)
IMAGE_DATA = _obj(
    _DATA_COMMON
    | {
        "image_size": {"type": "integer", "minimum": 8, "maximum": 4096},
        "augment": {"type": "boolean"},
        "mean": _RGB,
        "std": _RGB,
    }
)
TOKEN_DATA = _obj(
    _DATA_COMMON | {"tokenizer": {"type": "string", "minLength": 1}, "block_size": _WIDTH}
)
CNN_HOST = _obj({"widths": {"type": "array", "items": _WIDTH, "minItems": 3, "maxItems": 3}})
TRANSFORMER_HOST = _obj(
    {
        "n_embd": _WIDTH,
        "n_head": _WIDTH,
        "n_layer": {"type": "integer", "minimum": 1, "maximum": 256},
        "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    }
)
SCHEMA: dict[str, Any] = {
    **_obj(
        {
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
            "episodes": _INT1,
            "policy": {"anyOf": [{"enum": list(POLICIES)}, _POLICY_FILE]},
            "device": {"enum": ["cpu", "cuda", "auto"]},
            "threads": {"type": ["integer", "null"], "minimum": 1, "maximum": 1024},
            "checkpoint_every": _INT1,
            "task": _obj(
                {
                    "name": {"type": "string", "minLength": 1},
                    "task_type": {"enum": list(TASK_TYPES)},
                    "topology": {"enum": list(TASK_TYPES.values())},
                    "target_loss": {
                        "anyOf": [{"type": "number", "minimum": 0}, {"const": CALIBRATED}]
                    },
                    "loss_delta_std": {"anyOf": [_POS, {"const": CALIBRATED}]},
                    "max_epochs": _INT1,
                    "blending_steps": _INT1,
                    "blend_tau": _POS,
                    "dwell_fraction": _POS,
                    "embargo_epochs": _INT1,
                },
                {"calibration": {"type": ["string", "null"], "minLength": 1}},
            ),
            "data": {"type": "object"},
            "host": {"type": "object"},
            "slots": _obj(
                {
                    "enabled": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "detach_host_in_blending": {"type": "boolean"},
                }
            ),
            "optimizer": {
                "oneOf": [
                    _obj(
                        {
                            "name": {"const": "sgd"},
                            "lr": _POS,
                            "momentum": {"type": "number", "minimum": 0},
                            "weight_decay": {"type": "number", "minimum": 0},
                        }
                    ),
                    _obj(
                        {
                            "name": {"const": "adamw"},
                            "lr": _POS,
                            "weight_decay": {"type": "number", "minimum": 0},
                            "betas": {
                                "type": "array",
                                "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                                "minItems": 2,
                                "maxItems": 2,
                            },
                        }
                    ),
                ]
            },
            "governor": _obj(
                {
                    "enabled": {"type": "boolean"},
                    "threshold": _POS,
                    "window": {"type": "integer", "minimum": 2, "maximum": _BIG},
                    "multiplier": _POS,
                    "sigmas": _POS,
                    "patience": _INT1,
                }
            ),
            "heuristic": _obj(
                {
                    "min_epoch": _INT0,
                    "min_plateau": _INT0,
                    "cull_sigmas": _POS,
                    "cull_patience": _INT1,
                    "cull_penalty": {"type": "number", "minimum": 0},
                    "penalty_decay": {"type": "number", "minimum": 0, "maximum": 1},
                    "penalty_skip": _POS,
                }
            ),
        },
        {"reward": REWARD, "ppo": PPO, "gating": GATING},
    ),
    # The data and host blocks depend on the task: images + CNN, or tokens + transformer.
    "if": {"properties": {"task": {"properties": {"task_type": {"const": "classification"}}}}},
    "then": {"properties": {"data": IMAGE_DATA, "host": CNN_HOST}},
    "else": {"properties": {"data": TOKEN_DATA, "host": TRANSFORMER_HOST}},
}


def check_config(cfg: Mapping[str, Any]) -> None:
    """Checks the schema cannot express: the pairing, the slots, and that every blueprint builds."""
    task, host = cfg["task"], cfg["host"]
    if TASK_TYPES[task["task_type"]] != task["topology"]:
        raise ConfigError(
            f"task.task_type {task['task_type']} needs task.topology {TASK_TYPES[task['task_type']]}"
        )
    if task["topology"] == "transformer" and host["n_embd"] % host["n_head"]:
        raise ConfigError(
            f"host.n_embd {host['n_embd']} is not divisible by host.n_head {host['n_head']}"
        )
    with torch.device("meta"):
        model = build_host(task["topology"], host, 2, cfg["data"].get("block_size"))
        points = model.injection_points
        for pid in cfg["slots"]["enabled"]:
            if pid not in points:
                raise ConfigError(
                    f"slots.enabled: no injection point {pid!r}; this host has {list(points)}"
                )
            for spec in BlueprintRegistry.list_for_topology(task["topology"]):
                try:
                    spec.factory(points[pid].dim)
                except (ValueError, RuntimeError) as exc:
                    raise ConfigError(
                        f"blueprint {spec.name} cannot be built at slot {pid} (dim {points[pid].dim}): {exc}"
                    ) from None


def load_esper_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Load, override and validate an Esper config (schema, then the code-level checks); rehearsing,
    the config's rehearsal profile caps it first."""
    cfg = load_config(path, with_profile(path, overrides), schema=SCHEMA)
    check_config(cfg)
    return cfg


def calibrated(task: Mapping[str, Any], key: str) -> float:
    """`task.<key>` as configured, or read from `task.calibration` (calibrate's JSON) when `calibrated`."""
    if task[key] != CALIBRATED:
        return task[key]
    if task.get("calibration") is None:
        raise ConfigError(f"task.{key} is {CALIBRATED!r} but task.calibration names no file")
    path = Path(task["calibration"])
    if not path.is_file():
        raise MissingInputError(
            f"task.calibration {path} not found; run `python -m esper calibrate` first"
        )
    return float(json.loads(path.read_text(encoding="utf-8"))[key])


def task_config(cfg: Mapping[str, Any], data: ImageData | TokenData) -> TaskConfig:
    """The TaskConfig of a loaded config, with the class or vocabulary count the data supplies."""
    t = cfg["task"]
    try:
        return TaskConfig(
            name=t["name"],
            task_type=t["task_type"],
            topology=t["topology"],
            n_outputs=data.n_outputs,
            target_loss=calibrated(t, "target_loss"),
            loss_delta_std=calibrated(t, "loss_delta_std"),
            max_epochs=t["max_epochs"],
            steps_per_epoch=data.steps_per_epoch(),
            blending_steps=t["blending_steps"],
            blend_tau=t["blend_tau"],
            dwell_fraction=t["dwell_fraction"],
            embargo_epochs=t["embargo_epochs"],
            host=dict(cfg["host"]),
            data=dict(cfg["data"]),
            optimizer=dict(cfg["optimizer"]),
        )
    except ValueError as exc:
        raise ConfigError(f"task: {exc}") from None


def set_threads(threads: int | None) -> None:
    """Pin torch's CPU threads (null keeps torch's default); tiny models run fastest on one."""
    if threads is not None:
        torch.set_num_threads(threads)


def resolve_device(name: str) -> str:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU is a config error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but no GPU is available (use cpu or auto)")
    return name
