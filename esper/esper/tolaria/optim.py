"""Optimisers from a config block: SGD (CIFAR reference) or AdamW (TinyStories)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn


def make_optimizer(cfg: Mapping[str, Any], params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """`name: sgd` (lr, momentum, weight_decay) or `name: adamw` (lr, weight_decay, betas)."""
    params = list(params)
    if cfg["name"] == "sgd":
        return torch.optim.SGD(
            params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
        )
    if cfg["name"] == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], betas=tuple(cfg["betas"])
        )
    raise ValueError(f"unknown optimizer {cfg['name']!r}; known: sgd, adamw")
