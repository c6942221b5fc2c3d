"""Cross-check the hand-written masked PPO against sb3-contrib's MaskablePPO on the same EsperEnv.

MaskablePPO is trained with the config's `ppo` hyperparameters for `ppo.episodes` episodes, then plays
train-tamiyo's held-out episode seeds greedily beside the random policy; the paired return difference
(BCa CI) is printed next to a train-tamiyo run's own held-out result when `--compare` names one.

  python bench/crosscheck_sb3.py --config configs/ppo_cifar10_capacity_local.yaml \
      --compare runs/ppo_cap_s0 seed=0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sb3_contrib import MaskablePPO
from stable_baselines3.common.vec_env import DummyVecEnv

from esper.config import load_esper_config, set_threads
from esper.simic.env import EsperEnv
from esper.simic.ppo import PPOConfig
from esper.simic.rollout import run_episodes
from esper.simic.train import heldout_seed
from esper.tamiyo.policies import RandomPolicy
from esper.utils.data import load_task_data
from labkit.determinism import derive_seed, seed_everything
from labkit.stats import paired_delta_ci


def train_maskable(cfg: dict, data: object, pc: PPOConfig) -> MaskablePPO:
    """MaskablePPO on `num_envs` EsperEnvs for `pc.episodes` episodes, §6 hyperparameters."""
    venv = DummyVecEnv([lambda: EsperEnv(cfg, data) for _ in range(pc.num_envs)])
    venv.seed(derive_seed(cfg["seed"], "sb3-envs") % 2**31)
    n_steps = cfg["task"]["max_epochs"]  # one whole episode per env per update, as the cleanrl path
    model = MaskablePPO(
        "MlpPolicy",
        venv,
        learning_rate=pc.lr,
        n_steps=n_steps,
        batch_size=min(pc.minibatch_size, n_steps * pc.num_envs),
        n_epochs=pc.update_epochs,
        gamma=pc.gamma,
        gae_lambda=pc.gae_lambda,
        clip_range=pc.clip_coef,
        ent_coef=pc.ent_coef,
        vf_coef=pc.vf_coef,
        max_grad_norm=pc.max_grad_norm,
        target_kl=pc.target_kl,
        policy_kwargs={"net_arch": [pc.hidden, pc.hidden]},
        seed=derive_seed(cfg["seed"], "sb3-policy") % 2**32,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=pc.updates * pc.num_envs * n_steps)
    return model


def heldout_returns(cfg: dict, data: object, pc: PPOConfig, act: object) -> np.ndarray:
    """Returns of train-tamiyo's held-out episode seeds under `act(obs, masks) -> actions`."""
    seeds = [heldout_seed(cfg["seed"], j) for j in range(pc.baseline_episodes)]
    envs = [EsperEnv(cfg, data) for _ in seeds]
    return np.array([ep["return"] for ep in run_episodes(envs, seeds, act).episodes])


def main() -> None:
    """Train MaskablePPO, play the held-out seeds, print the paired comparison with random."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--compare", help="a train-tamiyo run dir whose summary.json to print beside")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    cfg = load_esper_config(args.config, args.overrides)
    set_threads(cfg["threads"])
    seed_everything(cfg["seed"])
    data = load_task_data(cfg["task"]["task_type"], cfg["data"])
    pc = PPOConfig.from_config(cfg["ppo"])
    started = time.perf_counter()
    model = train_maskable(cfg, data, pc)
    train_s = time.perf_counter() - started

    seeds = [heldout_seed(cfg["seed"], j) for j in range(pc.baseline_episodes)]
    randoms = [RandomPolicy() for _ in seeds]
    for policy, s in zip(randoms, seeds, strict=True):
        policy.reset(s)
    rnd = heldout_returns(
        cfg,
        data,
        pc,
        lambda obs, masks: np.array(
            [r.act(o, m, None) for r, o, m in zip(randoms, obs, masks, strict=True)]
        ),
    )
    sb3 = heldout_returns(
        cfg,
        data,
        pc,
        lambda obs, masks: model.predict(obs, action_masks=masks, deterministic=True)[0],
    )
    delta = paired_delta_ci(rnd, sb3, seed=cfg["seed"])
    print(f"MaskablePPO: {pc.episodes} episodes trained in {train_s:.0f} s")
    print(f"  held-out return random {rnd.mean():.3f}, MaskablePPO {sb3.mean():.3f} (n={rnd.size})")
    print(f"  MaskablePPO - random: {json.dumps(delta.to_dict())}")
    if args.compare:
        summary = json.loads((Path(args.compare) / "summary.json").read_text())
        print(f"  cleanrl run {args.compare}: {json.dumps(summary['heldout_ppo_minus_random'])}")


if __name__ == "__main__":
    main()
