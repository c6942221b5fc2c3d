"""Tail fits, crackling, MR branching and the paired bootstrap CIs on data with known answers."""

from __future__ import annotations

import math

import mrestimator as mre
import numpy as np
import pytest
import scipy.stats

from avalanche_llm.metrics.branching import branching_with_nulls
from avalanche_llm.metrics.branching_mr import mr_branching, raster_activity
from avalanche_llm.metrics.crackling import crackling
from avalanche_llm.metrics.stats import (
    ci_seed,
    mcnemar_exact_p,
    paired_difference_ci,
    pooled_ratio_ci,
)
from avalanche_llm.metrics.tails import fit_tail


def test_discrete_power_law_alpha_recovered():
    x = scipy.stats.zipf.rvs(2.5, size=5000, random_state=np.random.default_rng(1337))
    fit = fit_tail(x)
    assert abs(fit["alpha"] - 2.5) < 0.1
    assert fit["n_tail"] >= 100 and fit["xmin"] >= 1
    assert fit["llr_exponential"] > 0 and fit["p_exponential"] < 0.05


def test_short_tail_is_nan_not_a_number():
    fit = fit_tail(np.arange(1, 60))
    assert math.isnan(fit["alpha"]) and fit["n_tail"] == 59


@pytest.mark.parametrize("m", [0.8, 0.9, 0.95])
def test_mr_estimate_within_tolerance(m):
    full = mre.simulate_branching(m, a=100, length=10000, numtrials=10, seed=1337)
    sub = mre.simulate_branching(m, a=100, length=10000, numtrials=10, seed=1337, subp=0.1)
    assert abs(mr_branching(full) - m) <= 0.02
    assert abs(mr_branching(sub) - m) <= 0.03


def test_raster_activity_sums_layers():
    a = np.arange(12).reshape(1, 3, 4)
    assert raster_activity(a).tolist() == [[12, 15, 18, 21]]


def test_crackling_recovers_known_exponent_and_passes():
    rng = np.random.default_rng(1337)
    d = rng.integers(1, 70, size=4000)
    s = np.round(d**1.5 * rng.lognormal(0.0, 0.2, d.size))
    out = crackling(s, d, seed=1, reps=200, alpha_s=2.0, sigma_s=0.02, alpha_d=2.5, sigma_d=0.02)
    assert out["gamma"] == pytest.approx(1.5, abs=0.05)
    assert out["gamma_lo"] < 1.5 < out["gamma_hi"] and out["pass"] is True
    assert out["n_duration_points"] == 62 and out["r2"] > 0.95
    assert out["gamma_pred"] == pytest.approx(1.5)
    assert out["gamma_pred_lo"] < 1.5 < out["gamma_pred_hi"] and out["n_reps_defined"] == 200


def test_crackling_fails_when_the_prediction_disagrees():
    # A narrow gamma CI alone (the old rule) passed iid noise; the prediction must overlap too.
    rng = np.random.default_rng(1337)
    d = rng.integers(1, 70, size=4000)
    s = np.round(d**1.5 * rng.lognormal(0.0, 0.2, d.size))
    out = crackling(s, d, seed=1, reps=100, alpha_s=2.0, sigma_s=0.02, alpha_d=3.0, sigma_d=0.02)
    assert out["gamma_hi"] - out["gamma_lo"] <= 0.5 and out["pass"] is False
    assert crackling(s, d, seed=1, reps=100)["pass"] is False  # no exponents, no prediction


def test_crackling_keeps_its_interval_when_some_replicates_are_undefined():
    # Few long avalanches: some resamples have < 8 duration points; they are counted, not NaN-ing.
    rng = np.random.default_rng(3)
    d = np.concatenate([rng.integers(3, 6, 300), np.arange(6, 16)])
    s = np.round(d**1.4 * rng.lognormal(0.0, 0.1, d.size))
    out = crackling(s, d, seed=2, reps=200)
    assert 100 <= out["n_reps_defined"] < 200
    assert np.isfinite([out["gamma_lo"], out["gamma_hi"]]).all()


def test_crackling_needs_enough_durations():
    out = crackling(np.array([5, 9, 12.0]), np.array([3, 4, 5]), seed=1, reps=50)
    assert math.isnan(out["gamma"]) and out["pass"] is False and out["n_duration_points"] == 3


def test_ci_seeds_are_named_and_stable():
    assert ci_seed("RUN_S05_abc", 3, "b") == ci_seed("RUN_S05_abc", 3, "b")
    assert ci_seed("RUN_S05_abc", 3, "b") != ci_seed("RUN_S05_abc", 4, "b")


def test_pooled_ratio_ci_covers_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    den = rng.integers(50, 100, 40)
    num = rng.binomial(den, 0.6)
    ci = pooled_ratio_ci(num, den, seed=7, reps=300)
    assert ci == pooled_ratio_ci(num, den, seed=7, reps=300)
    assert ci[0] < num.sum() / den.sum() < ci[1] and ci[1] - ci[0] < 0.1


def test_paired_delta_against_a_time_permutation_null():
    # Bursty rows (runs of 4) have temporal pairs a within-row permutation destroys.
    rng = np.random.default_rng(1)
    x = np.zeros((20, 3, 64), dtype=np.uint8)
    for n, lay, t in zip(
        rng.integers(0, 20, 120), rng.integers(0, 3, 120), rng.integers(0, 60, 120), strict=True
    ):
        x[n, lay, t : t + 4] = 1
    perm = np.stack([[rng.permutation(row) for row in seq] for seq in x])
    row = branching_with_nulls(x, {"perm": perm}, seed_of={"b": 1, "perm": 2}, reps=300)
    assert row["b_time_lo"] <= row["b_time"] <= row["b_time_hi"]
    assert row["delta_b_time_perm_lo"] > 0
    assert row["ratio_b_tot_perm"] > 1
    same = branching_with_nulls(x, {"perm": x}, seed_of={"b": 1, "perm": 2}, reps=300)
    assert same["delta_b_tot_perm"] == 0 and same["delta_b_tot_perm_lo"] == 0


def test_paired_difference_ci_uses_the_pairing():
    # Large between-item spread, small consistent shift: only a paired CI resolves it.
    rng = np.random.default_rng(2)
    base = rng.normal(3.0, 1.0, 60)
    after = base + 0.05 + rng.normal(0, 0.01, 60)
    lo, hi = paired_difference_ci(base, after, lambda x: x.mean(axis=-1), seed=1, reps=300)
    assert 0 < lo < 0.05 < hi < 0.1
    same = paired_difference_ci(base, base, lambda x: x.mean(axis=-1), seed=1, reps=300)
    assert same == (0.0, 0.0)


def test_mcnemar_exact_p_counts_only_discordant_items():
    a = np.array([1] * 50 + [0] * 50)
    b = np.array([1] * 50 + [1] * 10 + [0] * 40)  # 10 gained, none lost
    assert mcnemar_exact_p(a, b) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact_p(a, a) == 1.0
