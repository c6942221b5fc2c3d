"""CNN seed blueprints: each is x + g(x) with g's last scale zeroed, so a fresh seed is the identity."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from esper.kasmina.blueprints.registry import BlueprintRegistry


def _groups(dim: int) -> int:
    return math.gcd(dim, 8)


class GatedNorm(nn.Module):
    """x + gamma * (BN(x) - x): starts as x, can learn to become BN(x)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        """Identity while gamma is 0."""
        return x + self.gamma * (self.norm(x) - x)


class SqueezeExcite(nn.Module):
    """x + gamma * (x * s(x) - x) with squeeze-excitation weights s (reduction 4)."""

    def __init__(self, dim: int, reduction: int = 4):
        super().__init__()
        hidden = max(1, dim // reduction)
        self.fc = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim), nn.Sigmoid()
        )
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        """Identity while gamma is 0."""
        s = self.fc(x.mean(dim=(2, 3)))[:, :, None, None]
        return x + self.gamma * (x * s - x)


class Residual(nn.Module):
    """x + body(x); the body ends in a GroupNorm whose weight starts at zero."""

    def __init__(self, body: nn.Sequential):
        super().__init__()
        self.body = body
        last = body[-1]
        if not isinstance(last, nn.GroupNorm):
            raise TypeError("a residual seed body must end in a GroupNorm (its zeroed gate)")
        nn.init.zeros_(last.weight)

    def forward(self, x: Tensor) -> Tensor:
        """Identity while the last GroupNorm's weight is 0."""
        return x + self.body(x)


# A ReLU after the zeroed GroupNorm would sit at exactly 0, where its gradient is 0, and the seed
# could never leave the identity; so both residual bodies end in the GroupNorm.


@BlueprintRegistry.register("norm", "cnn", 100, "gated BatchNorm")
def norm_seed(dim: int) -> nn.Module:
    """Gated BatchNorm (2*dim + 1 parameters)."""
    return GatedNorm(dim)


@BlueprintRegistry.register("attention", "cnn", 2_000, "squeeze-excitation channel attention")
def attention_seed(dim: int) -> nn.Module:
    """Gated SE channel attention, reduction 4."""
    return SqueezeExcite(dim)


@BlueprintRegistry.register("depthwise", "cnn", 4_800, "depthwise-separable conv")
def depthwise_seed(dim: int) -> nn.Module:
    """Depthwise 3x3, ReLU, pointwise 1x1, zeroed GroupNorm."""
    return Residual(
        nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False),
            nn.ReLU(),
            nn.Conv2d(dim, dim, 1, bias=False),
            nn.GroupNorm(_groups(dim), dim),
        )
    )


@BlueprintRegistry.register("conv_enhance", "cnn", 74_000, "two full 3x3 conv layers")
def conv_enhance_seed(dim: int) -> nn.Module:
    """conv3x3, GroupNorm, ReLU, conv3x3, zeroed GroupNorm."""
    return Residual(
        nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(dim), dim),
            nn.ReLU(),
            nn.Conv2d(dim, dim, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(dim), dim),
        )
    )
