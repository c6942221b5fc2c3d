"""The observation schema: an ordered tuple of features, each with the rule that normalises it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from esper.leyline.signals import HISTORY, PolicySignals
from esper.leyline.tasks import TaskConfig

CLIP = 5.0


@dataclass(frozen=True)
class Feature:
    """One observation entry: the PolicySignals value `name` scaled by the rule `normaliser`."""

    name: str
    normaliser: str


def _clip(x: float) -> float:
    # A diverged loss is the worst case, not a hole in the observation.
    if math.isnan(x):
        return CLIP
    return max(-CLIP, min(CLIP, x))


NORMALISERS: dict[str, Callable[[float, TaskConfig, PolicySignals], float]] = {
    "per_epoch": lambda v, t, s: v / t.max_epochs,
    "per_step": lambda v, t, s: v / t.max_steps,
    "loss": lambda v, t, s: _clip((v - t.target_loss) / t.achievable_range),
    "delta": lambda v, t, s: _clip(v / t.loss_delta_std),
    "plateau": lambda v, t, s: min(v / 10.0, 1.0),
    "flag": lambda v, t, s: float(v),
    "stage": lambda v, t, s: v / 10.0,
    "raw": lambda v, t, s: float(v),
    "per_slot": lambda v, t, s: v / s.n_slots,
    "per_embargo": lambda v, t, s: v / t.embargo_epochs,
}

OBS_SCHEMA: tuple[Feature, ...] = (
    Feature("epoch", "per_epoch"),
    Feature("global_step", "per_step"),
    Feature("train_loss", "loss"),
    Feature("val_loss", "loss"),
    *(Feature(f"loss_hist_{i}", "loss") for i in range(HISTORY)),
    Feature("best_val_loss", "loss"),
    Feature("loss_delta", "delta"),
    Feature("seed_counterfactual", "delta"),
    Feature("seed_contribution", "delta"),
    Feature("plateau_epochs", "plateau"),
    Feature("has_active_seed", "flag"),
    Feature("seed_stage", "stage"),
    Feature("seed_epochs_in_stage", "per_epoch"),
    Feature("seed_alpha", "raw"),
    Feature("available_slots", "per_slot"),
    Feature("embargo_left", "per_embargo"),
)
OBS_DIM = len(OBS_SCHEMA)
FEATURE_NAMES = tuple(f.name for f in OBS_SCHEMA)


def raw_value(signals: PolicySignals, name: str) -> float:
    """The unnormalised value of feature `name` in `signals`."""
    if name.startswith("loss_hist_"):
        return signals.loss_history[int(name.removeprefix("loss_hist_"))]
    return float(getattr(signals, name))


def build_observation(signals: PolicySignals, task: TaskConfig) -> np.ndarray:
    """The float32 observation vector of length OBS_DIM, in OBS_SCHEMA order."""
    return np.array(
        [NORMALISERS[f.normaliser](raw_value(signals, f.name), task, signals) for f in OBS_SCHEMA],
        dtype=np.float32,
    )
