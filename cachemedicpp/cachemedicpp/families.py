"""The model families CacheMedic++ intercepts, their stock eager attention, and the cache's shape.

GPT-2 caches one K,V per attention head. Llama, Qwen2 and Mistral cache keys already rotated by RoPE
and, under grouped-query attention, `num_key_value_heads` K,V heads, each shared by the
`num_attention_heads / num_key_value_heads` query heads of its group. C, the heuristics and R_phi all
act on the cache as stored, [1, kv_heads, T, head_dim] with rotated keys: that is what a fault in KV
memory damages, and the attention interface receives nothing else (no position angles).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from transformers import PretrainedConfig
from transformers.models.gpt2 import modeling_gpt2
from transformers.models.llama import modeling_llama
from transformers.models.mistral import modeling_mistral
from transformers.models.qwen2 import modeling_qwen2

from labkit.errors import ConfigError


@dataclass(frozen=True)
class Family:
    """One supported architecture: its attention module class and its stock eager attention."""

    attention: type[nn.Module]
    eager: Callable


FAMILIES = {
    "gpt2": Family(modeling_gpt2.GPT2Attention, modeling_gpt2.eager_attention_forward),
    "llama": Family(modeling_llama.LlamaAttention, modeling_llama.eager_attention_forward),
    "qwen2": Family(modeling_qwen2.Qwen2Attention, modeling_qwen2.eager_attention_forward),
    "mistral": Family(modeling_mistral.MistralAttention, modeling_mistral.eager_attention_forward),
}


@dataclass(frozen=True)
class CacheShape:
    """What the KV cache of one model looks like: layers, query and cached heads, head size, context."""

    layers: int
    heads: int  # query heads
    kv_heads: int  # heads in the cache (= heads without grouped-query attention)
    head_dim: int
    positions: int  # max_position_embeddings (GPT-2: n_positions)


def family_of(config: PretrainedConfig) -> Family:
    """The family of a model config; any other architecture is refused (exit 2)."""
    kind = getattr(config, "model_type", None)
    if kind not in FAMILIES:
        arch = ", ".join(getattr(config, "architectures", None) or []) or kind
        raise ConfigError(
            "CacheMedic++ supports GPT-2, Llama, Qwen2 and Mistral models "
            f"(model_type {', '.join(FAMILIES)}); got {arch!r}"
        )
    return FAMILIES[kind]


def cache_shape(config: PretrainedConfig) -> CacheShape:
    """The cache shape of a supported model's config (standard names; GPT-2 maps its own onto them)."""
    heads = config.num_attention_heads
    return CacheShape(
        layers=config.num_hidden_layers,
        heads=heads,
        kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        positions=config.max_position_embeddings,
    )
