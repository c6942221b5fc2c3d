"""Tamiyo's actor-critic: a 2×256 ReLU trunk, 128-unit actor and critic heads, masked logits."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Orthogonal init (√2; actor output 0.01 so the first policy is near-uniform, critic output 1)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 256, head_hidden: int = 128):
        super().__init__()
        g = math.sqrt(2)
        self.trunk = nn.Sequential(
            _init(nn.Linear(obs_dim, hidden), g),
            nn.ReLU(),
            _init(nn.Linear(hidden, hidden), g),
            nn.ReLU(),
        )
        self.actor = nn.Sequential(
            _init(nn.Linear(hidden, head_hidden), g),
            nn.ReLU(),
            _init(nn.Linear(head_hidden, n_actions), 0.01),
        )
        self.critic = nn.Sequential(
            _init(nn.Linear(hidden, head_hidden), g),
            nn.ReLU(),
            _init(nn.Linear(head_hidden, 1), 1.0),
        )

    def forward(self, obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Masked logits [B, A] and values [B]."""
        h = self.trunk(obs)
        return masked_logits(self.actor(h), mask), self.critic(h).squeeze(-1)


def masked_logits(logits: Tensor, mask: Tensor) -> Tensor:
    """Illegal actions get the most negative finite logit, so their probability is exactly 0."""
    return torch.where(mask.bool(), logits, torch.finfo(logits.dtype).min)


def log_probs(logits: Tensor) -> Tensor:
    """Log-softmax over the masked logits."""
    return torch.log_softmax(logits, dim=-1)


def normalised_entropy(logits: Tensor, mask: Tensor) -> Tensor:
    """Entropy over the legal actions divided by log(#legal), in [0, 1]; 0 when only one is legal."""
    logp = log_probs(logits)
    terms = torch.where(mask.bool(), logp.exp() * logp, torch.zeros_like(logp))
    n_legal = mask.bool().sum(-1).to(logits.dtype)
    scale = torch.where(n_legal > 1, torch.log(n_legal.clamp(min=2)), torch.ones_like(n_legal))
    return torch.where(n_legal > 1, -terms.sum(-1) / scale, torch.zeros_like(n_legal))


def sample(logits: Tensor, gen: torch.Generator) -> Tensor:
    """One action per row drawn with `gen` (never a masked one: its probability is 0)."""
    return torch.multinomial(log_probs(logits).exp(), 1, generator=gen).squeeze(-1)
