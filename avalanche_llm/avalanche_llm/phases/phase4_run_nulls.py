"""Thresholds over the full gain grid, and the three null models of the S03 rasters (marginals checked)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from avalanche_llm import canon
from avalanche_llm.events.calibration import Calibration, fit_at_gain, taus_of
from avalanche_llm.phase_tasks import run_units
from avalanche_llm.raster.build import extract_rasters, occupancy
from avalanche_llm.raster.nulls import (
    PERM,
    SHIFT,
    SHUFFLE,
    check_row_marginals,
    check_token_shuffle,
    circular_shift,
    shuffle_tokens,
    time_permutation,
)
from avalanche_llm.runs import PhaseContext
from labkit.errors import ConfigError, MissingInputError

if TYPE_CHECKING:
    from avalanche_llm.model.loader import LoadedModel

STAGE = "S04"
NEEDS: tuple[str, ...] = ("S01", "S03")
PRODUCES_RUN = True


def check(ctx: PhaseContext) -> None:
    """The model and dataset A resolve (offline hub ids fail here, before a run directory exists)."""
    ctx.require_inputs("A")


def tau_rows(fits: dict, g: float, pipeline: dict) -> list[dict]:
    """One row per (spike definition, rate, layer) of a gain's fits, with the gate verdict."""
    rows = []
    for sd, per in fits.items():
        for rk, fit in per.items():
            ok = fit.gate(
                pipeline["rate_match_tol_abs"],
                pipeline["rate_match_tol_rel"],
                pipeline["rate_match_min_cal_samples"],
            )
            for layer in range(fit.tau.size):
                rows.append(
                    {
                        "spike_def": sd,
                        "rate_key": rk,
                        "g": g,
                        "layer": layer,
                        "tau": float(fit.tau[layer]),
                        "rate_target": float(fit.target[layer]),
                        "rate_achieved": float(fit.achieved[layer]),
                        "abs_err": float(fit.abs_err[layer]),
                        "n_samples": int(fit.n[layer]),
                        "gate_pass": bool(ok[layer]),
                    }
                )
    return rows


def nulls_at_gain(lm: LoadedModel, x: dict[str, Any]) -> tuple[list[dict], dict]:
    """One task: the tau rows of gain `x['g']` on the calibration slice, and the input-shuffle
    rasters of the S03 conditions at that gain ({cond_id: raster})."""
    p, cal, g = x["pipeline"], x["cal"], x["g"]
    fits = fit_at_gain(lm, x["cal_windows"], cal, p, gain=g, batch_size=x["batch"])
    if not x["conds"]:
        return tau_rows(fits, g, p), {}
    wanted = {(sd, rk) for _, sd, rk in x["conds"]}
    taus = {k: v for k, v in taus_of(fits).items() if k in wanted}
    out = extract_rasters(
        lm,
        x["shuffled"],
        taus,
        batch_size=x["batch"],
        mu=cal.mu,
        sigma=cal.sigma,
        eps=p["eps"],
        gain=g,
    )
    return tau_rows(fits, g, p), {c: out[sd, rk] for c, sd, rk in x["conds"]}


def run(ctx: PhaseContext) -> None:
    """Tau grid on the calibration slice; perm, shift and input-shuffle nulls of every condition."""
    run, p = ctx.run, ctx.pipeline
    lm = ctx.model()
    cal = Calibration.from_run(ctx.deps["S01"])
    s03 = ctx.deps["S03"]
    cal_slice = ctx.slice("A_cal", verify="S01")
    held = ctx.slice("A_heldout", verify="S03")
    run.update(model=lm.describe(), dataset={"A": held.describe()})
    run.set_slice_hash(held.sha256)
    real = s03.load_npz(canon.output("RASTERS_NPZ"))
    conds = s03.read_parquet(canon.output("METRICS_PARQUET"))
    A, cond_ids, seq_ids = real["A"], real["cond_id"], real["seq_id"]
    if not np.array_equal(seq_ids, held.indices):
        raise MissingInputError(f"{s03.run_id} rasters are not of the re-derived held-out slice")
    batch, seed = ctx.cfg["runtime"]["batch_size"], p["bootstrap_seed"]
    gains = [float(g) for g in p["gain_grid"]]
    shuffled = shuffle_tokens(held.windows, run.run_id, seq_ids, seed)
    check_token_shuffle(held.windows, shuffled)
    shared = {
        "pipeline": p,
        "cal": cal,
        "cal_windows": cal_slice.windows,
        "shuffled": shuffled,
        "batch": batch,
    }
    units = []
    for i, g in enumerate(gains):
        at_g = conds[np.isclose(conds["g"], g)]
        cells = zip(at_g["cond_id"], at_g["spike_def"], at_g["rate_key"], strict=True)
        units.append((f"{i:02d}_g{g:g}", {**shared, "g": g, "conds": [*cells]}))
    A_shuffle = np.zeros_like(A)
    shuffled_conds: set[int] = set()
    taus_rows: list[dict] = []
    for rows, part in run_units(ctx, f"{__name__}:nulls_at_gain", units):
        taus_rows += rows
        for c, A_c in part.items():
            A_shuffle[int(np.flatnonzero(cond_ids == c)[0])] = A_c
            shuffled_conds.add(int(c))
    if shuffled_conds != {int(c) for c in cond_ids}:
        raise ConfigError(
            "an S03 condition's gain is not on pipeline.gain_grid; no thresholds for it"
        )
    A_perm = time_permutation(A, run.run_id, cond_ids, seq_ids, seed)
    check_row_marginals(A, A_perm, PERM)
    A_shift, shift_k = circular_shift(A, run.run_id, cond_ids, seq_ids, seed)
    check_row_marginals(A, A_shift, SHIFT)
    run.write_parquet(canon.output("TAU_PARQUET"), pd.DataFrame(taus_rows), name="TAU_PARQUET")
    run.write_npz(
        canon.output("RASTERS_NULLS_NPZ"),
        {
            "A_perm": A_perm,
            "X_perm": occupancy(A_perm),
            "A_shift": A_shift,
            "X_shift": occupancy(A_shift),
            "shift_k": shift_k,
            "A_shuffle": A_shuffle,
            "X_shuffle": occupancy(A_shuffle),
            "tokens_shuffle": shuffled,
            "cond_id": cond_ids,
            "seq_id": seq_ids,
        },
        name="RASTERS_NULLS_NPZ",
    )
    sites = held.windows.size * lm.d_ff
    rows = []
    for i, c in enumerate(cond_ids):
        for null_id, An in ((PERM, A_perm), (SHIFT, A_shift), (SHUFFLE, A_shuffle)):
            rows.append(
                {
                    "cond_id": int(c),
                    "null_id": null_id,
                    "spikes_real": int(A[i].sum(dtype=np.int64)),
                    "spikes_null": int(An[i].sum(dtype=np.int64)),
                    "rate_null_mean": float(An[i].sum(dtype=np.int64)) / sites,
                    "row_marginals_kept": bool(
                        np.array_equal(np.sort(A[i], axis=-1), np.sort(An[i], axis=-1))
                    ),
                }
            )
    run.write_parquet(canon.output("METRICS_PARQUET"), pd.DataFrame(rows), name="METRICS_PARQUET")
    run.write_json(
        canon.output("SLICE_JSON"),
        {cal_slice.name: cal_slice.describe(), held.name: held.describe()},
        name="SLICE_JSON",
    )
    run.update(conditions=conds.to_dict("records"))
