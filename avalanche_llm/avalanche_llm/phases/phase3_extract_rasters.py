"""Rasters of the held-out A slice at g=1 and g* per condition, with A-calibration thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from avalanche_llm import canon
from avalanche_llm.conditions import condition_key
from avalanche_llm.events.calibration import Calibration, fit_at_gain, taus_of
from avalanche_llm.raster.build import extract_rasters, raster_arrays
from avalanche_llm.runs import PhaseContext

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


def run(ctx: PhaseContext) -> None:
    """Fit tau on the calibration slice at each needed gain, then extract held-out rasters."""
    run, p = ctx.run, ctx.pipeline
    lm = ctx.model()
    cal = Calibration.from_run(ctx.deps["S01"])
    gstar = ctx.deps["S02B"].read_json(canon.output("GSTAR_JSON"))
    cal_slice = ctx.slice("A_cal", verify="S01")
    held = ctx.slice("A_heldout")
    run.update(model=lm.describe(), dataset={"A": held.describe()})
    run.set_slice_hash(held.sha256)
    conds = raster_conditions(cal, gstar, p["gain_baseline"])
    batch = ctx.cfg["runtime"]["batch_size"]
    gains = sorted({c["g"] for c in conds})
    rasters: dict[int, np.ndarray] = {}
    with ctx.heartbeat(len(gains)) as hb:
        for step, g in enumerate(gains):
            fits = fit_at_gain(lm, cal_slice.windows, cal, p, gain=g, batch_size=batch)
            at_g = [c for c in conds if c["g"] == g]
            wanted = {(c["spike_def"], c["rate_key"]) for c in at_g}
            taus = {k: v for k, v in taus_of(fits).items() if k in wanted}
            out = extract_rasters(
                lm,
                held.windows,
                taus,
                batch_size=batch,
                mu=cal.mu,
                sigma=cal.sigma,
                eps=p["eps"],
                gain=g,
            )
            sites = held.windows.size * lm.d_ff
            for c in at_g:
                A = out[c["spike_def"], c["rate_key"]]
                fit = fits[c["spike_def"]][c["rate_key"]]
                rasters[c["cond_id"]] = A
                c.update(
                    tau_mean=float(fit.tau.mean()),
                    rate_target_mean=float(fit.target.mean()),
                    rate_cal_mean=float(fit.achieved.mean()),
                    rate_heldout_mean=float(A.sum(dtype=np.int64)) / sites,
                    n_windows=int(A.shape[0]),
                )
            hb.beat(step + 1)
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
