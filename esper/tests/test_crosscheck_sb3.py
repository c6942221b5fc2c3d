"""The sb3-contrib MaskablePPO cross-check runs on EsperEnv and only ever takes legal actions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from esper.config import load_esper_config
from esper.simic.ppo import PPOConfig
from esper.utils.data import load_task_data

from .test_train_tamiyo import PPO_CONFIG, SMALL

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "crosscheck_sb3.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("crosscheck_sb3", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_maskable_ppo_trains_and_plays_only_legal_actions():
    xc = _load_script()
    cfg = load_esper_config(PPO_CONFIG, SMALL)
    data = load_task_data(cfg["task"]["task_type"], cfg["data"])
    pc = PPOConfig.from_config(cfg["ppo"])
    model = xc.train_maskable(cfg, data, pc)
    assert model.num_timesteps == pc.updates * pc.num_envs * cfg["task"]["max_epochs"]
    chosen: list[tuple[np.ndarray, np.ndarray]] = []

    def act(obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        actions = model.predict(obs, action_masks=masks, deterministic=True)[0]
        chosen.extend(zip(actions, masks, strict=True))
        return actions

    returns = xc.heldout_returns(cfg, data, pc, act)
    assert returns.shape == (pc.baseline_episodes,) and np.isfinite(returns).all()
    assert chosen and all(mask[a] for a, mask in chosen)
