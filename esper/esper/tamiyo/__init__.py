"""Tamiyo: the controller that decides, each epoch, whether to grow, advance or cull a seed."""

from esper.tamiyo.policies import (
    POLICIES,
    HeuristicPolicy,
    HeuristicSettings,
    Policy,
    RandomPolicy,
    StaticPolicy,
    make_policy,
)

__all__ = [
    "POLICIES",
    "HeuristicPolicy",
    "HeuristicSettings",
    "Policy",
    "RandomPolicy",
    "StaticPolicy",
    "make_policy",
]
