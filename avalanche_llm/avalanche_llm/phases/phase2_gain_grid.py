"""Gain grid on the A calibration slice: per g, rate-matched tau, rasters, b and delta_b with CIs
against the perm and shift nulls and the rate-matched iid control, chi and m_MR."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from avalanche_llm import canon
from avalanche_llm.analysis.summarize import row_nulls
from avalanche_llm.conditions import condition_key
from avalanche_llm.events.calibration import Calibration, fit_at_gain, taus_of
from avalanche_llm.metrics.branching import branching_with_nulls
from avalanche_llm.metrics.branching_mr import mr_branching, raster_activity
from avalanche_llm.metrics.stats import ci_seed
from avalanche_llm.metrics.susceptibility import chi
from avalanche_llm.phase_tasks import run_units
from avalanche_llm.raster.build import extract_rasters, occupancy
from avalanche_llm.runs import PhaseContext

if TYPE_CHECKING:
    from avalanche_llm.model.loader import LoadedModel

STAGE = "S02"
NEEDS: tuple[str, ...] = ("S01",)
PRODUCES_RUN = True


def check(ctx: PhaseContext) -> None:
    """The model and dataset A resolve (offline hub ids fail here, before a run directory exists)."""
    ctx.require_inputs("A")


def grid_conditions(cal: Calibration, gains: list[float]) -> list[tuple[str, str, float]]:
    """(spike definition, rate key, g) in cond_id order."""
    return [(sd, r.key, float(g)) for sd in cal.spike_defs for r in cal.rates for g in gains]


def gain_rows(lm: LoadedModel, x: dict[str, Any]) -> list[dict[str, Any]]:
    """One task: fit, extract and measure every (spike definition, rate) at gain `x['g']`."""
    p, cal, g = x["pipeline"], x["cal"], x["g"]
    fits = fit_at_gain(lm, x["windows"], cal, p, gain=g, batch_size=x["batch"])
    rasters = extract_rasters(
        lm,
        x["windows"],
        taus_of(fits),
        batch_size=x["batch"],
        mu=cal.mu,
        sigma=cal.sigma,
        eps=p["eps"],
        gain=g,
    )
    rho = {r.key: r.rho for r in cal.rates}
    rows = []
    for (sd, rk), A in rasters.items():
        c = x["cond_id"][sd, rk, g]
        nulls = row_nulls(A, x["run_id"], c, x["seq_ids"], p["bootstrap_seed"])
        fit = fits[sd][rk]
        rows.append(
            {
                "cond_id": c,
                "condition": condition_key(sd, rk),
                "spike_def": sd,
                "rate_key": rk,
                "rho": rho[rk],
                "g": g,
                "rate_target_mean": float(fit.target.mean()),
                "rate_achieved_mean": float(fit.achieved.mean()),
                "rate_abs_err_max": float(fit.abs_err.max()),
                "tau_mean": float(fit.tau.mean()),
                "n_windows": int(A.shape[0]),
                **branching_with_nulls(
                    occupancy(A),
                    {name: occupancy(v) for name, v in nulls.items()},
                    seed_of={
                        t: ci_seed(x["run_id"], c, t, p["bootstrap_seed"]) for t in ("b", *nulls)
                    },
                    reps=p["bootstrap_reps"],
                ),
                "chi": chi(A, p["chi_eps"]),
                # the curves g* methods mr_near_one and excess_btot read
                "m_mr": mr_branching(raster_activity(A)),
            }
        )
    return rows


def run(ctx: PhaseContext) -> None:
    """Fit, extract and measure every (spike definition, rate, g) on the calibration slice,
    one executor task per g."""
    run, p = ctx.run, ctx.pipeline
    lm = ctx.model()
    cal = Calibration.from_run(ctx.deps["S01"])
    sl = ctx.slice("A_cal", verify="S01")
    run.update(model=lm.describe(), dataset={"A": sl.describe()})
    run.set_slice_hash(sl.sha256)
    gains = [float(g) for g in p["gain_grid"]]
    conds = grid_conditions(cal, gains)
    shared = {
        "pipeline": p,
        "cal": cal,
        "windows": sl.windows,
        "seq_ids": sl.indices,
        "batch": ctx.cfg["runtime"]["batch_size"],
        "run_id": run.run_id,
        "cond_id": {c: i for i, c in enumerate(conds)},
    }
    units = [(f"{i:02d}_g{g:g}", {**shared, "g": g}) for i, g in enumerate(gains)]
    parts = run_units(ctx, f"{__name__}:gain_rows", units)
    rows = [row for part in parts for row in part]
    frame = pd.DataFrame(rows).sort_values("cond_id").reset_index(drop=True)
    run.write_parquet(canon.output("METRICS_PARQUET"), frame, name="METRICS_PARQUET")
    run.write_json(canon.output("SLICE_JSON"), {sl.name: sl.describe()}, name="SLICE_JSON")
    run.update(
        conditions=[
            {"cond_id": i, "spike_def": sd, "rate_key": rk, "g": g}
            for i, (sd, rk, g) in enumerate(conds)
        ]
    )
