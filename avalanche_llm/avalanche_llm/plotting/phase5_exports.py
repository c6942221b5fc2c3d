"""Phase 5's tables (T01, T04-T06) and figures (F01-F05, F08-F11), read back from saved artifacts only."""

from __future__ import annotations

import pandas as pd

from avalanche_llm import canon
from avalanche_llm.plotting import figures
from avalanche_llm.plotting.outputs import source, write_figure, write_table
from avalanche_llm.plotting.tables import to_table_names
from avalanche_llm.raster.build import occupancy
from avalanche_llm.raster.cc import label
from avalanche_llm.runs import PhaseContext

METRICS = canon.output("METRICS_PARQUET")
NULL_COMPARE = canon.output("NULL_COMPARE_PARQUET")
CONTROLS_COMPARE = canon.output("CONTROLS_COMPARE_PARQUET")
TABLE_OF = {  # results file -> the table it feeds (extras beyond the skeleton become opt_ columns)
    "T04_TAIL_FITS": canon.output("TAIL_FITS_PARQUET"),
    "T05_CRACKLING_DIAGNOSTICS": canon.output("CRACKLING_PARQUET"),
}


def _arm_rows(results: pd.DataFrame, gstar: dict[str, float]) -> pd.DataFrame:
    """T06 rows: MLP_GLOBAL at g=1 and at g*, then every other intervention at g*."""
    mlp = results[results["intervention_id"] == "MLP_GLOBAL"]
    parts = []
    for key, g in gstar.items():
        cur = mlp[mlp["condition"] == key]
        parts.append(cur[cur["g"] == 1.0].assign(arm="g1_MLP_GLOBAL"))
        parts.append(cur[cur["g"] == g].assign(arm="gstar_MLP_GLOBAL"))
    others = results[results["intervention_id"] != "MLP_GLOBAL"]
    parts.append(others.assign(arm="gstar_" + others["intervention_id"]))
    return pd.concat(parts, ignore_index=True)


def _gstar_frame(ctx: PhaseContext) -> pd.DataFrame:
    """One row per condition: the chosen g* and, as gstar_<method> / gstar_status_<method>, every
    method's choice side by side."""
    doc = ctx.deps["S02B"].read_json(canon.output("GSTAR_JSON"))["by_condition"]
    rows = []
    for key, v in sorted(doc.items()):
        row = {"condition": key, **{k: x for k, x in v.items() if k != "methods"}}
        for method, choice in v["methods"].items():
            row[f"gstar_{method}"] = choice["gstar"]
            row[f"gstar_status_{method}"] = choice["status"]
        rows.append(row)
    return pd.DataFrame(rows)


def _by_method(gs: pd.DataFrame) -> pd.DataFrame:
    return gs[["condition", *(c for c in gs if c.startswith("gstar_"))]]


