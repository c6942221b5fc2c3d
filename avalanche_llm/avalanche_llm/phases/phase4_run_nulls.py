"""Thresholds over the full gain grid, and the three null models of the S03 rasters (marginals checked)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from avalanche_llm import canon
from avalanche_llm.events.calibration import Calibration, fit_at_gain, taus_of
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
    A_shuffle = np.zeros_like(A)
    shuffled_conds: set[int] = set()
    taus_rows: list[dict] = []
    with ctx.heartbeat(len(gains)) as hb:
        for step, g in enumerate(gains):
            fits = fit_at_gain(lm, cal_slice.windows, cal, p, gain=g, batch_size=batch)
            taus_rows += tau_rows(fits, g, p)
            at_g = conds[np.isclose(conds["g"], g)]
            if len(at_g):
                wanted = set(zip(at_g["spike_def"], at_g["rate_key"], strict=True))
                taus = {k: v for k, v in taus_of(fits).items() if k in wanted}
                out = extract_rasters(
                    lm,
                    shuffled,
                    taus,
                    batch_size=batch,
                    mu=cal.mu,
                    sigma=cal.sigma,
                    eps=p["eps"],
                    gain=g,
                )
                for c, sd, rk in zip(
                    at_g["cond_id"], at_g["spike_def"], at_g["rate_key"], strict=True
                ):
                    A_shuffle[int(np.flatnonzero(cond_ids == c)[0])] = out[sd, rk]
                    shuffled_conds.add(int(c))
            hb.beat(step + 1)
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
