"""Rasters of the held-out A slice at g=1 and g* per condition, with A-calibration thresholds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from avalanche_llm import canon
from avalanche_llm.conditions import condition_key
from avalanche_llm.events.calibration import Calibration, fit_at_gain, taus_of
from avalanche_llm.phase_tasks import run_units
from avalanche_llm.raster.build import extract_rasters, raster_arrays
from avalanche_llm.runs import PhaseContext

if TYPE_CHECKING:
    from avalanche_llm.model.loader import LoadedModel

STAGE = "S03"
NEEDS: tuple[str, ...] = ("S01", "S02B")
PRODUCES_RUN = True


def check(ctx: PhaseContext) -> None:
    """The model and dataset A resolve (offline hub ids fail here, before a run directory exists)."""
    ctx.require_inputs("A")


GAIN_LABELS = ("g1", "gstar")


def raster_conditions(cal: Calibration, gstar: dict, baseline: float) -> list[dict]:
    """The (spike definition, rate, g label) conditions in cond_id order, with their gains."""
    conds = []
    for sd in cal.spike_defs:
        for r in cal.rates:
            key = condition_key(sd, r.key)
            choice = gstar["by_condition"][key]
            for label in GAIN_LABELS:
                conds.append(
                    {
                        "cond_id": len(conds),
                        "condition": key,
                        "spike_def": sd,
                        "rate_key": r.key,
                        "rho": r.rho,
                        "g_label": label,
                        "g": baseline if label == "g1" else float(choice["gstar"]),
                        "gstar_status": choice["status"],
                    }
                )
    return conds


def rasters_at_gain(lm: LoadedModel, x: dict[str, Any]) -> dict[int, tuple[np.ndarray, dict]]:
    """One task: fit tau on the calibration slice at `x['g']`, extract the held-out rasters of the
    conditions at that gain; {cond_id: (raster, its metrics)}."""
    p, cal, g, held = x["pipeline"], x["cal"], x["g"], x["held"]
    fits = fit_at_gain(lm, x["cal_windows"], cal, p, gain=g, batch_size=x["batch"])
    wanted = {(sd, rk) for _, sd, rk in x["conds"]}
    taus = {k: v for k, v in taus_of(fits).items() if k in wanted}
    out = extract_rasters(
        lm, held, taus, batch_size=x["batch"], mu=cal.mu, sigma=cal.sigma, eps=p["eps"], gain=g
    )
    sites = held.size * lm.d_ff
    part = {}
    for cond_id, sd, rk in x["conds"]:
        A, fit = out[sd, rk], fits[sd][rk]
        part[cond_id] = (
            A,
            {
                "tau_mean": float(fit.tau.mean()),
                "rate_target_mean": float(fit.target.mean()),
                "rate_cal_mean": float(fit.achieved.mean()),
                "rate_heldout_mean": float(A.sum(dtype=np.int64)) / sites,
                "n_windows": int(A.shape[0]),
            },
        )
    return part


def run(ctx: PhaseContext) -> None:
    """Fit tau on the calibration slice at each needed gain, then extract held-out rasters;
    one executor task per distinct gain (the conditions at a gain share its forward passes)."""
    run, p = ctx.run, ctx.pipeline
    lm = ctx.model()
    cal = Calibration.from_run(ctx.deps["S01"])
    gstar = ctx.deps["S02B"].read_json(canon.output("GSTAR_JSON"))
    cal_slice = ctx.slice("A_cal", verify="S01")
    held = ctx.slice("A_heldout")
    run.update(model=lm.describe(), dataset={"A": held.describe()})
    run.set_slice_hash(held.sha256)
    conds = raster_conditions(cal, gstar, p["gain_baseline"])
    shared = {
        "pipeline": p,
        "cal": cal,
        "cal_windows": cal_slice.windows,
        "held": held.windows,
        "batch": ctx.cfg["runtime"]["batch_size"],
    }
    gains = sorted({c["g"] for c in conds})
    units = [
        (
            f"{i:02d}_g{g:g}",
            {
                **shared,
                "g": g,
                "conds": [
                    (c["cond_id"], c["spike_def"], c["rate_key"]) for c in conds if c["g"] == g
                ],
            },
        )
        for i, g in enumerate(gains)
    ]
    rasters: dict[int, np.ndarray] = {}
    for part in run_units(ctx, f"{__name__}:rasters_at_gain", units):
        for cond_id, (A, metrics) in part.items():
            rasters[cond_id] = A
            conds[cond_id].update(metrics)
    arrays = raster_arrays(
        [rasters[c["cond_id"]] for c in conds], [c["cond_id"] for c in conds], held.indices
    )
    run.write_npz(canon.output("RASTERS_NPZ"), arrays, name="RASTERS_NPZ")
    run.write_parquet(canon.output("METRICS_PARQUET"), pd.DataFrame(conds), name="METRICS_PARQUET")
    run.write_json(
        canon.output("SLICE_JSON"),
        {cal_slice.name: cal_slice.describe(), held.name: held.describe()},
        name="SLICE_JSON",
    )
    run.update(conditions=conds)
