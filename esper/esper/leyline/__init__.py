"""Leyline: the shared contracts — stages, transitions, actions, observation schema, tasks, signals."""

from esper.leyline.actions import (
    Gating,
    action_mask,
    blueprint_of,
    build_action_enum,
    can_advance,
    gate_mask,
    germinate_actions,
)
from esper.leyline.schema import FEATURE_NAMES, OBS_DIM, OBS_SCHEMA, Feature, build_observation
from esper.leyline.signals import HISTORY, PolicySignals, SeedEvent, TrainingSignals
from esper.leyline.stages import (
    BLENDED_STAGES,
    EMBARGO_STAGES,
    LEGAL_TRANSITIONS,
    LIVE_STAGES,
    IllegalTransitionError,
    SeedStage,
    check_transition,
    is_legal,
)
from esper.leyline.tasks import TASK_TYPES, TaskConfig

__all__ = [
    "BLENDED_STAGES",
    "EMBARGO_STAGES",
    "FEATURE_NAMES",
    "HISTORY",
    "LEGAL_TRANSITIONS",
    "LIVE_STAGES",
    "OBS_DIM",
    "OBS_SCHEMA",
    "TASK_TYPES",
    "Feature",
    "Gating",
    "IllegalTransitionError",
    "PolicySignals",
    "SeedEvent",
    "SeedStage",
    "TaskConfig",
    "TrainingSignals",
    "action_mask",
    "blueprint_of",
    "build_action_enum",
    "build_observation",
    "can_advance",
    "check_transition",
    "gate_mask",
    "germinate_actions",
    "is_legal",
]
