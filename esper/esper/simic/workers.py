"""Rollout workers: whole episodes, one per job, in this process or in persistent worker processes.

A job names its episode seed, an actor and the actor's random stream; every job plays on a single
env with a batch of one, so where it runs (and beside which other jobs) cannot change its bytes. The
pool's processes are forked from the parent (its torch import and data come along) and live for
the whole run, each with one EsperEnv, because a fresh process per episode (labkit's
LocalExecutor) would pay a torch import and a data load every time.
"""

from __future__ import annotations

import copy
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from esper.config import set_threads
from esper.simic.env import EsperEnv
from esper.simic.rollout import Chooser, Rollout, run_episodes
from esper.tamiyo import RandomPolicy
from esper.tamiyo.network import ActorCritic, sample
from esper.tamiyo.normaliser import EmaNormaliser
from esper.tamiyo.ppo_policy import PPOPolicy
from esper.utils.data import ImageData, TokenData
from labkit.determinism import seed_everything


class Actor(Protocol):
    """Something that picks actions for one episode: `chooser(stream)` gives its act function."""

    def chooser(self, stream: int) -> Chooser:
        """The act function of one episode; `stream` seeds its randomness, if it has any."""


@dataclass(frozen=True)
class SampledActor:
    """The policy in training: a frozen copy of the net and normaliser, sampling its actions."""

    net: ActorCritic
    normaliser: EmaNormaliser

    @classmethod
    def freeze(cls, net: ActorCritic, normaliser: EmaNormaliser) -> SampledActor:
        """A copy that later updates of `net` and `normaliser` do not reach."""
        return cls(copy.deepcopy(net), copy.deepcopy(normaliser))

    def chooser(self, stream: int) -> Chooser:
        """Sample from the masked logits with a generator seeded by `stream`."""
        gen = torch.Generator().manual_seed(stream)

        def choose(obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                logits, _ = self.net(
                    torch.from_numpy(self.normaliser(obs)), torch.from_numpy(masks)
                )
            return sample(logits, gen).numpy()

        return choose


@dataclass(frozen=True)
class GreedyActor:
    """A trained policy (policy.pt) acting greedily: no randomness."""

    policy: PPOPolicy

    def chooser(self, stream: int) -> Chooser:
        """The argmax of the masked logits, row by row."""
        return lambda obs, masks: np.array(
            [self.policy.act(o, m, None) for o, m in zip(obs, masks, strict=True)]
        )


@dataclass(frozen=True)
class RandomActor:
    """Uniform over the legal actions, seeded by `stream`."""

    def chooser(self, stream: int) -> Chooser:
        """A RandomPolicy reset to `stream`."""
        policy = RandomPolicy()
        policy.reset(stream)
        return lambda obs, masks: np.array(
            [policy.act(o, m, None) for o, m in zip(obs, masks, strict=True)]
        )


@dataclass(frozen=True)
class EpisodeJob:
    """One episode: env reset to `seed`, actions from `actor` with its stream `stream`."""

    seed: int
    actor: Actor
    stream: int


def play(env: EsperEnv, job: EpisodeJob) -> Rollout:
    """Play `job` on `env` (a rollout of width 1)."""
    return run_episodes([env], [job.seed], job.actor.chooser(job.stream))


def merge(parts: list[Rollout]) -> Rollout:
    """Single-episode rollouts side by side, as one lockstep rollout over len(parts) envs would be."""
    lengths = {p.actions.shape[0] for p in parts}
    if len(lengths) != 1:
        raise RuntimeError(f"episodes in one batch ran for different numbers of epochs: {lengths}")
    steps = [
        {**part.steps[t], "env": i} for t in range(lengths.pop()) for i, part in enumerate(parts)
    ]
    arrays = {
        k: np.concatenate([getattr(p, k) for p in parts], axis=1)
        for k in ("obs", "masks", "actions", "rewards", "dones")
    }
    return Rollout(**arrays, steps=steps, episodes=[p.episodes[0] for p in parts])


_WORKER_ENV: EsperEnv | None = None


def _start_worker(cfg: dict[str, Any], data: ImageData | TokenData) -> None:
    # Forked from the parent, so torch is imported and `data` loaded already (shared pages, no
    # copy); the same threads and determinism flags as the parent (open_run) are set again.
    global _WORKER_ENV
    set_threads(cfg["threads"])
    seed_everything(cfg["seed"])
    _WORKER_ENV = EsperEnv(cfg, data)


def _play_in_worker(job: EpisodeJob) -> Rollout:
    assert _WORKER_ENV is not None, "worker started without _start_worker"
    return play(_WORKER_ENV, job)


class RolloutPool:
    """Plays batches of episode jobs: in this process (`workers == 1`) or on `workers` processes."""

    def __init__(self, cfg: dict[str, Any], data: ImageData | TokenData, workers: int = 1):
        self.env = EsperEnv(cfg, data)
        self.workers = workers
        self._pool = (
            None
            if workers == 1
            else ProcessPoolExecutor(
                max_workers=workers,
                # fork, not spawn: a spawned worker re-imports torch and reloads the data (~2 s
                # of each run's wall on 2 cores); the parent has set one thread before any work.
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker,
                initargs=(cfg, data),
            )
        )

    def play(self, jobs: list[EpisodeJob]) -> Rollout:
        """Every job's episode, merged in job order (the same bytes whatever `workers` is)."""
        if self._pool is None:
            parts = [play(self.env, job) for job in jobs]
        else:
            parts = list(self._pool.map(_play_in_worker, jobs))
        return merge(parts)

    def close(self) -> None:
        """Stop the worker processes (no-op in-process)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> RolloutPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
