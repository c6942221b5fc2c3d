"""Select g* per condition from the S02 grid by the configured method (every method's choice is
kept beside it), with an honest crossing status."""

from __future__ import annotations

from avalanche_llm import canon
from avalanche_llm.analysis.gstar import select_all
from avalanche_llm.runs import PhaseContext

STAGE = "S02B"
NEEDS: tuple[str, ...] = ("S02",)
PRODUCES_RUN = True


def run(ctx: PhaseContext) -> None:
    """One g* per (spike definition, rate) from the gain curves; A only, no task metric."""
    s02 = ctx.deps["S02"]
    grid = s02.read_parquet(canon.output("METRICS_PARQUET"))
    by_condition = {}
    for key, rows in grid.sort_values("g").groupby("condition", sort=True):
        curves = {c: rows[c].tolist() for c in ("b_tot", "m_mr", "b_tot_iid")}
        methods = select_all(rows["g"].tolist(), curves, ctx.const("GAIN_BASELINE"))
        by_condition[key] = {
            "spike_def": rows["spike_def"].iloc[0],
            "rate_key": rows["rate_key"].iloc[0],
            **methods[ctx.const("GSTAR_METHOD")],
            "methods": methods,
        }
    ctx.run.set_slice_hash(s02.record["hashes"]["dataset_slice_sha256"])
    ctx.run.update(dataset={"A": s02.record["dataset"]["A"]}, model=s02.record["model"])
    ctx.run.write_json(
        canon.output("GSTAR_JSON"),
        {
            "method": ctx.const("GSTAR_METHOD"),
            "gains": sorted(float(g) for g in grid["g"].unique()),
            "by_condition": by_condition,
        },
        name="GSTAR_JSON",
    )
    ctx.run.update(
        conditions=[
            {"key": k, "gstar": v["gstar"], "status": v["status"]} for k, v in by_condition.items()
        ]
    )
    for key, v in by_condition.items():
        print(f"  {key}: g* = {v['gstar']:g} ({v['status']})")
