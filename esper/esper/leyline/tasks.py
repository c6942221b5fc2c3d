"""TaskConfig: what a task is (classification or LM) and the constants that normalise its losses."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TASK_TYPES = {"classification": "cnn", "lm": "transformer"}


@dataclass(frozen=True)
class TaskConfig:
    """One task's shape and loss scale; `baseline_loss` is ln(classes or vocabulary), never configured."""

    name: str
    task_type: str
    topology: str
    n_outputs: int
    target_loss: float
    loss_delta_std: float
    max_epochs: int
    steps_per_epoch: int
    blending_steps: int = 5
    blend_tau: float = 1.0
    dwell_fraction: float = 0.1
    embargo_epochs: int = 5
    host: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    optimizer: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if TASK_TYPES.get(self.task_type) != self.topology:
            pairs = ", ".join(f"{t}/{h}" for t, h in TASK_TYPES.items())
            raise ValueError(
                f"task_type {self.task_type!r} with topology {self.topology!r}; valid pairs: {pairs}"
            )
        if self.n_outputs < 2:
            raise ValueError(f"a task needs at least 2 classes or tokens, got {self.n_outputs}")
        if not 0 <= self.target_loss < self.baseline_loss:
            raise ValueError(
                f"target_loss {self.target_loss} must lie in [0, baseline ln({self.n_outputs}) = "
                f"{self.baseline_loss:.3f})"
            )
        for key in ("loss_delta_std", "blend_tau", "dwell_fraction"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)}")
        for key in ("max_epochs", "steps_per_epoch", "blending_steps", "embargo_epochs"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")

    @property
    def baseline_loss(self) -> float:
        """Cross-entropy of a uniform guess: ln(number of classes or vocabulary size)."""
        return math.log(self.n_outputs)

    @property
    def achievable_range(self) -> float:
        """R = baseline - target: the loss range rewards and observations are scaled by."""
        return self.baseline_loss - self.target_loss

    @property
    def max_steps(self) -> int:
        """Optimiser steps in a whole episode."""
        return self.max_epochs * self.steps_per_epoch

    @property
    def dwell_epochs(self) -> int:
        """d = max(1, floor(dwell_fraction * max_epochs)): the TRAINING and SHADOWING dwell."""
        return max(1, math.floor(self.dwell_fraction * self.max_epochs))

    def blend_alpha(self, step: int) -> float:
        """alpha_k = sigmoid((k - T/2) / tau) for blending step k < T; 1 from k = T on."""
        if step >= self.blending_steps:
            return 1.0
        return 1.0 / (1.0 + math.exp(-(step - self.blending_steps / 2) / self.blend_tau))
