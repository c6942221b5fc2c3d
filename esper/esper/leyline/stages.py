"""Seed lifecycle stages and the only transitions between them that are legal."""

from __future__ import annotations

from enum import IntEnum


class SeedStage(IntEnum):
    """Where a seed is in its life; the integer values are part of the observation contract."""

    UNKNOWN = 0
    DORMANT = 1
    GERMINATED = 2
    TRAINING = 3
    BLENDING = 4
    SHADOWING = 5
    PROBATIONARY = 6
    FOSSILIZED = 7
    CULLED = 8
    EMBARGOED = 9
    RESETTING = 10


# A live seed exists in these stages: it can be culled, and it blocks a new germination.
LIVE_STAGES = frozenset(
    {
        SeedStage.GERMINATED,
        SeedStage.TRAINING,
        SeedStage.BLENDING,
        SeedStage.SHADOWING,
        SeedStage.PROBATIONARY,
    }
)
# The slot output mixes the seed in (alpha > 0) in these stages.
BLENDED_STAGES = frozenset({SeedStage.BLENDING, SeedStage.SHADOWING, SeedStage.PROBATIONARY})
# A culled slot waits in these stages before it takes a new seed.
EMBARGO_STAGES = frozenset({SeedStage.CULLED, SeedStage.EMBARGOED, SeedStage.RESETTING})

_NEXT = {
    SeedStage.GERMINATED: SeedStage.TRAINING,
    SeedStage.TRAINING: SeedStage.BLENDING,
    SeedStage.BLENDING: SeedStage.SHADOWING,
    SeedStage.SHADOWING: SeedStage.PROBATIONARY,
    SeedStage.PROBATIONARY: SeedStage.FOSSILIZED,
}
LEGAL_TRANSITIONS: dict[SeedStage, frozenset[SeedStage]] = {
    stage: frozenset() for stage in SeedStage
} | {
    SeedStage.DORMANT: frozenset({SeedStage.GERMINATED}),
    **{live: frozenset({nxt, SeedStage.CULLED}) for live, nxt in _NEXT.items()},
    SeedStage.CULLED: frozenset({SeedStage.EMBARGOED}),
    SeedStage.EMBARGOED: frozenset({SeedStage.RESETTING}),
    SeedStage.RESETTING: frozenset({SeedStage.DORMANT}),
}


class IllegalTransitionError(ValueError):
    """A seed was asked to move between two stages that the lifecycle does not connect."""


def is_legal(source: SeedStage, target: SeedStage) -> bool:
    """True if the lifecycle allows `source -> target`."""
    return target in LEGAL_TRANSITIONS[source]


def check_transition(source: SeedStage, target: SeedStage) -> None:
    """Raise IllegalTransitionError unless `source -> target` is legal."""
    if not is_legal(source, target):
        allowed = ", ".join(s.name for s in sorted(LEGAL_TRANSITIONS[source])) or "none"
        raise IllegalTransitionError(
            f"illegal seed transition {source.name} -> {target.name} (from {source.name}: {allowed})"
        )