def export(ctx: PhaseContext) -> None:
    """Write T01, T04, T05, T06 and F01-F05, F08-F11 of this S05 run from its saved results."""
    run = ctx.run
    s02, s03, s04 = ctx.deps["S02"], ctx.deps["S03"], ctx.deps["S04"]
    results = run.read_parquet(METRICS)
    sig = run.read_parquet(canon.output("SIGNATURES_PARQUET"))
    gs = _gstar_frame(ctx)
    status = dict(zip(gs["condition"], gs["status"], strict=True))
    gvals = dict(zip(gs["condition"], gs["gstar"], strict=True))
    resolved = dict(zip(sig["condition"], sig["gain_effect_resolved"], strict=True))

    grid = results[results["intervention_id"] == "MLP_GLOBAL"].assign(
        gstar=lambda d: d["condition"].map(gvals),
        gstar_status=lambda d: d["condition"].map(status),
        gain_effect_resolved=lambda d: d["condition"].map(resolved),
    )
    grid = grid.merge(_by_method(gs), on="condition", how="left", validate="many_to_one")
    drop = ["intervention_id", "condition"]
    write_table(ctx, "T01_SUMMARY", to_table_names(grid.drop(columns=drop)), "A")
    for table_id, rel in TABLE_OF.items():
        rows = run.read_parquet(rel)
        if table_id == "T04_TAIL_FITS":
            rows = rows.merge(_by_method(gs), on="condition", how="left", validate="many_to_one")
        write_table(ctx, table_id, to_table_names(rows.drop(columns=["condition"])), "A")
    side = run.read_parquet(CONTROLS_COMPARE)
    verdicts = run.read_parquet(canon.output("CONTROLS_VERDICTS_PARQUET"))
    keys = ["cond_id", "signature"]
    side = side.merge(verdicts[[*keys, "status"]], on=keys, how="left", validate="many_to_one")
    write_table(ctx, "OPT_T08_CONTROLS", to_table_names(side.drop(columns=["condition"])), "A")
    arms = _arm_rows(results, gvals).drop(columns=["condition"])
    write_table(ctx, "T06_ABLATIONS", to_table_names(arms), "A")

    t01 = run.read_parquet(f"{canon.output('TABLE.T01_SUMMARY')}.parquet")
    t06 = run.read_parquet(f"{canon.output('TABLE.T06_ABLATIONS')}.parquet")
    of = {
        "T01": source(run, f"{canon.output('TABLE.T01_SUMMARY')}.parquet"),
        "T06": source(run, f"{canon.output('TABLE.T06_ABLATIONS')}.parquet"),
    }
    rasters = s03.load_npz(canon.output("RASTERS_NPZ"))
    conds = s03.read_parquet(METRICS)
    first = conds.iloc[0]
    labels, _ = label(occupancy(rasters["A"][0, :1]), ctx.pipeline["adjacency"])
    title = f"{first['condition']} {first['g_label']} seq {int(rasters['seq_id'][0])}"
    write_figure(
        ctx,
        "F01_RASTER_EXAMPLE",
        figures.f01_raster_example(rasters["A"][0, 0], labels[0], title),
        [source(s03, canon.output("RASTERS_NPZ"))],
    )
    tau = s04.read_parquet(canon.output("TAU_PARQUET"))
    write_figure(
        ctx,
        "F02_RATE_MATCH_CHECK",
        figures.f02_rate_match_check(to_table_names(tau)),
        [source(s04, canon.output("TAU_PARQUET"))],
    )
    write_figure(ctx, "F03_BRANCHING_CURVES", figures.f03_branching_curves(t01), [of["T01"]])
    write_figure(ctx, "F04_NULL_DELTAB", figures.f04_null_deltab(t01), [of["T01"]])
    s02_grid = to_table_names(s02.read_parquet(METRICS))
    rho = dict(zip(s02_grid["rate_key"], s02_grid["target_rate"], strict=False))
    gs["target_rate"] = gs["rate_key"].map(rho)
    write_figure(
        ctx,
        "F05_GSTAR_SELECTION",
        figures.f05_gstar_selection(s02_grid, to_table_names(gs)),
        [source(s02, METRICS), source(ctx.deps["S02B"], canon.output("GSTAR_JSON"))],
    )
    write_figure(ctx, "F08_SPIKEDEF_ROBUST", figures.f08_spikedef_robust(t01), [of["T01"]])
    write_figure(ctx, "F09_CHI_CURVES", figures.f09_chi_curves(t01), [of["T01"]])
    compare = to_table_names(run.read_parquet(NULL_COMPARE))
    write_figure(
        ctx,
        "F10_NULL_COMPARE",
        figures.f10_null_compare(compare),
        [source(run, NULL_COMPARE)],
    )
    write_figure(ctx, "F11_ABLATIONS", figures.f11_ablations(t06), [of["T06"]])
    write_figure(ctx, "OPT_F12_CONTROLS", figures.f12_controls(t01), [of["T01"]])
