"""The loss-primary shaped reward: loss term, stage potential, rent, terminal bonus.

r = loss term + w_s·(γ·Φ(s') - Φ(s)) - rent + [terminal]·w_T·clamp((baseline - L)/R, 0, 1) - [rollback]·10.

Loss term, `loss_mode: potential` (default): w·(Ψ(L_prev) - Ψ(L)) with Ψ(L) = clip(L, 0, cap)/σ and
cap = baseline + M·σ (a non-finite loss sits at the cap). It is a difference of potentials, so over an
episode it sums to w·(Ψ(L_0) - Ψ(L_T)): a loss path that ends where it started earns nothing, and
noise or churn cannot be farmed. `loss_mode: seed_asymmetric` (the seed's ablation): -w·z with
z = clip(Δ/σ, -M, M), scaled by ρ when positive (a regression), so spikes that recover earn reward.
Φ(terminal) = 0, so the stage terms of an episode telescope to -Φ(s_0) = 0 and cannot be farmed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from esper.leyline import SeedStage, TaskConfig

FOSSIL_POTENTIAL = 7.0
STAGE_POTENTIAL = {
    SeedStage.GERMINATED: 1.0,
    SeedStage.TRAINING: 2.0,
    SeedStage.BLENDING: 3.0,
    SeedStage.SHADOWING: 4.0,
    SeedStage.PROBATIONARY: 5.0,
}
# Phase 1's per-epoch bonuses for a seed's presence; they pay for waiting, hence opt-in only.
PRESENCE_BONUS = {SeedStage.TRAINING: 0.2, SeedStage.BLENDING: 0.3}
FOSSIL_PRESENCE_BONUS = 0.5
STAGE_BONUS_MODES = ("potential", "presence")
LOSS_MODES = ("potential", "seed_asymmetric")


@dataclass(frozen=True)
class RewardConfig:
    """The reward's constants: the task's loss scale plus the §6 weights (config block `reward`)."""

    loss_delta_std: float
    baseline_loss: float
    target_loss: float
    loss_mode: str = "potential"
    loss_delta_weight: float = 5.0
    max_loss_delta: float = 5.0
    regression_scale: float = 0.5
    stage_weight: float = 0.1
    gamma: float = 0.99
    stage_bonus: str = "potential"
    terminal_weight: float = 1.0
    rent_weight: float = 0.0
    rent_cap: float = 5.0
    rent_grace_epochs: int = 3
    germination_grace_epochs: int = 0
    governor_penalty: float = 10.0

    def __post_init__(self) -> None:
        if not self.loss_delta_std > 0:
            raise ValueError(f"loss_delta_std must be positive, got {self.loss_delta_std}")
        if not self.baseline_loss > self.target_loss:
            raise ValueError(
                f"baseline_loss {self.baseline_loss} must exceed target_loss {self.target_loss}"
            )
        if self.stage_bonus not in STAGE_BONUS_MODES:
            raise ValueError(
                f"stage_bonus {self.stage_bonus!r}; known: {', '.join(STAGE_BONUS_MODES)}"
            )
        if self.loss_mode not in LOSS_MODES:
            raise ValueError(f"loss_mode {self.loss_mode!r}; known: {', '.join(LOSS_MODES)}")
        if self.loss_mode == "potential" and self.germination_grace_epochs:
            # Muting part of a potential difference would break the telescoping sum.
            raise ValueError("germination_grace_epochs needs loss_mode seed_asymmetric")
        if not 0 < self.gamma <= 1 or not 0 < self.regression_scale <= 1:
            raise ValueError("gamma and regression_scale must lie in (0, 1]")

    @property
    def achievable_range(self) -> float:
        """R = baseline - target."""
        return self.baseline_loss - self.target_loss

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], task: TaskConfig) -> RewardConfig:
        """The task's loss scale with the weights of the config's `reward` block (defaults if absent)."""
        return cls(
            loss_delta_std=task.loss_delta_std,
            baseline_loss=task.baseline_loss,
            target_loss=task.target_loss,
            **dict(cfg.get("reward") or {}),
        )


REWARD_KEYS = tuple(
    f.name
    for f in fields(RewardConfig)
    if f.name not in ("loss_delta_std", "baseline_loss", "target_loss")
)


@dataclass(frozen=True)
class RewardParts:
    """One step's reward, term by term."""

    loss: float
    stage: float
    rent: float
    terminal: float
    governor: float

    @property
    def total(self) -> float:
        """The reward: the sum of the parts (rent and governor are already signed)."""
        return self.loss + self.stage + self.rent + self.terminal + self.governor

    def to_record(self) -> dict[str, float]:
        """The parts and the total, for steps.jsonl."""
        return {
            "loss": self.loss,
            "stage": self.stage,
            "rent": self.rent,
            "terminal": self.terminal,
            "governor": self.governor,
            "total": self.total,
        }


