"""EsperEnv: gymnasium conformance, masks, pairing with Episode, info, and the telescoping stage terms."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from esper.config import load_esper_config
from esper.leyline import build_observation
from esper.simic.env import EsperEnv
from esper.tolaria import Episode
from esper.train_host import episode_seed

from .conftest import CNN_CONFIG, CNN_TEST


@pytest.fixture(scope="module")
def env() -> EsperEnv:
    return EsperEnv(load_esper_config(CNN_CONFIG, [*CNN_TEST, "task.max_epochs=4"]))


def _play(env: EsperEnv, seed: int, pick) -> tuple[list[np.ndarray], list[float], list[dict]]:
    obs, _ = env.reset(seed=seed)
    seen, rewards, infos = [obs], [], []
    done = False
    while not done:
        obs, r, done, truncated, info = env.step(pick(env.action_masks()))
        assert not truncated
        seen.append(obs)
        rewards.append(r)
        infos.append(info)
    return seen, rewards, infos


def test_check_env_passes(env):
    check_env(env, skip_render_check=True)


def test_illegal_action_raises(env):
    env.reset(seed=0)
    mask = env.action_masks()
    assert not mask[env.actions.ADVANCE] and not mask[env.actions.CULL]
    with pytest.raises(ValueError, match="masked"):
        env.step(int(env.actions.CULL))
    with pytest.raises(ValueError, match="masked"):
        env.step(len(mask))


def test_reset_pairs_with_the_episode_of_the_same_seed(env):
    seed = episode_seed(0, 3)
    obs, info = env.reset(seed=seed)
    ep = Episode(env.cfg, env.data, env.task, seed)
    assert np.array_equal(obs, build_observation(ep.reset().policy, env.task))
    assert info["episode_seed"] == seed


def test_episode_terminates_at_max_epochs_with_info(env):
    first = lambda m: int(np.flatnonzero(m)[-1])  # noqa: E731 - germinate/advance/cull when legal
    seen, rewards, infos = _play(env, 5, first)
    assert len(rewards) == env.task.max_epochs
    for info, r in zip(infos, rewards, strict=True):
        assert info["reward_parts"]["total"] == pytest.approx(r)
        assert {"signals", "events", "mask", "action", "stage"} <= set(info)
    assert any(e["kind"] == "germinated" for info in infos for e in info["events"])
    assert all(env.observation_space.contains(o) for o in seen)
    with pytest.raises(RuntimeError):
        env.step(0)


def test_same_seed_same_trajectory(env):
    wait = lambda m: 0  # noqa: E731
    a = _play(env, 7, wait)
    b = _play(env, 7, wait)
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True))
    assert a[1] == b[1]
    c = _play(env, 8, wait)
    assert not np.array_equal(a[0][0], c[0][0])


def test_discounted_stage_terms_telescope_in_the_env(env):
    rng = np.random.default_rng(0)
    _, _, infos = _play(env, 11, lambda m: int(rng.choice(np.flatnonzero(m))))
    gamma = env.reward_config.gamma
    total = sum(gamma**t * i["reward_parts"]["stage"] for t, i in enumerate(infos))
    assert total == pytest.approx(0.0, abs=1e-9)
