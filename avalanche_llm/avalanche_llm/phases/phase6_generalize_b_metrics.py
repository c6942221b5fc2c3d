"""Dataset B at g=1 and each condition's g*, with A's thresholds: branching, chi, rate drift, NLL, ppl,
and ppl(g*) - ppl(g=1) with a paired bootstrap CI over windows.

Nothing is refitted on B: thresholds are S04's (fit on A at that gain), so `rate_mean` against
`rate_target` shows whether A's rate matching carries over to B.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from avalanche_llm import canon
from avalanche_llm.analysis.summarize import branching_row, row_nulls, taus_at
from avalanche_llm.evaluation.perplexity import window_nll
from avalanche_llm.events.calibration import Calibration
from avalanche_llm.metrics.stats import ci_seed, paired_difference_ci
from avalanche_llm.plotting import figures
from avalanche_llm.plotting.outputs import source, write_figure, write_table
from avalanche_llm.plotting.tables import to_table_names
from avalanche_llm.raster.build import extract_rasters
from avalanche_llm.runs import PhaseContext

STAGE = "S06B"
NEEDS: tuple[str, ...] = ("S01", "S02B", "S04", "S05")
PRODUCES_RUN = True
T02 = canon.output("TABLE.T02_GENERALIZATION")


def check(ctx: PhaseContext) -> None:
    """The model and dataset B resolve before a run directory exists."""
    ctx.require_inputs("B")


def run(ctx: PhaseContext) -> None:
    """Measure B at every needed gain, then write T02 and F06 from the saved results."""
    run, p = ctx.run, ctx.pipeline
    lm = ctx.model()
    cal = Calibration.from_run(ctx.deps["S01"])
    gstar = ctx.deps["S02B"].read_json(canon.output("GSTAR_JSON"))["by_condition"]
    tau = ctx.deps["S04"].read_parquet(canon.output("TAU_PARQUET"))
    s05 = ctx.deps["S05"].read_parquet(canon.output("METRICS_PARQUET"))
    on_a = s05[s05["intervention_id"] == "MLP_GLOBAL"].set_index(["condition", "g"])["b_tot"]
    sl = ctx.slice("B_eval")
    run.update(model=lm.describe(), dataset={"B": sl.describe()})
    run.set_slice_hash(sl.sha256)
    rho = {r.key: r.rho for r in cal.rates}
    conds = [
        {
            "condition": key,
            "spike_def": v["spike_def"],
            "rate_key": v["rate_key"],
            "rho": rho[v["rate_key"]],
            "g_label": label,
            "gstar_status": v["status"],
            "g": p["gain_baseline"] if label == "g1" else float(v["gstar"]),
        }
        for key, v in sorted(gstar.items())
        for label in ("g1", "gstar")
    ]
    batch, seed = ctx.cfg["runtime"]["batch_size"], p["bootstrap_seed"]
    gains = sorted({c["g"] for c in conds})
    rows = []
    nll_of: dict[float, np.ndarray] = {}
    with ctx.heartbeat(len(gains)) as hb:
        for step, g in enumerate(gains):
            nll_of[g] = window_nll(lm, sl.windows, g, batch)
            nll = float(nll_of[g].mean())
            rasters = extract_rasters(
                lm,
                sl.windows,
                taus_at(tau, g),
                batch_size=batch,
                mu=cal.mu,
                sigma=cal.sigma,
                eps=p["eps"],
                gain=g,
            )
            for cond_id, c in enumerate(conds):
                if c["g"] != g:
                    continue
                A = rasters[c["spike_def"], c["rate_key"]]
                nulls = {"perm": row_nulls(A, run.run_id, cond_id, sl.indices, seed)["perm"]}
                measured = branching_row(
                    A, nulls, run_id=run.run_id, cond=cond_id, pipeline=p, d_ff=lm.d_ff
                )
                rows.append(
                    {
                        "cond_id": cond_id,
                        **c,
                        **measured,
                        "nll_mean": nll,
                        "ppl": math.exp(nll),
                        "rate_target": float(cal.targets[c["spike_def"]][c["rate_key"]].mean()),
                        "b_tot_A": float(on_a.loc[(c["condition"], g)]),
                    }
                )
            hb.beat(step + 1)
    for r in rows:
        r |= delta_ppl(nll_of[p["gain_baseline"]], nll_of[r["g"]], run.run_id, r["cond_id"], p)
    frame = pd.DataFrame(rows).sort_values("cond_id").reset_index(drop=True)
    run.write_parquet(canon.output("METRICS_PARQUET"), frame, name="METRICS_PARQUET")
    run.write_json(canon.output("SLICE_JSON"), {sl.name: sl.describe()}, name="SLICE_JSON")
    run.update(conditions=conds)
    export(ctx)


def delta_ppl(
    nll_g1: np.ndarray, nll_g: np.ndarray, run_id: str, cond_id: int, pipeline: dict
) -> dict[str, float]:
    """ppl(g) - ppl(g=1) on B with a paired bootstrap CI over windows (0 at g = 1 itself)."""

    def ppl(nll: np.ndarray) -> np.ndarray:
        return np.exp(nll.mean(axis=-1))

    lo, hi = paired_difference_ci(
        nll_g1,
        nll_g,
        ppl,
        seed=ci_seed(run_id, cond_id, "delta_ppl", pipeline["bootstrap_seed"]),
        reps=pipeline["bootstrap_reps"],
    )
    return {"delta_ppl": float(ppl(nll_g) - ppl(nll_g1)), "delta_ppl_lo": lo, "delta_ppl_hi": hi}


def export(ctx: PhaseContext) -> None:
    """T02 (delta_b_tot is against the within-layer permutation null) and F06, from saved results."""
    results = ctx.run.read_parquet(canon.output("METRICS_PARQUET"))
    renamed = results.rename(
        columns={f"delta_b_tot_perm{s}": f"delta_b_tot{s}" for s in ("", "_lo", "_hi")}
    )
    write_table(ctx, "T02_GENERALIZATION", to_table_names(renamed.drop(columns=["condition"])), "B")
    t02 = ctx.run.read_parquet(f"{T02}.parquet")
    write_figure(
        ctx,
        "F06_GENERALIZATION_B",
        figures.f06_generalization_b(t02),
        [source(ctx.run, f"{T02}.parquet")],
    )
