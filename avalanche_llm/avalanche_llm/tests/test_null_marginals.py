"""Null models keep their marginals exactly, are reproducible from their seeds, and broken nulls exit 2."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from avalanche_llm.errors import GateError
from avalanche_llm.raster.nulls import (
    PERM,
    check_row_marginals,
    check_token_shuffle,
    circular_shift,
    null_seed,
    shuffle_tokens,
    time_permutation,
)

RUN = "RUN_S04_0123456789ab"


def rasters(seed: int = 0) -> tuple[np.ndarray, list[int], list[int]]:
    rng = np.random.default_rng(seed)
    A = (rng.poisson(0.4, (3, 5, 4, 32)) * (rng.random((3, 5, 4, 32)) < 0.5)).astype(np.uint16)
    return A, [0, 1, 2], [10, 11, 12, 13, 14]


def test_seed_is_the_documented_hash():
    digest = hashlib.sha256(f"1337|{RUN}|2|11|3".encode()).hexdigest()
    assert null_seed(RUN, 2, 11, 3) == int(digest[:8], 16)
    assert null_seed(RUN, 2, 11, 3) != null_seed(RUN, 2, 11, 2)


def test_time_permutation_keeps_rows_and_is_reproducible():
    A, cond, seq = rasters()
    P = time_permutation(A, RUN, cond, seq)
    assert np.array_equal(np.sort(P, axis=-1), np.sort(A, axis=-1))
    assert np.array_equal(P.sum(axis=-1), A.sum(axis=-1))
    assert not np.array_equal(P, A)
    assert np.array_equal(P, time_permutation(A, RUN, cond, seq))
    assert not np.array_equal(P, time_permutation(A, "RUN_S04_ba9876543210", cond, seq))
    check_row_marginals(A, P, PERM)


def test_circular_shift_rolls_each_row_by_its_own_k():
    A, cond, seq = rasters(1)
    S, k = circular_shift(A, RUN, cond, seq)
    T = A.shape[-1]
    assert k.shape == A.shape[:-1] and k.min() >= 1 and k.max() <= T - 1
    for c, n, layer in np.ndindex(*k.shape):
        assert np.array_equal(np.roll(S[c, n, layer], -k[c, n, layer]), A[c, n, layer])
    assert np.array_equal(np.sort(S, axis=-1), np.sort(A, axis=-1))
    # Autocorrelation at every lag survives a circular shift.
    lag1 = lambda x: (x * np.roll(x, 1, axis=-1)).sum(axis=-1)  # noqa: E731
    assert np.array_equal(lag1(S.astype(np.int64)), lag1(A.astype(np.int64)))
    assert np.array_equal(circular_shift(A, RUN, cond, seq)[0], S)


def test_a_broken_null_is_a_gate_error():
    A, cond, seq = rasters(2)
    P = time_permutation(A, RUN, cond, seq)
    P[0, 0, 0, np.argmax(P[0, 0, 0])] += 1
    with pytest.raises(GateError, match=PERM):
        check_row_marginals(A, P, PERM)
    with pytest.raises(GateError):
        check_row_marginals(A, P[:, :, :, :-1], PERM)


def test_token_shuffle_keeps_ends_and_multiset():
    rng = np.random.default_rng(3)
    windows = rng.integers(0, 500, (6, 40))
    seq = list(range(100, 106))
    shuffled = shuffle_tokens(windows, RUN, seq)
    assert np.array_equal(shuffled[:, [0, -1]], windows[:, [0, -1]])
    assert np.array_equal(np.sort(shuffled, axis=1), np.sort(windows, axis=1))
    assert (shuffled != windows).any(axis=1).all()
    assert np.array_equal(shuffled, shuffle_tokens(windows, RUN, seq))
    check_token_shuffle(windows, shuffled)
    broken = shuffled.copy()
    broken[:, [0, 1]] = broken[:, [1, 0]]
    with pytest.raises(GateError):
        check_token_shuffle(windows, broken)
