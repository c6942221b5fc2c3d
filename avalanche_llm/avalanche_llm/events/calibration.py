"""The calibration a run inherits from S01 (mu, sigma, rate targets) and threshold fits at any gain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from avalanche_llm import canon
from avalanche_llm.conditions import RateTarget
from avalanche_llm.events.rate_match import LayerFit, check_gate, fit_thresholds
from avalanche_llm.events.stream import stream_spike_values
from avalanche_llm.io.artifacts import RunArtifacts
from avalanche_llm.model.loader import LoadedModel
from labkit.errors import MissingInputError


@dataclass(frozen=True)
class Calibration:
    """Per-unit standardisation and per-layer target rates, as phase 1 wrote them."""

    mu: np.ndarray  # [L, d_ff] float64
    sigma: np.ndarray  # [L, d_ff] float64
    spike_defs: list[str]
    rates: list[RateTarget]
    r_base: dict[str, np.ndarray]  # sd -> [L]
    targets: dict[str, dict[str, np.ndarray]]  # sd -> rate key -> r*_l [L]

    @classmethod
    def from_run(cls, s01: RunArtifacts) -> Calibration:
        """Read calibration_stats.npz and rate_targets.json of an S01 run."""
        stats = s01.load_npz(canon.output("CALIBRATION_STATS_NPZ"))
        doc = s01.read_json(canon.output("RATE_TARGETS_JSON"))
        return cls(
            mu=stats["mu"],
            sigma=stats["sigma"],
            spike_defs=list(doc["spike_defs"]),
            rates=[RateTarget(r["key"], r["rho"], r["spec"]) for r in doc["rates"]],
            r_base={sd: np.asarray(v) for sd, v in doc["r_base_l"].items()},
            targets={
                sd: {rk: np.asarray(v) for rk, v in per.items()}
                for sd, per in doc["r_star_l"].items()
            },
        )


def fit_at_gain(
    lm: LoadedModel,
    windows: np.ndarray,
    cal: Calibration,
    pipeline: dict[str, Any],
    *,
    gain: float,
    batch_size: int,
    intervention: str = "MLP_GLOBAL",
) -> dict[str, dict[str, LayerFit]]:
    """Rate-matched thresholds on `windows` at `gain` for every (spike definition, rate); gate checked."""

    def run_pass(consumer):
        stream_spike_values(
            lm,
            windows,
            batch_size=batch_size,
            mu=cal.mu,
            sigma=cal.sigma,
            eps=pipeline["eps"],
            spike_defs=cal.spike_defs,
            gain=gain,
            consumer=consumer,
            intervention=intervention,
        )

    fits = fit_thresholds(
        run_pass,
        cal.targets,
        lm.n_layers,
        pipeline["rate_match_hist_bins"],
        pipeline["rate_match_edge_round_abs"],
    )
    check_gate(
        fits,
        tol_abs=pipeline["rate_match_tol_abs"],
        tol_rel=pipeline["rate_match_tol_rel"],
        min_samples=pipeline["rate_match_min_cal_samples"],
        where=f"g={gain:g} ({intervention})",
    )
    return fits


def taus_of(fits: dict[str, dict[str, LayerFit]]) -> dict[tuple[str, str], np.ndarray]:
    """{(spike definition, rate key): tau [L]} from fits."""
    return {(sd, rk): fit.tau for sd, per in fits.items() for rk, fit in per.items()}


def taus_from_table(table: pd.DataFrame, gain: float) -> dict[tuple[str, str], np.ndarray]:
    """{(spike definition, rate key): tau [L]} at `gain` from S04's tau_rate_matched.parquet."""
    rows = table[np.isclose(table["g"], gain)]
    if rows.empty:
        raise MissingInputError(
            f"no thresholds for g={gain:g} in the tau table (its grid lacks it)"
        )
    return {
        (sd, rk): group.sort_values("layer")["tau"].to_numpy()
        for (sd, rk), group in rows.groupby(["spike_def", "rate_key"], sort=True)
    }
