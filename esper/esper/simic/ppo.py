"""Masked PPO, CleanRL style: GAE, clipped surrogate and value loss, scaled entropy, KL early stop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from esper.tamiyo.network import ActorCritic, log_probs, normalised_entropy


@dataclass(frozen=True)
class PPOConfig:
    """The `ppo` config block (design §6 reference values as defaults)."""

    backend: str = "cleanrl"
    episodes: int = 100
    num_envs: int = 4
    workers: int = (
        1  # rollout processes; 1 plays the episodes in this process (same bytes either way)
    )
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_vloss: bool = True
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    update_epochs: int = 10
    minibatch_size: int = 64
    target_kl: float | None = 0.015
    kl_stop_factor: float = 1.5
    ent_coef: float = 0.1
    ent_coef_final: float = 0.01
    hidden: int = 256
    head_hidden: int = 128
    obs_ema: float = 0.99
    baseline_episodes: int = 4

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> PPOConfig:
        """From a config's `ppo` block (unknown keys are the schema's job)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in block.items() if k in names})

    @property
    def updates(self) -> int:
        """Updates in the run: each collects `num_envs` whole episodes."""
        return -(-self.episodes // self.num_envs)

    def ent_coef_at(self, update: int) -> float:
        """Entropy coefficient annealed linearly from `ent_coef` to `ent_coef_final` over the run."""
        frac = update / max(1, self.updates - 1)
        return self.ent_coef + frac * (self.ent_coef_final - self.ent_coef)


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_value: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns for rollouts [T, N]; `dones[t]` marks an episode ending after step t."""
    steps = rewards.shape[0]
    adv = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1:], dtype=np.float64)
    for t in reversed(range(steps)):
        nxt = last_value if t == steps - 1 else values[t + 1]
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * nxt * live - values[t]
        running = delta + gamma * lam * live * running
        adv[t] = running
    return adv, adv + values


@dataclass
class Batch:
    """A flattened rollout: normalised observations, masks, actions, old log-probs and values, targets."""

    obs: Tensor
    masks: Tensor
    actions: Tensor
    logp: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor


def ppo_update(
    net: ActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    pc: PPOConfig,
    ent_coef: float,
    gen: torch.Generator,
) -> dict[str, float]:
    """`update_epochs` passes of minibatch PPO; stops early once approx KL > kl_stop_factor·target_kl."""
    n = batch.obs.shape[0]
    mb = min(pc.minibatch_size, n)
    stats: dict[str, list[float]] = {k: [] for k in ("pg", "vf", "entropy", "kl", "clipfrac")}
    epochs_run, stopped = 0, False
    for _ in range(pc.update_epochs):
        epoch_start = len(stats["kl"])
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, mb):
            idx = order[start : start + mb]
            logits, value = net(batch.obs[idx], batch.masks[idx])
            logp = log_probs(logits).gather(1, batch.actions[idx, None]).squeeze(1)
            log_ratio = logp - batch.logp[idx]
            ratio = log_ratio.exp()
            with torch.no_grad():
                kl = ((ratio - 1) - log_ratio).mean().item()
                stats["kl"].append(kl)
                stats["clipfrac"].append(((ratio - 1).abs() > pc.clip_coef).float().mean().item())
            adv = batch.advantages[idx]
            if len(idx) > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg = torch.max(
                -adv * ratio, -adv * ratio.clamp(1 - pc.clip_coef, 1 + pc.clip_coef)
            ).mean()
            vf = value_loss(value, batch.values[idx], batch.returns[idx], pc)
            entropy = normalised_entropy(logits, batch.masks[idx]).mean()
            loss = pg + pc.vf_coef * vf - ent_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), pc.max_grad_norm)
            optimizer.step()
            stats["pg"].append(pg.item())
            stats["vf"].append(vf.item())
            stats["entropy"].append(entropy.item())
        epochs_run += 1
        epoch_kl = np.mean(stats["kl"][epoch_start:])
        if pc.target_kl is not None and epoch_kl > pc.kl_stop_factor * pc.target_kl:
            stopped = True
            break
    var = batch.returns.var().item()
    explained = float("nan") if var == 0 else 1 - (batch.returns - batch.values).var().item() / var
    return {
        "policy_loss": float(np.mean(stats["pg"])),
        "value_loss": float(np.mean(stats["vf"])),
        "entropy": float(np.mean(stats["entropy"])),
        "approx_kl": float(np.mean(stats["kl"])),
        "clip_fraction": float(np.mean(stats["clipfrac"])),
        "explained_variance": explained,
        "epochs_run": epochs_run,
        "kl_stopped": stopped,
        "ent_coef": ent_coef,
    }


def value_loss(value: Tensor, old: Tensor, returns: Tensor, pc: PPOConfig) -> Tensor:
    """0.5·MSE to the returns, clipped around the old value estimate when `clip_vloss`."""
    plain = (value - returns) ** 2
    if not pc.clip_vloss:
        return 0.5 * plain.mean()
    clipped = old + (value - old).clamp(-pc.clip_coef, pc.clip_coef)
    return 0.5 * torch.max(plain, (clipped - returns) ** 2).mean()
