"""Multistep-regression (MR) branching ratio via `mrestimator`, a subsampling-robust cross-check."""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import mrestimator as mre
import numpy as np


def mr_branching(activity: np.ndarray, max_step: int | None = None) -> float:
    """m_MR of trials x time activity a_n(t) (steps 1..T//4, stationary-mean coefficients)."""
    a = np.asarray(activity, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    last = max_step if max_step is not None else a.shape[1] // 4
    if last < 2 or not a.any():
        return math.nan
    # mrestimator draws tqdm bars on stderr and warns on poor optimiser starts; the fit keeps the best.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        rk = mre.coefficients(a, method="sm", steps=(1, last), numboot=0)
        fit = mre.fit(rk, fitfunc=mre.f_exponential_offset)
    return float(fit.mre)


def raster_activity(A: np.ndarray) -> np.ndarray:
    """a_n(t) = sum over layers of spike counts, from A [N, L, T] -> [N, T]."""
    return np.asarray(A, dtype=np.float64).sum(axis=1)
