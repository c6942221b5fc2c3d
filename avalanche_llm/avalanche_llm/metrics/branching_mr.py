"""Multistep-regression (MR) branching ratio via `mrestimator`, a subsampling-robust estimate."""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import mrestimator as mre
import numpy as np


def mr_branching(activity: np.ndarray, max_step: int | None = None) -> float:
    """m_MR of trials x time activity a_n(t): r_k = b m^k fitted on steps 1..T//4.

    Without offset, because the offset model returns m ~ 1 on memoryless noise (its amplitude and
    time scale are not identifiable there). When the first-step coefficient r_1 is within two
    standard errors (2/sqrt(#points)) of 0 no memory is detectable and m_MR = 0.
    """
    a = np.asarray(activity, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    last = max_step if max_step is not None else a.shape[1] // 4
    if last < 2 or not (a.std(axis=1) > 0).any():
        return math.nan
    # mrestimator draws tqdm bars on stderr and warns on poor optimiser starts; the fit keeps the best.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        rk = mre.coefficients(a, method="sm", steps=(1, last), numboot=0)
        if not np.isfinite(rk.coefficients).all():
            return math.nan
        if rk.coefficients[0] <= 2.0 / math.sqrt(a.size):
            return 0.0
        fit = mre.fit(rk, fitfunc=mre.f_exponential)
    return float(fit.mre)


def raster_activity(A: np.ndarray) -> np.ndarray:
    """a_n(t) = sum over layers of spike counts, from A [N, L, T] -> [N, T]."""
    return np.asarray(A, dtype=np.float64).sum(axis=1)
