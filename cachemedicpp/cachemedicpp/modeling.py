"""Load the frozen base model for a config: checked before its weights load, then patched."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from cachemedicpp.data import LOCAL_HINT
from cachemedicpp.families import cache_shape
from cachemedicpp.patch import check_architecture, patch
from labkit.errors import ConfigError
from labkit.zoo import resolve_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LLAMA_LOCAL_HINT = "use configs/mve_llama_local.yaml (local:tiny-llama on local:stories) instead"
LLAMA_FAMILY_NAMES = ("llama", "qwen", "mistral")


def local_hint(name: str) -> str:
    """The local config to name when model `name` cannot be used here (by its hub id's family)."""
    lowered = name.lower()
    return LLAMA_LOCAL_HINT if any(f in lowered for f in LLAMA_FAMILY_NAMES) else LOCAL_HINT


def device_of(cfg: Mapping[str, Any]) -> torch.device:
    """The config's device, refused (exit 2) when CUDA is asked for but absent."""
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        hint = local_hint(cfg["model"]["name"])
        raise ConfigError(f"device 'cuda' is not available on this machine; {hint}")
    return torch.device(cfg["device"])


def check_shape(cfg: Mapping[str, Any], config: PretrainedConfig) -> None:
    """Layer, head and length settings must fit the model (exit 2)."""
    shape = cache_shape(config)
    n_layer, n_head, n_pos = shape.layers, shape.kv_heads, shape.positions
    rep, axes = cfg["repair"], cfg["corruption"]["axes"]
    bad_layers = [x for x in rep["protect_layers"] if x >= n_layer]
    if bad_layers:
        raise ConfigError(
            f"repair.protect_layers {bad_layers} do not exist: the model has {n_layer} layers"
        )
    bad_heads = [h for h in axes["heads"] if h >= n_head]
    if bad_heads:
        raise ConfigError(
            f"corruption.axes.heads {bad_heads} do not exist: the model caches {n_head} heads"
        )
    lengths = {
        "data.prefix_tokens": cfg["data"]["prefix_tokens"],
        "corruption.calibrate.window": cfg["corruption"]["calibrate"]["window"],
    }
    for key, n in lengths.items():
        if n > n_pos:
            raise ConfigError(f"{key} {n} exceeds the model's {n_pos} positions")


def load_model(cfg: Mapping[str, Any]) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The frozen (eval, no grad), patched model on the config's device and dtype, and its tokenizer."""
    device = device_of(cfg)
    if cfg["threads"] is not None:
        torch.set_num_threads(cfg["threads"])
    path = resolve_model(cfg["model"]["name"], local_hint=local_hint(cfg["model"]["name"]))
    config = AutoConfig.from_pretrained(path)
    check_architecture(config)
    check_shape(cfg, config)
    model = AutoModelForCausalLM.from_pretrained(
        path, attn_implementation="eager", dtype=DTYPES[cfg["dtype"]]
    )
    model.to(device).eval().requires_grad_(False)
    patch(model)
    return model, AutoTokenizer.from_pretrained(path)
