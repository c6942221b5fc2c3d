"""EsperEnv: one morphogenetic training episode as a gymnasium environment (one step = one host epoch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from esper.config import resolve_device, task_config
from esper.kasmina import action_enum
from esper.leyline import LIVE_STAGES, OBS_DIM, SeedStage, TrainingSignals, build_observation
from esper.leyline.schema import CLIP
from esper.simic.reward import RewardConfig, potential, step_reward
from esper.tolaria import Episode
from esper.utils.data import ImageData, TokenData, load_task_data


def live_stage(signals: TrainingSignals) -> int | None:
    """The live seed's stage, None without one (a dead seed in embargo is not live)."""
    stage = signals.policy.seed_stage
    return stage if signals.policy.has_active_seed and stage in LIVE_STAGES else None


class LegalActions(gym.spaces.Discrete):
    """A Discrete space whose unmasked `sample()` draws a legal action only (illegal ones raise in step)."""

    def __init__(self, n: int, legal: Callable[[], np.ndarray]):
        super().__init__(n)
        self.legal = legal

    def sample(
        self, mask: np.ndarray | None = None, probability: np.ndarray | None = None
    ) -> np.int64:
        """Uniform over `mask`, or over the legal actions when neither mask nor probability is given."""
        if mask is None and probability is None:
            mask = self.legal().astype(np.int8)
        return super().sample(mask=mask, probability=probability)


class EsperEnv(gym.Env):
    """Episode `reset(seed=s)` is the host init and data order of `Episode(..., seed=s)`: pass
    `episode_seed(cfg_seed, i)` and episode i pairs with every other policy's episode i."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, cfg: dict[str, Any], data: ImageData | TokenData | None = None):
        self.cfg = cfg
        self.data = (
            data if data is not None else load_task_data(cfg["task"]["task_type"], cfg["data"])
        )
        self.task = task_config(cfg, self.data)
        self.device = resolve_device(cfg["device"])
        self.actions = action_enum(self.task.topology)
        self.reward_config = RewardConfig.from_config(cfg, self.task)
        self.observation_space = gym.spaces.Box(-CLIP, CLIP, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = LegalActions(len(self.actions), self._legal)
        self.episode: Episode | None = None
        self.episode_seed: int | None = None
        self.initial_host_params = 0
        self.germinated_at: int | None = None

    def _obs(self) -> np.ndarray:
        return build_observation(self.episode.signals.policy, self.task)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A fresh host validated once; `seed` picks the episode (None draws one from the env's RNG)."""
        super().reset(seed=seed)
        self.episode_seed = seed if seed is not None else int(self.np_random.integers(2**31))
        self.episode = Episode(self.cfg, self.data, self.task, self.episode_seed, self.device)
        signals = self.episode.reset()
        self.initial_host_params = signals.host_params
        self.germinated_at = None
        return self._obs(), {"signals": signals.to_record(), "episode_seed": self.episode_seed}

    def _legal(self) -> np.ndarray:
        return np.ones(len(self.actions), bool) if self.episode is None else self.action_masks()

    def action_masks(self) -> np.ndarray:
        """Legal actions now (the sb3-contrib MaskablePPO hook)."""
        if self.episode is None:
            raise RuntimeError("call reset() before action_masks()")
        return self.episode.action_mask()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply `action` (ValueError if masked), train and validate one epoch, and score it."""
        ep = self.episode
        if ep is None or ep.done:
            raise RuntimeError("step() needs a reset episode that is not done")
        action = int(action)
        mask = ep.action_mask()
        if not 0 <= action < len(mask) or not mask[action]:
            legal = [a.name for a in self.actions if mask[a]]
            raise ValueError(f"action {action} is masked now; legal: {', '.join(legal)}")
        before = ep.signals
        phi = potential(before.fossils, live_stage(before))
        events = ep.apply(action)
        after, more = ep.run_epoch()
        events += more
        kinds = {e.kind for e in events}
        if "germinated" in kinds:
            self.germinated_at = ep.epoch - 1
        stage = live_stage(after)
        if stage is None:
            self.germinated_at = None
        parts = step_reward(
            self.reward_config,
            val_loss=after.policy.val_loss,
            prev_val_loss=before.policy.val_loss,
            phi=phi,
            next_phi=potential(after.fossils, stage),
            terminal=ep.done,
            added_params=after.host_params - self.initial_host_params + after.seed_params,
            host_params=self.initial_host_params,
            epoch=ep.epoch,
            governor_rollback=after.governor_rollback,
            stage=stage,
            fossilized="fossilized" in kinds,
            epochs_since_germination=None
            if self.germinated_at is None
            else ep.epoch - 1 - self.germinated_at,
        )
        info = {
            "action": self.actions(action).name,
            "mask": [int(m) for m in mask],
            "reward_parts": parts.to_record(),
            "signals": after.to_record(),
            "events": [e.to_record() for e in events],
            "stage": SeedStage(after.policy.seed_stage).name,
        }
        return self._obs(), float(parts.total), ep.done, False, info