def potential(fossils: int, stage: int | None) -> float:
    """Φ = 7·#fossils + Φ_stage(live seed stage); no seed, or a dead one, adds 0."""
    return FOSSIL_POTENTIAL * fossils + STAGE_POTENTIAL.get(stage, 0.0)


def loss_potential(rc: RewardConfig, loss: float) -> float:
    """Ψ(L) = clip(L, 0, baseline + M·σ)/σ; a non-finite loss counts as the cap (the worst)."""
    cap = rc.baseline_loss + rc.max_loss_delta * rc.loss_delta_std
    clipped = min(max(loss, 0.0), cap) if math.isfinite(loss) else cap
    return clipped / rc.loss_delta_std


def loss_term(
    rc: RewardConfig, val_loss: float, prev_val_loss: float, muted: bool = False
) -> float:
    """The loss part of one step's reward under `rc.loss_mode` (`muted` hides a regression, asymmetric only)."""
    if rc.loss_mode == "potential":
        return rc.loss_delta_weight * (
            loss_potential(rc, prev_val_loss) - loss_potential(rc, val_loss)
        )
    z = normalised_delta(rc, val_loss, prev_val_loss)
    return -rc.loss_delta_weight * (0.0 if z > 0 and muted else z)


def normalised_delta(rc: RewardConfig, val_loss: float, prev_val_loss: float) -> float:
    """z = clip(Δ/σ, -M, M), scaled by ρ if positive; a non-finite loss counts as the worst, M·ρ."""
    delta = val_loss - prev_val_loss
    z = delta / rc.loss_delta_std if math.isfinite(delta) else rc.max_loss_delta
    z = max(-rc.max_loss_delta, min(rc.max_loss_delta, z))
    return z * rc.regression_scale if z > 0 else z


def step_reward(
    rc: RewardConfig,
    *,
    val_loss: float,
    prev_val_loss: float,
    phi: float,
    next_phi: float,
    terminal: bool,
    added_params: int,
    host_params: int,
    epoch: int,
    governor_rollback: bool,
    stage: int | None = None,
    fossilized: bool = False,
    epochs_since_germination: int | None = None,
) -> RewardParts:
    """The reward of one epoch: Δ = val_loss - prev_val_loss, Φ before/after, `epoch` counted from 1.

    `stage` (the live seed's stage after the epoch) and `fossilized` (a seed fossilised this step)
    matter only with `stage_bonus: presence`; `epochs_since_germination` only with a grace period.
    """
    muted = (
        epochs_since_germination is not None
        and epochs_since_germination < rc.germination_grace_epochs
    )
    if rc.stage_bonus == "potential":
        shaped = rc.stage_weight * (rc.gamma * (0.0 if terminal else next_phi) - phi)
    else:
        shaped = PRESENCE_BONUS.get(stage, 0.0) + (FOSSIL_PRESENCE_BONUS if fossilized else 0.0)
    rent = 0.0
    if rc.rent_weight > 0 and epoch > rc.rent_grace_epochs and added_params > 0:
        rent = rc.rent_weight * min(rc.rent_cap, math.log1p(added_params / host_params))
    bonus = 0.0
    if terminal and math.isfinite(val_loss):
        gain = (rc.baseline_loss - val_loss) / rc.achievable_range
        bonus = rc.terminal_weight * max(0.0, min(1.0, gain))
    return RewardParts(
        loss=loss_term(rc, val_loss, prev_val_loss, muted),
        stage=shaped,
        rent=-rent,
        terminal=bonus,
        governor=-rc.governor_penalty if governor_rollback else 0.0,
    )
