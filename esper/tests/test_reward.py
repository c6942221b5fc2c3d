"""The reward: bounds, monotonicity, telescoping loss and stage terms, the asymmetric ablation, NaN safety."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import SeedStage
from esper.simic.reward import RewardConfig, loss_potential, potential, step_reward

SCALE = dict(loss_delta_std=0.05, baseline_loss=math.log(10), target_loss=0.3)
RC = RewardConfig(**SCALE, loss_mode="seed_asymmetric")  # the seed's clipped asymmetric term
RC_POT = RewardConfig(**SCALE)  # the default, potential-based loss term
MAX_FOSSILS = 3
PHI_MAX = 7 * MAX_FOSSILS + 5
LOW = -(RC.loss_delta_weight * RC.max_loss_delta * RC.regression_scale + RC.stage_weight * PHI_MAX)
HIGH = (
    RC.loss_delta_weight * RC.max_loss_delta + 2 * RC.gamma * RC.stage_weight + RC.terminal_weight
)

losses = st.floats(min_value=0.0, max_value=20.0, allow_nan=False)
any_loss = st.one_of(losses, st.just(math.nan), st.just(math.inf), st.just(-math.inf))
stages = st.sampled_from([None, *SeedStage])
fossils = st.integers(0, MAX_FOSSILS)


def reward(
    val: float,
    prev: float,
    *,
    phi: float = 0.0,
    nphi: float = 0.0,
    terminal: bool = False,
    rc: RewardConfig = RC,
):
    return step_reward(
        rc,
        val_loss=val,
        prev_val_loss=prev,
        phi=phi,
        next_phi=nphi,
        terminal=terminal,
        added_params=0,
        host_params=1000,
        epoch=5,
        governor_rollback=False,
    )


@st.composite
def transitions(draw):
    """A (Φ(s), Φ(s')) pair the lifecycle can produce in one step: at most 2 stages on, or a
    fossilisation, or a cull, with the fossil count never falling."""
    f = draw(fossils)
    s = draw(stages)
    kind = draw(st.sampled_from(["stay", "advance", "germinate", "fossilise", "cull"]))
    phi = potential(f, s)
    if kind == "advance" and s in (SeedStage.GERMINATED, SeedStage.TRAINING, SeedStage.BLENDING):
        return phi, potential(f, s + draw(st.integers(1, 2)))
    if kind == "germinate":
        return potential(f, None), potential(f, draw(st.sampled_from([2, 3])))
    if kind == "fossilise" and f < MAX_FOSSILS:
        return potential(f, SeedStage.PROBATIONARY), potential(f + 1, None)
    if kind == "cull":
        return phi, potential(f, SeedStage.CULLED)
    return phi, phi


@settings(max_examples=400, deadline=None)
@given(val=any_loss, prev=any_loss, phis=transitions(), terminal=st.booleans())
def test_reward_is_bounded_and_finite(val, prev, phis, terminal):
    r = reward(val, prev, phi=phis[0], nphi=phis[1], terminal=terminal).total
    assert math.isfinite(r)
    assert LOW - 1e-9 <= r <= HIGH + 1e-9


@settings(max_examples=300, deadline=None)
@given(prev=losses, a=losses, b=losses, terminal=st.booleans())
def test_reward_non_increasing_in_val_loss(prev, a, b, terminal):
    lo, hi = sorted((a, b))
    assert reward(lo, prev, terminal=terminal).total >= reward(hi, prev, terminal=terminal).total


@settings(max_examples=200, deadline=None)
@given(d=st.floats(min_value=1e-4, max_value=RC.max_loss_delta * RC.loss_delta_std))
def test_regression_costs_rho_times_an_equal_improvement(d):
    up, down = reward(1.0 + d, 1.0).total, reward(1.0 - d, 1.0).total
    assert up < 0 < down
    assert abs(up) == pytest.approx(RC.regression_scale * abs(down), rel=1e-9)


def test_delta_is_clipped_at_m():
    assert reward(0.0, 10.0).loss == pytest.approx(RC.loss_delta_weight * RC.max_loss_delta)
    assert reward(10.0, 0.0).loss == pytest.approx(-RC.loss_delta_weight * 5 * 0.5)


def test_terminal_bonus_full_at_target_zero_at_baseline():
    at_target = reward(RC.target_loss, RC.target_loss, terminal=True)
    assert at_target.terminal == pytest.approx(RC.terminal_weight)
    assert reward(RC.target_loss / 2, RC.target_loss / 2, terminal=True).terminal == 1.0
    assert reward(RC.baseline_loss, RC.baseline_loss, terminal=True).terminal == 0.0
    assert reward(RC.baseline_loss + 1, RC.baseline_loss + 1, terminal=True).terminal == 0.0
    assert reward(1.0, 1.0, terminal=False).terminal == 0.0


@settings(max_examples=200, deadline=None)
@given(path=st.lists(st.tuples(fossils, stages), min_size=1, max_size=30))
def test_discounted_stage_terms_sum_to_zero(path):
    """Σ γ^t F_t over an episode that starts with Φ = 0 and ends in a terminal state is 0."""
    phis = [0.0] + [potential(f, s) for f, s in path]
    total = 0.0
    for t in range(len(phis) - 1):
        last = t == len(phis) - 2
        r = reward(1.0, 1.0, phi=phis[t], nphi=phis[t + 1], terminal=last)
        total += RC.gamma**t * r.stage
    assert total == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_is_the_worst_regression(bad):
    r = reward(bad, 1.0, terminal=True)
    assert r.loss == pytest.approx(-RC.loss_delta_weight * RC.max_loss_delta * RC.regression_scale)
    assert r.terminal == 0.0


def test_potential_values():
    assert potential(0, None) == 0.0
    assert potential(0, SeedStage.DORMANT) == 0.0
    assert potential(0, SeedStage.CULLED) == 0.0
    assert potential(2, SeedStage.PROBATIONARY) == 19.0


def test_rent_is_off_by_default_and_capped_after_grace():
    kw = dict(val_loss=1.0, prev_val_loss=1.0, phi=0.0, next_phi=0.0, terminal=False)
    kw |= dict(host_params=100, governor_rollback=False)
    assert step_reward(RC, **kw, added_params=100, epoch=9).rent == 0.0
    rc = RewardConfig(loss_delta_std=0.05, baseline_loss=2.3, target_loss=0.3, rent_weight=0.05)
    assert step_reward(rc, **kw, added_params=100, epoch=3).rent == 0.0
    assert step_reward(rc, **kw, added_params=100, epoch=4).rent == pytest.approx(
        -0.05 * math.log(2)
    )
    assert step_reward(rc, **kw, added_params=10**9, epoch=4).rent == pytest.approx(-0.05 * 5)


def test_governor_penalty_and_germination_grace():
    kw = dict(phi=0.0, next_phi=0.0, terminal=False, added_params=0, host_params=100, epoch=4)
    assert step_reward(RC, val_loss=1, prev_val_loss=1, governor_rollback=True, **kw).total == -10
    rc = RewardConfig(
        loss_delta_std=0.05,
        baseline_loss=2.3,
        target_loss=0.3,
        germination_grace_epochs=2,
        loss_mode="seed_asymmetric",
    )
    worse = dict(val_loss=1.2, prev_val_loss=1.0, governor_rollback=False, **kw)
    assert step_reward(rc, **worse, epochs_since_germination=1).loss == 0.0
    assert step_reward(rc, **worse, epochs_since_germination=2).loss < 0
    assert step_reward(rc, **worse).loss < 0
    better = worse | {"val_loss": 0.9}
    assert step_reward(rc, **better, epochs_since_germination=0).loss > 0


def test_presence_bonuses_are_opt_in():
    kw = dict(val_loss=1.0, prev_val_loss=1.0, phi=2.0, next_phi=2.0, terminal=False)
    kw |= dict(added_params=0, host_params=100, epoch=4, governor_rollback=False)
    rc = RewardConfig(
        loss_delta_std=0.05, baseline_loss=2.3, target_loss=0.3, stage_bonus="presence"
    )
    assert step_reward(rc, **kw, stage=SeedStage.TRAINING).stage == 0.2
    assert step_reward(rc, **kw, stage=SeedStage.BLENDING).stage == 0.3
    assert step_reward(rc, **kw, stage=None, fossilized=True).stage == 0.5
    assert step_reward(RC, **kw, stage=SeedStage.TRAINING).stage == pytest.approx(
        0.1 * (0.99 - 1) * 2
    )


def test_config_errors():
    with pytest.raises(ValueError, match="stage_bonus"):
        RewardConfig(loss_delta_std=0.05, baseline_loss=2.3, target_loss=0.3, stage_bonus="x")
    with pytest.raises(ValueError, match="exceed"):
        RewardConfig(loss_delta_std=0.05, baseline_loss=0.3, target_loss=0.3)
    with pytest.raises(ValueError, match="loss_mode"):
        RewardConfig(**SCALE, loss_mode="x")
    with pytest.raises(ValueError, match="seed_asymmetric"):
        RewardConfig(**SCALE, germination_grace_epochs=1)


# -- the default, potential-based loss term ---------------------------------------------------
PATH = st.lists(any_loss, min_size=1, max_size=20)


def episode_return(path: list[float], phis: list[float], rc: RewardConfig, added: int) -> float:
    """The undiscounted return of a loss path with the given stage potentials and added parameters."""
    total = 0.0
    for t in range(1, len(path)):
        r = step_reward(
            rc,
            val_loss=path[t],
            prev_val_loss=path[t - 1],
            phi=phis[t - 1],
            next_phi=phis[t],
            terminal=t == len(path) - 1,
            added_params=added,
            host_params=1000,
            epoch=t,
            governor_rollback=False,
        )
        total += r.loss + r.stage + r.terminal  # everything but the rent
    return total


@settings(max_examples=300, deadline=None)
@given(start=losses, middle=PATH)
def test_loss_terms_telescope_to_initial_minus_final(start, middle):
    path = [start, *middle]
    total = sum(reward(path[t], path[t - 1], rc=RC_POT).loss for t in range(1, len(path)))
    expected = RC_POT.loss_delta_weight * (
        loss_potential(RC_POT, path[0]) - loss_potential(RC_POT, path[-1])
    )
    assert total == pytest.approx(expected, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(start=losses, middle=PATH, stage_path=st.lists(fossils, min_size=21, max_size=21))
def test_a_path_ending_where_it_started_earns_what_a_flat_path_earns(start, middle, stage_path):
    # Same stage potentials and added parameters, so the rents match and only the loss path differs.
    path = [start, *middle, start]
    flat = [start] * len(path)
    phis = [0.0] + [potential(f, None) for f in stage_path[: len(path) - 1]]
    churn = episode_return(path, phis, RC_POT, added=50)
    still = episode_return(flat, phis, RC_POT, added=50)
    assert churn == pytest.approx(still, abs=1e-6)


def test_recovered_spikes_earn_only_under_the_asymmetric_ablation():
    # The control: two 0.1-nat spikes that come back earn under seed_asymmetric, nothing by default.
    spikes = [1.0, 1.1, 1.0, 1.1, 1.0]
    phis = [0.0] * len(spikes)
    flat = [1.0] * len(spikes)
    assert episode_return(spikes, phis, RC, 0) > episode_return(flat, phis, RC, 0) + 1.0
    assert episode_return(spikes, phis, RC_POT, 0) == pytest.approx(
        episode_return(flat, phis, RC_POT, 0), abs=1e-9
    )


@settings(max_examples=300, deadline=None)
@given(val=any_loss, prev=any_loss, phis=transitions(), terminal=st.booleans())
def test_potential_reward_is_bounded_finite_and_monotone(val, prev, phis, terminal):
    r = reward(val, prev, phi=phis[0], nphi=phis[1], terminal=terminal, rc=RC_POT)
    cap = loss_potential(RC_POT, math.nan) * RC_POT.loss_delta_weight
    assert math.isfinite(r.total)
    assert -cap - RC_POT.stage_weight * PHI_MAX - 1e-9 <= r.total <= cap + HIGH
    if math.isfinite(val) and math.isfinite(prev) and val <= prev:
        assert r.loss >= 0
