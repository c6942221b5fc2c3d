"""Tamiyo's action enum, derived per topology from the blueprint names, and the mask of legal actions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from functools import cache

import numpy as np

from esper.leyline.stages import LIVE_STAGES, SeedStage

GERMINATE_PREFIX = "GERMINATE_"
BLUEPRINT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@cache
def build_action_enum(topology: str, blueprints: tuple[str, ...]) -> type[IntEnum]:
    """`WAIT=0, GERMINATE_<NAME>=1..N` (in the order given), `ADVANCE=N+1`, `CULL=N+2`."""
    bad = [name for name in blueprints if not BLUEPRINT_NAME.match(name)]
    if bad or len(set(blueprints)) != len(blueprints):
        raise ValueError(f"blueprint names must be unique lowercase identifiers, got {blueprints}")
    members = {"WAIT": 0}
    members |= {f"{GERMINATE_PREFIX}{name.upper()}": i for i, name in enumerate(blueprints, 1)}
    members |= {"ADVANCE": len(blueprints) + 1, "CULL": len(blueprints) + 2}
    return IntEnum(f"{topology.title()}Action", members)


def blueprint_of(action: IntEnum) -> str | None:
    """The blueprint a GERMINATE_* action plants, None for every other action."""
    if not action.name.startswith(GERMINATE_PREFIX):
        return None
    return action.name[len(GERMINATE_PREFIX) :].lower()


def germinate_actions(actions: type[IntEnum]) -> list[IntEnum]:
    """The GERMINATE_* members of an action enum, in blueprint order."""
    return [a for a in actions if blueprint_of(a) is not None]


def can_advance(stage: SeedStage, epochs_in_stage: int, dwell_epochs: int) -> bool:
    """ADVANCE is legal from TRAINING after the dwell and from PROBATIONARY (to fossilise)."""
    if stage == SeedStage.TRAINING:
        return epochs_in_stage >= dwell_epochs
    return stage == SeedStage.PROBATIONARY


@dataclass(frozen=True)
class Gating:
    """Optional reference gating (config block `gating`): germinate only from epoch `min_epoch` and
    after `min_plateau` plateau epochs; cull only a seed at least `min_cull_age` epochs old."""

    min_epoch: int = 0
    min_plateau: int = 0
    min_cull_age: int = 0


def gate_mask(
    mask: np.ndarray,
    actions: type[IntEnum],
    gating: Gating,
    *,
    epoch: int,
    plateau_epochs: int,
    seed_age: int | None,
) -> np.ndarray:
    """`mask` with germination and cull further restricted by `gating` (WAIT stays legal)."""
    out = mask.copy()
    if epoch < gating.min_epoch or plateau_epochs < gating.min_plateau:
        for action in germinate_actions(actions):
            out[action] = False
    if seed_age is not None and seed_age < gating.min_cull_age:
        out[actions.CULL] = False
    return out


def action_mask(
    actions: type[IntEnum],
    *,
    live_stage: SeedStage | None,
    epochs_in_stage: int,
    dwell_epochs: int,
    slot_free: bool,
) -> np.ndarray:
    """Boolean mask over `actions`: WAIT always; GERMINATE_* with no live seed and a free slot;
    ADVANCE per `can_advance`; CULL while a seed is live."""
    mask = np.zeros(len(actions), dtype=bool)
    mask[actions.WAIT] = True
    live = live_stage is not None and live_stage in LIVE_STAGES
    if not live and slot_free:
        for action in germinate_actions(actions):
            mask[action] = True
    if live:
        mask[actions.ADVANCE] = can_advance(live_stage, epochs_in_stage, dwell_epochs)
        mask[actions.CULL] = True
    return mask
