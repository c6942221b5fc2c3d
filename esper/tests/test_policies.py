"""Tamiyo's baselines: static waits, random stays legal, the heuristic follows the reference rules."""

from __future__ import annotations

import numpy as np
import pytest

from esper.kasmina import action_enum
from esper.leyline import SeedStage, action_mask
from esper.tamiyo import HeuristicPolicy, HeuristicSettings, RandomPolicy, StaticPolicy, make_policy

from .conftest import small_task
from .test_schema import signals

A = action_enum("cnn")
S = SeedStage
OBS = np.zeros(20, dtype=np.float32)


def mask_for(stage: SeedStage | None, eis: int = 1, free: bool = True) -> np.ndarray:
    return action_mask(A, live_stage=stage, epochs_in_stage=eis, dwell_epochs=1, slot_free=free)


def idle(**kw):
    """Signals with no live seed."""
    base = {
        "has_active_seed": False,
        "seed_stage": int(S.DORMANT),
        "seed_alpha": 0.0,
        "seed_blueprint": None,
    }
    return signals(**(base | kw))


def live(stage: SeedStage, blueprint: str = "norm", **kw):
    return signals(**({"seed_stage": int(stage), "seed_blueprint": blueprint} | kw))


def test_static_always_waits():
    p = StaticPolicy()
    assert all(p.act(OBS, mask_for(st), idle()) == A.WAIT for st in (None, S.TRAINING))


def test_random_draws_only_legal_actions_and_replays_from_its_seed():
    p = RandomPolicy()
    p.reset(7)
    mask = mask_for(S.TRAINING)  # WAIT, ADVANCE, CULL
    draws = [p.act(OBS, mask, idle()) for _ in range(10_000)]
    assert set(draws) == {A.WAIT, A.ADVANCE, A.CULL}
    counts = np.bincount(draws, minlength=len(A))[[A.WAIT, A.ADVANCE, A.CULL]]
    assert counts.min() > 3000
    p.reset(7)
    state = p.state_dict()
    first = [p.act(OBS, mask, idle()) for _ in range(20)]
    p.load_state_dict(state)
    assert [p.act(OBS, mask, idle()) for _ in range(20)] == first


def heuristic(**kw) -> HeuristicPolicy:
    p = HeuristicPolicy(A, small_task(loss_delta_std=0.05), HeuristicSettings(**kw))
    p.reset(0)
    return p


def test_heuristic_germinates_only_after_min_epoch_on_a_plateau():
    p = heuristic()
    assert p.act(OBS, mask_for(None), idle(epoch=4, plateau_epochs=5)) == A.WAIT
    assert p.act(OBS, mask_for(None), idle(epoch=6, plateau_epochs=2)) == A.WAIT
    assert p.act(OBS, mask_for(None), idle(epoch=6, plateau_epochs=3, embargo_left=1)) == A.WAIT
    assert p.act(OBS, mask_for(None), idle(epoch=6, plateau_epochs=3)) == A.GERMINATE_NORM


def test_heuristic_grows_a_seed_to_a_fossil_then_rotates_blueprints():
    p = heuristic(min_epoch=0, min_plateau=0)
    assert p.act(OBS, mask_for(None), idle(val_loss=1.0)) == A.GERMINATE_NORM
    assert p.act(OBS, mask_for(S.TRAINING), live(S.TRAINING, val_loss=0.99)) == A.ADVANCE
    assert p.act(OBS, mask_for(S.BLENDING), live(S.BLENDING, val_loss=0.98)) == A.WAIT
    assert p.act(OBS, mask_for(S.SHADOWING), live(S.SHADOWING, val_loss=0.97)) == A.WAIT
    prob = live(S.PROBATIONARY, val_loss=0.96, seed_contribution=0.01)
    assert p.act(OBS, mask_for(S.PROBATIONARY), prob) == A.ADVANCE
    assert p.act(OBS, mask_for(None), idle(val_loss=0.95)) == A.GERMINATE_ATTENTION


def test_heuristic_culls_a_probationer_that_does_not_help():
    p = heuristic(min_epoch=0, min_plateau=0)
    p.act(OBS, mask_for(None), idle(val_loss=1.0))
    prob = live(S.PROBATIONARY, val_loss=0.99, seed_contribution=-0.001)
    assert p.act(OBS, mask_for(S.PROBATIONARY), prob) == A.CULL


def test_heuristic_waits_when_gating_forbids_the_cull_it_wants():
    p = heuristic(min_epoch=0, min_plateau=0)
    p.act(OBS, mask_for(None), idle(val_loss=1.0))
    prob = live(S.PROBATIONARY, val_loss=0.99, seed_contribution=-0.001)
    gated = mask_for(S.PROBATIONARY)
    gated[A.CULL] = False  # a seed younger than gating.min_cull_age
    assert p.act(OBS, gated, prob) == A.WAIT


def test_heuristic_culls_when_the_stage_made_the_loss_worse_by_two_sigma():
    p = heuristic(min_epoch=0, min_plateau=0)
    p.act(OBS, mask_for(None), idle(val_loss=1.0))
    p.act(OBS, mask_for(S.TRAINING), live(S.TRAINING, val_loss=1.0))  # ADVANCE
    assert p.act(OBS, mask_for(S.BLENDING), live(S.BLENDING, val_loss=1.09)) == A.WAIT
    assert p.act(OBS, mask_for(S.BLENDING), live(S.BLENDING, val_loss=1.11)) == A.CULL


def test_heuristic_culls_after_five_epochs_without_improvement():
    p = heuristic(min_epoch=0, min_plateau=0)
    p.act(OBS, mask_for(None), idle(val_loss=1.0))
    p.act(OBS, mask_for(S.TRAINING), live(S.TRAINING, val_loss=0.9))  # improves, ADVANCE
    actions = [p.act(OBS, mask_for(S.BLENDING), live(S.BLENDING, val_loss=0.92)) for _ in range(5)]
    assert actions == [A.WAIT] * 4 + [A.CULL]


def test_heuristic_cull_penalties_decay_and_skip_at_three():
    p = heuristic(min_epoch=0, min_plateau=0)
    assert p.act(OBS, mask_for(None), idle(val_loss=1.0)) == A.GERMINATE_NORM
    assert p.act(OBS, mask_for(S.TRAINING), live(S.TRAINING, "norm", val_loss=2.0)) == A.CULL
    assert p.act(OBS, mask_for(None, free=False), idle(val_loss=1.0, embargo_left=1)) == A.WAIT
    assert p.mem.penalty["norm"] == 2.0  # added when the seed is seen gone
    p.act(OBS, mask_for(None, free=False), idle(val_loss=1.0, embargo_left=1))
    assert p.mem.penalty["norm"] == 1.0  # x0.5 per epoch
    p.mem.penalty["attention"] = 7.0  # 3.5 after this epoch's decay: skipped
    assert p.act(OBS, mask_for(None), idle(val_loss=1.0)) == A.GERMINATE_DEPTHWISE


def test_heuristic_state_round_trips():
    p = heuristic(min_epoch=0, min_plateau=0)
    p.act(OBS, mask_for(None), idle(val_loss=1.0))
    q = heuristic(min_epoch=0, min_plateau=0)
    q.load_state_dict(p.state_dict())
    assert q.mem == p.mem


def test_make_policy_names():
    task = small_task()
    assert make_policy("static", A, task, {}).name == "static"
    with pytest.raises(ValueError, match="known: static, heuristic, random"):
        make_policy("ppo", A, task, {})
