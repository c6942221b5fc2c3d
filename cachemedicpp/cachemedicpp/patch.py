"""Interception through transformers' AttentionInterface: the `cachemedic_eager` attention, fail closed.

GPT-2, Llama, Qwen2 and Mistral attention (transformers 5.x) append the step's K,V to the cache and
then call the registered attention function with the full cache (keys RoPE-rotated in the Llama
family, `num_key_value_heads` of them under grouped-query attention): that call is where C and R_phi
act, keyed by `module.layer_idx`. The mask interface must be registered under the same name, or the
model builds no causal mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface, PretrainedConfig, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from cachemedicpp.families import family_of
from labkit.errors import ConfigError

IMPLEMENTATION = "cachemedic_eager"


class Interceptor:
    """Per-model switch: the intervention active right now (None: the family's stock eager attention)."""

    def __init__(self, eager: Callable) -> None:
        self.active: Any = None
        self.eager = eager


def check_architecture(config: PretrainedConfig) -> None:
    """Refuse unsupported families and GPT-2 settings that bypass the interface (exit 2), before weights load."""
    family_of(config)
    if config.model_type != "gpt2":
        return
    if config.add_cross_attention:
        raise ConfigError("CacheMedic++ does not support GPT-2 with cross-attention layers")
    if config.reorder_and_upcast_attn:
        raise ConfigError(
            "CacheMedic++ does not support reorder_and_upcast_attn=True "
            "(its upcast path bypasses the attention interface); load the model with it off"
        )


def check_supported(config: PretrainedConfig) -> None:
    """Refuse, before any work, every model CacheMedic++ cannot intercept faithfully (exit 2)."""
    check_architecture(config)
    impl = config._attn_implementation
    if impl not in ("eager", IMPLEMENTATION):
        raise ConfigError(
            f"CacheMedic++ needs eager attention, the model uses {impl!r}; "
            "load it with attn_implementation='eager'"
        )


def check_batch(input_ids: torch.Tensor) -> None:
    """Refuse any batch but one sequence (the cache is keyed as [1, H, T, d])."""
    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        raise ConfigError(
            f"CacheMedic++ needs batch size 1 (input of shape [1, T]); got {list(input_ids.shape)}"
        )


def check_window(key: torch.Tensor, sliding_window: int | None) -> None:
    """Refuse a read that reaches a sliding window: past it the cache drops positions, and C keys
    its damage by cache position, so the same index would name another token."""
    if sliding_window is not None and key.shape[-2] >= sliding_window:
        raise ConfigError(
            f"CacheMedic++ reads at most sliding_window - 1 = {sliding_window - 1} cached positions; "
            f"this read has {key.shape[-2]} (shorten the sequences or load without a sliding window)"
        )


def attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    sliding_window: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `cachemedic_eager` attention: the family's stock eager unless an intervention is active."""
    if query.shape[0] != 1:
        raise ConfigError(f"CacheMedic++ needs batch size 1; got {query.shape[0]}")
    check_window(key, sliding_window)
    interceptor = module.cachemedic
    if interceptor.active is None:
        return interceptor.eager(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout
        )
    return interceptor.active.attend(module, query, key, value, attention_mask, scaling, dropout)


def patch(model: PreTrainedModel) -> Interceptor:
    """Validate a loaded model of a supported family and switch it to `cachemedic_eager` (idempotent)."""
    check_supported(model.config)
    interceptor = getattr(model, "cachemedic", None)
    if interceptor is None:
        family = family_of(model.config)
        interceptor = Interceptor(family.eager)
        AttentionInterface.register(IMPLEMENTATION, attention)
        AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)
        model.cachemedic = interceptor
        for module in model.modules():
            if isinstance(module, family.attention):
                module.cachemedic = interceptor
    model.set_attn_implementation(IMPLEMENTATION)
    return interceptor


def interceptor_of(model: PreTrainedModel) -> Interceptor:
    """The interceptor `patch` attached; a model that was not patched is a usage error."""
    interceptor = getattr(model, "cachemedic", None)
    if interceptor is None or model.config._attn_implementation != IMPLEMENTATION:
        raise ConfigError("model is not patched: call cachemedicpp.patch.patch(model) first")
    return interceptor
