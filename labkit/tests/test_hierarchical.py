"""The two-level bootstrap: both levels of variation, one-group reduction, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.errors import ConfigError
from labkit.hierarchical import hierarchical_bootstrap_ci
from labkit.stats import bootstrap_ci


def _nested(between: float, within: float, groups: int = 5, per: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, between, size=groups)
    return [c + rng.normal(0.0, within, size=per) for c in centres]


def test_between_group_variation_widens_the_interval_beyond_a_pooled_bootstrap():
    groups = _nested(between=1.0, within=0.1)
    nested = hierarchical_bootstrap_ci(groups, seed=0)
    pooled = bootstrap_ci(np.concatenate(groups), seed=0, method="percentile", expand=False)
    assert nested.high - nested.low > 3 * (pooled.high - pooled.low)
    assert nested.low <= nested.value <= nested.high


def test_within_group_variation_widens_the_interval_beyond_a_group_means_bootstrap():
    # Group means nearly agree, but each rests on few noisy episodes: holding them fixed is too narrow.
    groups = _nested(between=0.0, within=1.0, per=4)
    nested = hierarchical_bootstrap_ci(groups, seed=0)
    means = bootstrap_ci([g.mean() for g in groups], seed=0, method="percentile", expand=False)
    assert nested.high - nested.low > (means.high - means.low)


def test_crossed_items_keep_their_shared_effect():
    # Every group holds the same 20 items, whose large shared effect dominates: resampling items
    # independently per group averages it away; the crossed draw keeps it.
    rng = np.random.default_rng(2)
    items = rng.normal(0.0, 1.0, size=20)
    groups = [items + rng.normal(0.0, 0.05, size=20) for _ in range(5)]
    nested = hierarchical_bootstrap_ci(groups, seed=0)
    crossed = hierarchical_bootstrap_ci(groups, seed=0, crossed=True)
    assert crossed.high - crossed.low > 1.8 * (nested.high - nested.low)
    assert crossed.value == nested.value
    with pytest.raises(ConfigError, match="equal sizes"):
        hierarchical_bootstrap_ci([[1.0, 2.0], [1.0]], seed=0, crossed=True)


def test_one_group_is_an_ordinary_percentile_bootstrap():
    values = np.random.default_rng(1).normal(2.0, 1.0, size=200)
    nested = hierarchical_bootstrap_ci([values], seed=0)
    plain = bootstrap_ci(values, seed=0, method="percentile", expand=False)
    assert nested.value == pytest.approx(values.mean())
    assert nested.low == pytest.approx(plain.low, abs=0.03)
    assert nested.high == pytest.approx(plain.high, abs=0.03)


def test_seeded_degenerate_and_bad_input():
    groups = _nested(between=0.5, within=0.5)
    assert hierarchical_bootstrap_ci(groups, seed=3) == hierarchical_bootstrap_ci(groups, seed=3)
    const = hierarchical_bootstrap_ci([[1.0, 1.0], [1.0]], seed=0)
    assert const.method == "constant" and const.low == const.high == 1.0
    assert hierarchical_bootstrap_ci([], seed=0).value is None
    assert hierarchical_bootstrap_ci([[1.0]], seed=0).low is None
    with pytest.raises(ConfigError, match="NaN"):
        hierarchical_bootstrap_ci([[1.0, float("nan")]], seed=0)
    with pytest.raises(ConfigError, match="non-empty"):
        hierarchical_bootstrap_ci([[]], seed=0)
