"""Tamiyo's non-learning policies behind one interface: `act(obs, mask, signals) -> action`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from esper.leyline import PolicySignals, SeedStage, TaskConfig, blueprint_of, germinate_actions
from esper.tamiyo.ppo_policy import load_ppo_policy
from labkit.determinism import generator
from labkit.errors import ConfigError


@runtime_checkable
class Policy(Protocol):
    """A controller: reset per episode, act per epoch, checkpointable."""

    name: str

    def reset(self, seed: int) -> None:
        """Start an episode (`seed` seeds any randomness of the policy)."""
        ...

    def act(self, obs: np.ndarray, mask: np.ndarray, signals: PolicySignals) -> int:
        """The action for this epoch; it must be legal under `mask`."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`."""
        ...


class StaticPolicy:
    """Always WAIT: the static-host baseline."""

    name = "static"

    def reset(self, seed: int) -> None:
        """Nothing to reset."""

    def act(self, obs: np.ndarray, mask: np.ndarray, signals: PolicySignals) -> int:
        """WAIT (action 0)."""
        return 0

    def state_dict(self) -> dict[str, Any]:
        """No state."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """No state."""


class RandomPolicy:
    """Uniform over the legal actions."""

    name = "random"

    def __init__(self) -> None:
        self.gen = generator(0, "random-policy")

    def reset(self, seed: int) -> None:
        """Seed the draws of this episode."""
        self.gen = generator(seed, "random-policy")

    def act(self, obs: np.ndarray, mask: np.ndarray, signals: PolicySignals) -> int:
        """One legal action, uniformly."""
        weights = torch.as_tensor(np.asarray(mask, dtype=np.float64))
        return int(torch.multinomial(weights, 1, generator=self.gen))

    def state_dict(self) -> dict[str, Any]:
        """The generator state."""
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator state."""
        self.gen.set_state(state["gen"])


@dataclass(frozen=True)
class HeuristicSettings:
    """The reference rules' constants (design §6), in loss terms."""

    min_epoch: int = 5
    min_plateau: int = 3
    cull_sigmas: float = 2.0
    cull_patience: int = 5
    cull_penalty: float = 2.0
    penalty_decay: float = 0.5
    penalty_skip: float = 3.0


@dataclass
class _Memory:
    penalty: dict[str, float] = field(default_factory=dict)
    next_blueprint: int = 0
    seed: str | None = None  # blueprint of the seed tracked
    stage: int | None = None
    stage_start_loss: float = 0.0
    best_loss: float = 0.0
    stale: int = 0
    prev_loss: float = 0.0
    fossilising: bool = False


class HeuristicPolicy:
    """Germinate on a plateau (rotating blueprints, avoiding recently culled ones), advance when
    legal, cull a seed whose stage made the loss worse or that stopped helping, fossilise if c > 0."""

    name = "heuristic"

    def __init__(self, actions: type[IntEnum], task: TaskConfig, settings: HeuristicSettings):
        self.actions = actions
        self.task = task
        self.settings = settings
        self.blueprints = [blueprint_of(a) for a in germinate_actions(actions)]
        self.reset(0)

    def reset(self, seed: int) -> None:
        """Forget the previous episode."""
        self.mem = _Memory(penalty=dict.fromkeys(self.blueprints, 0.0))

    def act(self, obs: np.ndarray, mask: np.ndarray, signals: PolicySignals) -> int:
        """Apply the rules to the raw signals (the observation is not needed)."""
        m, s = self.mem, self.settings
        loss = signals.val_loss
        for name in m.penalty:
            m.penalty[name] *= s.penalty_decay
        if m.seed is not None and signals.seed_blueprint != m.seed:
            if not m.fossilising:  # culled (by us or the governor)
                m.penalty[m.seed] += s.cull_penalty
            m.seed, m.stage = None, None
        m.fossilising = False
        if signals.has_active_seed:
            action = self._tend(signals, mask, loss)
        else:
            action = self._germinate(signals, mask, loss)
        if not mask[action]:  # the config's gating can forbid a cull the rules ask for: wait
            action = self.actions.WAIT
        m.prev_loss = loss
        return int(action)

    def _tend(self, signals: PolicySignals, mask: np.ndarray, loss: float) -> IntEnum:
        m, s, a = self.mem, self.settings, self.actions
        if signals.seed_stage != m.stage:
            m.stage, m.stage_start_loss = signals.seed_stage, m.prev_loss
        if loss < m.best_loss:
            m.best_loss, m.stale = loss, 0
        else:
            m.stale += 1
        if signals.seed_stage == SeedStage.PROBATIONARY:
            if signals.seed_contribution > 0 and mask[a.ADVANCE]:
                m.fossilising = True
                return a.ADVANCE
            return a.CULL
        spiked = not loss <= m.stage_start_loss + s.cull_sigmas * self.task.loss_delta_std
        if spiked or m.stale >= s.cull_patience:
            return a.CULL
        if signals.seed_stage == SeedStage.TRAINING and mask[a.ADVANCE]:
            return a.ADVANCE
        return a.WAIT

    def _germinate(self, signals: PolicySignals, mask: np.ndarray, loss: float) -> IntEnum:
        m, s = self.mem, self.settings
        ready = signals.epoch >= s.min_epoch and signals.plateau_epochs >= s.min_plateau
        if not ready or signals.embargo_left > 0:
            return self.actions.WAIT
        options = germinate_actions(self.actions)
        for k in range(len(options)):
            i = (m.next_blueprint + k) % len(options)
            name = self.blueprints[i]
            if mask[options[i]] and m.penalty[name] < s.penalty_skip:
                m.next_blueprint = (i + 1) % len(options)
                m.seed, m.stage = name, int(SeedStage.GERMINATED)
                m.stage_start_loss = m.best_loss = loss
                m.stale = 0
                return options[i]
        return self.actions.WAIT

    def state_dict(self) -> dict[str, Any]:
        """The rules' memory."""
        return asdict(self.mem)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the rules' memory."""
        self.mem = _Memory(**state)


POLICIES = ("static", "heuristic", "random")


def make_policy(
    name: str, actions: type[IntEnum], task: TaskConfig, heuristic: Mapping[str, Any]
) -> Policy:
    """One of POLICIES by name, or a trained Tamiyo from a policy .pt file."""
    if name.endswith(".pt"):
        policy = load_ppo_policy(name)
        if policy.actions != [a.name for a in actions]:
            raise ConfigError(
                f"{name} was trained for actions {policy.actions}, this task has {[a.name for a in actions]}"
            )
        return policy
    if name == "static":
        return StaticPolicy()
    if name == "random":
        return RandomPolicy()
    if name == "heuristic":
        return HeuristicPolicy(actions, task, HeuristicSettings(**heuristic))
    raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")
