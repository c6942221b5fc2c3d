"""Interception through transformers' AttentionInterface: the `cachemedic_eager` attention, fail closed.

GPT-2's attention (transformers 5.x) appends the step's K,V to the cache and then calls the registered
attention function with the full cache: that call is where C and R_phi act, keyed by `module.layer_idx`.
The mask interface must be registered under the same name, or the model builds no causal mask.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface, PretrainedConfig, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.models.gpt2.modeling_gpt2 import GPT2Attention, eager_attention_forward

from labkit.errors import ConfigError

IMPLEMENTATION = "cachemedic_eager"


class Interceptor:
    """Per-model switch: the intervention active right now (None: stock eager attention)."""

    def __init__(self) -> None:
        self.active: Any = None


def check_architecture(config: PretrainedConfig) -> None:
    """Refuse non-GPT-2 models, cross-attention and reorder_and_upcast_attn (exit 2), before weights load."""
    kind = getattr(config, "model_type", None)
    if kind != "gpt2":
        arch = ", ".join(getattr(config, "architectures", None) or []) or kind
        raise ConfigError(
            f"CacheMedic++ v1 supports GPT-2-family models only (model_type 'gpt2'); got {arch!r}"
        )
    if config.add_cross_attention:
        raise ConfigError("CacheMedic++ v1 does not support GPT-2 with cross-attention layers")
    if config.reorder_and_upcast_attn:
        raise ConfigError(
            "CacheMedic++ v1 does not support reorder_and_upcast_attn=True "
            "(its upcast path bypasses the attention interface); load the model with it off"
        )


def check_supported(config: PretrainedConfig) -> None:
    """Refuse, before any work, every model CacheMedic++ v1 cannot intercept faithfully (exit 2)."""
    check_architecture(config)
    impl = config._attn_implementation
    if impl not in ("eager", IMPLEMENTATION):
        raise ConfigError(
            f"CacheMedic++ v1 needs eager attention, the model uses {impl!r}; "
            "load it with attn_implementation='eager'"
        )


def check_batch(input_ids: torch.Tensor) -> None:
    """Refuse any batch but one sequence (v1 keys the cache as [1, H, T, d])."""
    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        raise ConfigError(
            f"CacheMedic++ v1 needs batch size 1 (input of shape [1, T]); got {list(input_ids.shape)}"
        )


def attention(
    module: GPT2Attention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `cachemedic_eager` attention: stock eager unless an intervention is active."""
    if query.shape[0] != 1:
        raise ConfigError(f"CacheMedic++ v1 needs batch size 1; got {query.shape[0]}")
    active = module.cachemedic.active
    if active is None:
        return eager_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout
        )
    return active.attend(module, query, key, value, attention_mask, scaling, dropout)


def patch(model: PreTrainedModel) -> Interceptor:
    """Validate a loaded GPT-2 model and switch it to `cachemedic_eager` (idempotent)."""
    check_supported(model.config)
    interceptor = getattr(model, "cachemedic", None)
    if interceptor is None:
        interceptor = Interceptor()
        AttentionInterface.register(IMPLEMENTATION, attention)
        AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)
        model.cachemedic = interceptor
        for module in model.modules():
            if isinstance(module, GPT2Attention):
                module.cachemedic = interceptor
    model.set_attn_implementation(IMPLEMENTATION)
    return interceptor


def interceptor_of(model: PreTrainedModel) -> Interceptor:
    """The interceptor `patch` attached; a model that was not patched is a usage error."""
    interceptor = getattr(model, "cachemedic", None)
    if interceptor is None or model.config._attn_implementation != IMPLEMENTATION:
        raise ConfigError("model is not patched: call cachemedicpp.patch.patch(model) first")
    return interceptor
