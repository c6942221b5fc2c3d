"""Null models of a raster, with their marginals checked (a broken null exits 2).

NULL_RASTER_WITHIN_LAYER_TIME_PERM        permute each row A[c, n, l, :] over tokens
NULL_RASTER_WITHIN_LAYER_TIME_CIRC_SHIFT  roll each row by k in [1, T-1]
NULL_TOKEN_SHUFFLE_INPUT                  permute input tokens 1..T-2 (ends fixed), rerun the model
Row seeds: first 8 hex of sha256("1337|run_id|cond_id|seq_id|layer"); the input shuffle uses
cond_id "input" and layer "tokens", so every condition sees the same shuffled windows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from avalanche_llm.errors import GateError

PERM = "NULL_RASTER_WITHIN_LAYER_TIME_PERM"
SHIFT = "NULL_RASTER_WITHIN_LAYER_TIME_CIRC_SHIFT"
SHUFFLE = "NULL_TOKEN_SHUFFLE_INPUT"


def null_seed(run_id: str, cond_id: object, seq_id: object, layer: object, base: int = 1337) -> int:
    """Row seed: the first 8 hex digits of sha256("base|run_id|cond_id|seq_id|layer")."""
    return int(
        hashlib.sha256(f"{base}|{run_id}|{cond_id}|{seq_id}|{layer}".encode()).hexdigest()[:8], 16
    )


def _rows(A: np.ndarray, cond_ids: Sequence[int], seq_ids: Sequence[int]):
    C, N, L, _ = A.shape
    if len(cond_ids) != C or len(seq_ids) != N:
        raise ValueError(f"ids do not match raster shape {A.shape}")
    for c in range(C):
        for n in range(N):
            for layer in range(L):
                yield c, n, layer, (cond_ids[c], seq_ids[n], layer)


def time_permutation(
    A: np.ndarray, run_id: str, cond_ids: Sequence[int], seq_ids: Sequence[int], base: int = 1337
) -> np.ndarray:
    """Each row A[c, n, l, :] permuted over tokens with its own seed."""
    out = np.empty_like(A)
    for c, n, layer, ids in _rows(A, cond_ids, seq_ids):
        rng = np.random.default_rng(null_seed(run_id, *ids, base=base))
        out[c, n, layer] = A[c, n, layer, rng.permutation(A.shape[-1])]
    return out


def circular_shift(
    A: np.ndarray, run_id: str, cond_ids: Sequence[int], seq_ids: Sequence[int], base: int = 1337
) -> tuple[np.ndarray, np.ndarray]:
    """Each row rolled by its own k in [1, T-1]; returns the rasters and k [C, N, L]."""
    T = A.shape[-1]
    out = np.empty_like(A)
    shifts = np.zeros(A.shape[:-1], dtype=np.int32)
    for c, n, layer, ids in _rows(A, cond_ids, seq_ids):
        k = int(np.random.default_rng(null_seed(run_id, *ids, base=base)).integers(1, T))
        shifts[c, n, layer] = k
        out[c, n, layer] = np.roll(A[c, n, layer], k)
    return out, shifts


def shuffle_tokens(
    windows: np.ndarray, run_id: str, seq_ids: Sequence[int], base: int = 1337
) -> np.ndarray:
    """Each window with tokens 1..T-2 permuted (first and last kept), seeded per sequence."""
    out = windows.copy()
    for n, seq in enumerate(seq_ids):
        rng = np.random.default_rng(null_seed(run_id, "input", seq, "tokens", base=base))
        inner = windows[n, 1:-1]
        out[n, 1:-1] = inner[rng.permutation(inner.size)]
    return out


def check_row_marginals(A: np.ndarray, A_null: np.ndarray, null_id: str) -> None:
    """Exit 2 unless every sorted row of the null equals the real one (rates and totals kept)."""
    if A.shape != A_null.shape or not np.array_equal(np.sort(A, axis=-1), np.sort(A_null, axis=-1)):
        raise GateError(f"{null_id} changed the within-row spike counts; the null is invalid")


def check_token_shuffle(windows: np.ndarray, shuffled: np.ndarray) -> None:
    """Exit 2 unless each shuffled window keeps its ends and its token multiset."""
    same_ends = np.array_equal(windows[:, [0, -1]], shuffled[:, [0, -1]])
    same_bag = np.array_equal(np.sort(windows, axis=1), np.sort(shuffled, axis=1))
    if windows.shape != shuffled.shape or not (same_ends and same_bag):
        raise GateError(f"{SHUFFLE} changed a window's ends or token multiset; the null is invalid")
