"""Whole episodes on several EsperEnvs in lockstep (one process, like SyncVectorEnv), with their logs.

Every episode of an Esper task has `max_epochs` steps, so a batch of envs starts and ends together
and no autoreset is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from esper.simic.env import EsperEnv

# act(raw observations [N, D], masks [N, A]) -> actions [N]
Chooser = Callable[[np.ndarray, np.ndarray], np.ndarray]
STEP_KEYS = (
    "val_loss",
    "train_loss",
    "seed_alpha",
    "seed_contribution",
    "seed_blueprint",
    "host_params",
    "seed_params",
    "fossils",
)


@dataclass
class Rollout:
    """Arrays [T, N] (obs [T, N, D], masks [T, N, A]) plus per-step and per-episode records."""

    obs: np.ndarray
    masks: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    steps: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)


def run_episodes(envs: list[EsperEnv], seeds: list[int], act: Chooser) -> Rollout:
    """One whole episode per env (env i on seed i), actions from `act`."""
    if len(seeds) != len(envs):
        raise ValueError(f"{len(envs)} envs need {len(envs)} seeds, got {len(seeds)}")
    first = [env.reset(seed=s) for env, s in zip(envs, seeds, strict=True)]
    obs = np.stack([o for o, _ in first])
    tallies = [_Tally(env, info) for env, (_, info) in zip(envs, first, strict=True)]
    buf: dict[str, list[np.ndarray]] = {
        k: [] for k in ("obs", "masks", "actions", "rewards", "dones")
    }
    steps: list[dict[str, Any]] = []
    done = False
    while not done:
        masks = np.stack([env.action_masks() for env in envs])
        actions = np.asarray(act(obs, masks), dtype=np.int64)
        results = [env.step(int(a)) for env, a in zip(envs, actions, strict=True)]
        buf["obs"].append(obs)
        buf["masks"].append(masks)
        buf["actions"].append(actions)
        buf["rewards"].append(np.array([r[1] for r in results], dtype=np.float64))
        buf["dones"].append(np.array([r[2] for r in results], dtype=np.float64))
        for i, (_, reward, _, _, info) in enumerate(results):
            tallies[i].add(reward, info)
            steps.append(step_record(i, envs[i], reward, info))
        obs = np.stack([r[0] for r in results])
        done = all(r[2] for r in results)
        if any(r[2] for r in results) and not done:
            raise RuntimeError("envs in one batch ended at different epochs")
    arrays = {k: np.stack(v) for k, v in buf.items()}
    return Rollout(**arrays, steps=steps, episodes=[t.record() for t in tallies])


def step_record(env_idx: int, env: EsperEnv, reward: float, info: dict[str, Any]) -> dict[str, Any]:
    """One line of steps.jsonl: action, mask, reward and its parts, stage, losses, sizes."""
    signals = info["signals"]
    return {
        "env": env_idx,
        "episode_seed": env.episode_seed,
        "epoch": signals["epoch"],
        "action": info["action"],
        "mask": info["mask"],
        "reward": reward,
        "reward_parts": info["reward_parts"],
        "stage": info["stage"],
        **{k: signals[k] for k in STEP_KEYS},
        "val_accuracy": signals["val_accuracy"],
        "val_perplexity": signals["val_perplexity"],
        "events": [e["kind"] for e in info["events"]],
    }


class _Tally:
    """What one episode did, summed as it runs."""

    def __init__(self, env: EsperEnv, reset_info: dict[str, Any]):
        self.env = env
        self.initial = reset_info["signals"]
        self.ret = 0.0
        self.parts: dict[str, float] = {}
        self.actions = dict.fromkeys((a.name for a in env.actions), 0)
        self.events = dict.fromkeys(("germinated", "fossilized", "culled", "governor_rollback"), 0)
        self.fossil_blueprints: list[str] = []
        self.last: dict[str, Any] = self.initial

    def add(self, reward: float, info: dict[str, Any]) -> None:
        self.ret += reward
        for k, v in info["reward_parts"].items():
            self.parts[k] = self.parts.get(k, 0.0) + v
        self.actions[info["action"]] += 1
        for event in info["events"]:
            if event["kind"] in self.events:
                self.events[event["kind"]] += 1
            if event["kind"] == "fossilized":
                self.fossil_blueprints.append(event["blueprint"])
        self.last = info["signals"]

    def record(self) -> dict[str, Any]:
        s = self.last
        return {
            "seed": self.env.episode_seed,
            "task": self.env.task.name,
            "return": self.ret,
            "reward_parts": self.parts,
            "epochs": s["epoch"],
            "val_loss": s["val_loss"],
            "best_val_loss": s["best_val_loss"],
            "val_accuracy": s["val_accuracy"],
            "val_perplexity": s["val_perplexity"],
            "test_loss": s["test_loss"],
            "test_accuracy": s["test_accuracy"],
            "test_perplexity": s["test_perplexity"],
            "initial_val_loss": self.initial["val_loss"],
            "params_added": s["host_params"] - self.initial["host_params"],
            "germinations": self.events["germinated"],
            "fossils": self.events["fossilized"],
            "culls": self.events["culled"],
            "rollbacks": self.events["governor_rollback"],
            "fossil_blueprints": self.fossil_blueprints,
            "action_counts": self.actions,
        }
