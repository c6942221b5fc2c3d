"""MLP hook points of both families and the capture of u (the down-projection input), never stored.

gated (llama, qwen2, mistral): `model.model.layers[l].mlp`, u = act_fn(gate_proj(h)) * up_proj(h)
gpt2:                           `model.transformer.h[l].mlp`, u = act(c_fc(h))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from labkit.errors import ConfigError

GATED_TYPES = ("llama", "qwen2", "mistral")
GPT2_TYPES = ("gpt2",)


def mlp_family(model: nn.Module) -> str:
    """`gated` or `gpt2` from the model type; any other family is a config error (exit 2)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in GATED_TYPES:
        return "gated"
    if model_type in GPT2_TYPES:
        return "gpt2"
    raise ConfigError(
        f"unsupported model family {model_type!r}; supported: {', '.join(GATED_TYPES + GPT2_TYPES)}"
    )


def blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks in depth order."""
    if mlp_family(model) == "gated":
        return list(model.model.layers)
    return list(model.transformer.h)


def mlps(model: nn.Module) -> list[nn.Module]:
    """The MLP module of every block."""
    return [b.mlp for b in blocks(model)]


def attentions(model: nn.Module) -> list[nn.Module]:
    """The self-attention module of every block."""
    attr = "self_attn" if mlp_family(model) == "gated" else "attn"
    return [getattr(b, attr) for b in blocks(model)]


def down_projections(model: nn.Module) -> list[nn.Module]:
    """The module whose input is u, per layer (`down_proj` or `c_proj`)."""
    attr = "down_proj" if mlp_family(model) == "gated" else "c_proj"
    return [getattr(m, attr) for m in mlps(model)]


def n_layers(model: nn.Module) -> int:
    """Number of transformer blocks."""
    return len(blocks(model))


def mlp_width(model: nn.Module) -> int:
    """d_ff: the width of u."""
    proj = down_projections(model)[0]
    # nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out].
    return proj.in_features if isinstance(proj, nn.Linear) else proj.weight.shape[0]


def recompute_u(model: nn.Module, layer: int, h: torch.Tensor) -> torch.Tensor:
    """u of `layer` recomputed from the MLP input `h` with the MLP's own sub-modules."""
    mlp = mlps(model)[layer]
    if mlp_family(model) == "gated":
        return mlp.act_fn(mlp.gate_proj(h)) * mlp.up_proj(h)
    return mlp.act(mlp.c_fc(h))


@contextmanager
def capture_u(model: nn.Module, sink: Callable[[int, torch.Tensor], None]) -> Iterator[None]:
    """Call `sink(layer, u)` with u [B, T, d_ff] at every forward; hooks are removed on exit."""

    def hook(layer: int):
        def pre_hook(_module: nn.Module, inputs: tuple) -> None:
            sink(layer, inputs[0])  # returns None, so the module's input is never replaced

        return pre_hook

    handles = []
    try:
        for layer, proj in enumerate(down_projections(model)):
            handles.append(proj.register_forward_pre_hook(hook(layer)))
        yield
    finally:
        for handle in handles:
            handle.remove()
