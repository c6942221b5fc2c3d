"""Every per-condition number of phase 5 from a spike-count raster and its nulls (arrays in, rows out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from avalanche_llm.analysis.controls import IID
from avalanche_llm.metrics.avalanches import avalanches
from avalanche_llm.metrics.branching import branching_with_nulls
from avalanche_llm.metrics.branching_mr import mr_branching, raster_activity
from avalanche_llm.metrics.crackling import crackling
from avalanche_llm.metrics.stats import ci_seed
from avalanche_llm.metrics.susceptibility import chi
from avalanche_llm.raster.build import occupancy
from avalanche_llm.raster.nulls import circular_shift, time_permutation
from avalanche_llm.raster.synthetic import iid_like
from labkit.errors import MissingInputError


def taus_at(tau: pd.DataFrame, g: float) -> dict[tuple[str, str], np.ndarray]:
    """S04 thresholds [L] of every (spike definition, rate key) at gain g."""
    sub = tau[np.isclose(tau["g"], g)].sort_values(["spike_def", "rate_key", "layer"])
    if sub.empty:
        raise MissingInputError(f"S04 has no thresholds at g={g:g}; rerun phase 4 on this grid")
    return {
        (sd, rk): grp["tau"].to_numpy()
        for (sd, rk), grp in sub.groupby(["spike_def", "rate_key"], sort=True)
    }


def iid_control(A: np.ndarray, run_id: str, cond: Any, seed: int) -> np.ndarray:
    """The rate-matched iid control of one condition's raster (its own seed per condition)."""
    return iid_like(A, ci_seed(run_id, cond, IID, seed))


def row_nulls(A: np.ndarray, run_id: str, cond: int, seq_ids: np.ndarray, seed: int) -> dict:
    """Within-layer permutation and circular-shift nulls and the rate-matched iid control."""
    stacked = A[None]
    return {
        "perm": time_permutation(stacked, run_id, [cond], seq_ids, seed)[0],
        "shift": circular_shift(stacked, run_id, [cond], seq_ids, seed)[0][0],
        IID: iid_control(A, run_id, cond, seed),
    }


def branching_row(
    A: np.ndarray,
    nulls: Mapping[str, np.ndarray],
    *,
    run_id: str,
    cond: Any,
    pipeline: Mapping[str, Any],
    d_ff: int,
) -> dict[str, float]:
    """Spike rate, b_* with CIs, every null's b_* and paired delta CIs, and chi of one raster [N, L, T]."""
    seed = pipeline["bootstrap_seed"]
    row = branching_with_nulls(
        occupancy(A),
        {name: occupancy(v) for name, v in nulls.items()},
        seed_of={t: ci_seed(run_id, cond, t, seed) for t in ("b", *nulls)},
        reps=pipeline["bootstrap_reps"],
    )
    return {
        "rate_mean": float(A.sum(dtype=np.int64)) / (A.size * d_ff),
        **row,
        "chi": chi(A, pipeline["chi_eps"]),
        **{f"chi_{name}": chi(v, pipeline["chi_eps"]) for name, v in nulls.items()},
    }


def crackling_of(
    av: Mapping[str, np.ndarray],
    *,
    run_id: str,
    cond: Any,
    pipeline: Mapping[str, Any],
    **exponents: float,
) -> dict[str, Any]:
    """The crackling relation of a condition's avalanches with the pipeline's range and gate."""
    return crackling(
        av["size"],
        av["duration"],
        seed=ci_seed(run_id, cond, "crackling", pipeline["bootstrap_seed"]),
        reps=pipeline["bootstrap_reps"],
        d_range=(pipeline["crackling_d_range_min"], pipeline["crackling_d_range_max"]),
        min_points=pipeline["crackling_min_points"],
        ci_width_max=pipeline["bootstrap_ci_width_max"],
        **exponents,
    )


def avalanche_row(av: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Count and mean/max size and spans of a condition's avalanches (NaN means when there are none)."""
    n = int(av["size"].size)

    def mean(key: str) -> float:
        return float(av[key].mean()) if n else float("nan")

    return {
        "n_avalanches": n,
        "size_mean": mean("size"),
        "size_max": float(av["size"].max()) if n else float("nan"),
        "duration_mean": mean("duration"),
        "height_mean": mean("height"),
    }


def grid_row(
    A: np.ndarray,
    nulls: Mapping[str, np.ndarray],
    *,
    run_id: str,
    cond: Any,
    pipeline: Mapping[str, Any],
    d_ff: int,
) -> dict[str, Any]:
    """T01's numbers for one (spike definition, rate, gain): branching, nulls, chi, avalanches, MR."""
    row = branching_row(A, nulls, run_id=run_id, cond=cond, pipeline=pipeline, d_ff=d_ff)
    av = avalanches(
        occupancy(A), A, pipeline["adjacency"], pipeline["cc_max_components_per_seq_hardfail"]
    )
    ck = crackling_of(av, run_id=run_id, cond=cond, pipeline=pipeline)
    return {
        **row,
        "crackling_gamma": ck["gamma"],
        "crackling_gamma_lo": ck["gamma_lo"],
        "crackling_gamma_hi": ck["gamma_hi"],
        "crackling_pass": ck["pass"],
        **avalanche_row(av),
        "m_mr": mr_branching(raster_activity(A)),
        **{f"m_mr_{name}": mr_branching(raster_activity(v)) for name, v in nulls.items()},
    }
