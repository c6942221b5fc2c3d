import itertools
import json
import random

import numpy as np
import pytest

from labkit.errors import ConfigError
from labkit.stats import CIResult, bootstrap_ci, expanded_level, paired_delta_ci


def coverage(n_samples: int, *, expand: bool) -> float:
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(n_samples):
        ci = bootstrap_ci(rng.normal(3.0, 2.0, size=10), seed=i, n_resamples=2000, expand=expand)
        hits += ci.low <= 3.0 <= ci.high
    return hits / n_samples


def test_bca_coverage_of_the_mean_of_ten_normal_draws():
    # True coverage is ~94.2%, so 400 samples (sd 1.2 points) would pass >= 93% only ~87% of the
    # time; 2000 samples (sd 0.5 points) make the check meaningful and still take ~2 s.
    assert coverage(2000, expand=True) >= 0.93
    # Plain bootstrap intervals are too narrow at n=10 (~89.5%); the t-based widening fixes that.
    assert coverage(2000, expand=False) < 0.92


def test_seeded_and_reproducible():
    x = np.random.default_rng(5).exponential(size=30)
    a = bootstrap_ci(x, seed=7, n_resamples=500)
    assert a == bootstrap_ci(x, seed=7, n_resamples=500)
    assert a == bootstrap_ci(x, seed=np.random.SeedSequence(7), n_resamples=500)
    assert (a.low, a.high) != (
        bootstrap_ci(x, seed=8, n_resamples=500).low,
        bootstrap_ci(x, seed=8, n_resamples=500).high,
    )
    assert a.method == "BCa" and not a.degenerate
    assert a.value == pytest.approx(x.mean())
    assert a.low < a.value < a.high


def test_global_random_state_untouched_and_unused():
    random.seed(1)
    np.random.seed(1)
    py_state, np_state = random.getstate(), np.random.get_state()
    first = bootstrap_ci([1.0, 4.0, 2.0, 8.0, 5.0], seed=3, n_resamples=300)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    assert after[2:] == np_state[2:]
    np.random.seed(99)
    assert bootstrap_ci([1.0, 4.0, 2.0, 8.0, 5.0], seed=3, n_resamples=300) == first


def test_fewer_than_two_values_give_the_value_and_a_flag():
    one = bootstrap_ci([2.5], seed=0)
    assert (one.value, one.low, one.high, one.n) == (2.5, None, None, 1)
    assert one.degenerate and one.method == "none" and "fewer than 2" in one.reason
    empty = bootstrap_ci([], seed=0)
    assert empty.value is None and empty.low is None and empty.degenerate


def test_constant_data_give_a_point_interval():
    ci = bootstrap_ci([4.0] * 6, seed=0)
    assert (ci.value, ci.low, ci.high) == (4.0, 4.0, 4.0)
    assert ci.degenerate and ci.method == "constant"


def test_bca_failure_falls_back_to_percentile_never_nan():
    # Nine equal values and one outlier: every resampled median is 1, so BCa's bias term is infinite.
    ci = bootstrap_ci([1.0] * 9 + [2.0], seed=0, statistic=np.median, n_resamples=1000)
    assert ci.method == "percentile" and ci.degenerate
    assert "BCa failed" in ci.reason and "percentile" in ci.reason
    assert (ci.low, ci.high) == (1.0, 1.0)
    json.dumps(ci.to_dict(), allow_nan=False)


def test_to_dict_is_strict_json():
    d = bootstrap_ci([0.1, 0.4, 0.35, 0.8], seed=1, n_resamples=200).to_dict()
    assert set(d) == set(CIResult.__dataclass_fields__)
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_paired_delta_ci_uses_per_item_differences():
    rng = np.random.default_rng(2)
    a = rng.normal(size=40)
    b = a + 1.0 + rng.normal(scale=0.1, size=40)
    paired = paired_delta_ci(a, b, seed=4, n_resamples=1000)
    assert paired == bootstrap_ci(b - a, seed=4, n_resamples=1000)
    assert 0.9 < paired.low < paired.value < paired.high < 1.1
    # Unpaired, the item-to-item spread (sd 1) would swamp the shift; pairing removes it.
    assert paired.high - paired.low < 0.1


def test_paired_length_mismatch_is_a_config_error():
    with pytest.raises(ConfigError, match="differ in length"):
        paired_delta_ci([1.0, 2.0], [1.0, 2.0, 3.0], seed=0)


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        ([1.0, float("nan")], {}, "NaN"),
        ([[1.0, 2.0]], {}, "one-dimensional"),
        ([1.0, 2.0], {"confidence": 1.5}, "confidence"),
        ([1.0, 2.0], {"method": "studentized"}, "method"),
        ([1.0, 2.0], {"n_resamples": 0}, "n_resamples"),
    ],
)
def test_bad_input_is_a_config_error(values, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        bootstrap_ci(values, seed=0, **kwargs)


def test_expanded_level_shrinks_to_the_nominal_level():
    levels = [expanded_level(0.95, n) for n in (3, 5, 10, 30, 100, 10_000)]
    assert all(a > b for a, b in itertools.pairwise(levels))
    assert levels[2] == pytest.approx(0.9829, abs=1e-4)
    assert levels[-1] == pytest.approx(0.95, abs=1e-4)
    wide = bootstrap_ci(np.arange(10.0), seed=0, n_resamples=2000)
    narrow = bootstrap_ci(np.arange(10.0), seed=0, n_resamples=2000, expand=False)
    assert wide.bootstrap_level == pytest.approx(levels[2]) and narrow.bootstrap_level == 0.95
    assert wide.low < narrow.low and narrow.high < wide.high
