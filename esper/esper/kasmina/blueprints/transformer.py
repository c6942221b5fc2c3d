"""Transformer seed blueprints: x + g(x) per position (or causally), identity when fresh."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from esper.kasmina.blueprints.registry import BlueprintRegistry
from esper.kasmina.host_transformer import CausalSelfAttention


class GatedLayerNorm(nn.Module):
    """x + gamma * (LN(x) - x)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        """Identity while gamma is 0."""
        return x + self.gamma * (self.norm(x) - x)


class LoRA(nn.Module):
    """x + B(A(x)) with rank r; B starts at zero."""

    def __init__(self, dim: int, rank: int = 8):
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, dim, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: Tensor) -> Tensor:
        """Identity while B is 0."""
        return x + self.up(self.down(x))


class ResidualAttention(nn.Module):
    """x + causal self-attention(x) with 4 heads; the output projection starts at zero."""

    def __init__(self, dim: int, n_head: int = 4):
        super().__init__()
        self.attn = CausalSelfAttention(dim, n_head)
        nn.init.zeros_(self.attn.proj.weight)
        nn.init.zeros_(self.attn.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Identity while the projection is 0; never looks at later positions."""
        return x + self.attn(x)


class ResidualMLP(nn.Module):
    """x + fc2(GELU(fc1 x)) with a 4x hidden layer; fc2 starts at zero."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * dim, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Identity while fc2 is 0."""
        return x + self.fc2(self.act(self.fc1(x)))


@BlueprintRegistry.register("norm", "transformer", 800, "gated LayerNorm")
def norm_seed(dim: int) -> nn.Module:
    """Gated LayerNorm (2*dim + 1 parameters)."""
    return GatedLayerNorm(dim)


@BlueprintRegistry.register("lora", "transformer", 6_000, "rank-8 low-rank adapter")
def lora_seed(dim: int) -> nn.Module:
    """Rank-8 adapter (16*dim parameters)."""
    return LoRA(dim)


@BlueprintRegistry.register("attention", "transformer", 50_000, "extra causal self-attention")
def attention_seed(dim: int) -> nn.Module:
    """Causal 4-head self-attention (its real size is 4*dim^2 + 4*dim, ~591k at dim 384)."""
    return ResidualAttention(dim)


@BlueprintRegistry.register("mlp", "transformer", 1_200_000, "extra 4x GELU MLP")
def mlp_seed(dim: int) -> nn.Module:
    """4x GELU MLP (8*dim^2 + 5*dim parameters)."""
    return ResidualMLP(dim)
