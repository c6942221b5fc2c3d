"""A trained Tamiyo: the PPO actor behind the baselines' `act(obs, mask, signals)` interface."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.leyline import FEATURE_NAMES, OBS_DIM, PolicySignals
from esper.tamiyo.network import ActorCritic
from esper.tamiyo.normaliser import EmaNormaliser
from labkit.checkpoint import load_checkpoint
from labkit.errors import SchemaError

FORMAT = "esper-ppo-policy/1"


def policy_payload(
    net: ActorCritic, normaliser: EmaNormaliser, *, topology: str, actions: list[str], task: str
) -> dict[str, Any]:
    """What policy.pt holds: weights, the frozen observation normaliser, and what they were trained for."""
    return {
        "format": FORMAT,
        "topology": topology,
        "task": task,
        "actions": actions,
        "features": list(FEATURE_NAMES),
        "hidden": net.trunk[0].out_features,
        "head_hidden": net.actor[0].out_features,
        "net": net.state_dict(),
        "normaliser": normaliser.state_dict(),
    }


class PPOPolicy:
    """Deterministic: the argmax of the masked logits on the normalised observation."""

    name = "ppo"

    def __init__(self, payload: dict[str, Any], source: str = "<memory>"):
        if payload.get("format") != FORMAT:
            raise SchemaError(f"{source}: not a Tamiyo policy (format {payload.get('format')!r})")
        if payload["features"] != list(FEATURE_NAMES):
            raise SchemaError(f"{source}: trained on another observation schema")
        self.source = source
        self.topology: str = payload["topology"]
        self.task: str = payload["task"]
        self.actions: list[str] = payload["actions"]
        self.net = ActorCritic(
            OBS_DIM, len(self.actions), payload["hidden"], payload["head_hidden"]
        )
        self.net.load_state_dict(payload["net"])
        self.net.eval()
        self.normaliser = EmaNormaliser(OBS_DIM)
        self.normaliser.load_state_dict(payload["normaliser"])

    def reset(self, seed: int) -> None:
        """Nothing to reset: the policy has no per-episode state or randomness."""

    def act(self, obs: np.ndarray, mask: np.ndarray, signals: PolicySignals) -> int:
        """The most likely legal action."""
        if len(mask) != len(self.actions):
            raise ValueError(
                f"policy {self.source} has {len(self.actions)} actions, the mask {len(mask)}"
            )
        x = torch.from_numpy(self.normaliser(obs)[None])
        with torch.no_grad():
            logits, _ = self.net(x, torch.as_tensor(np.asarray(mask, dtype=bool))[None])
        return int(logits.argmax(-1))

    def state_dict(self) -> dict[str, Any]:
        """No state changes while acting."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """No state changes while acting."""


def load_ppo_policy(path: str | os.PathLike) -> PPOPolicy:
    """Load train-tamiyo's policy.pt (MissingInputError if absent, SchemaError if not a policy)."""
    return PPOPolicy(load_checkpoint(Path(path)), source=str(path))
