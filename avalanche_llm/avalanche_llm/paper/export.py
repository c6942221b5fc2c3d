"""Claims with their evidence (run, artifact, sha256) and the base-vs-instruct replication table T07."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from avalanche_llm import canon
from avalanche_llm.io.artifacts import RunArtifacts

ROLES = ("BASE", "INSTRUCT")
T01 = f"{canon.output('TABLE.T01_SUMMARY')}.parquet"
T02 = f"{canon.output('TABLE.T02_GENERALIZATION')}.parquet"
T03 = f"{canon.output('TABLE.T03_ARC')}.parquet"
T04 = f"{canon.output('TABLE.T04_TAIL_FITS')}.parquet"
SIGNATURES = canon.output("SIGNATURES_PARQUET")


def evidence(run: RunArtifacts, rel: str) -> str:
    """`run_id/path (sha256 prefix)` of an artifact, after checking it against its recorded hash."""
    run.artifact(rel)
    entry = next(e for e in run.record["artifact_index"] if e["relative_path"] == rel)
    return f"`{run.run_id}/{rel}` (sha256 {entry['sha256'][:12]})"


def role_summary(s05: RunArtifacts) -> pd.DataFrame:
    """Per (spike definition, rate key): g*, status, signatures, and delta_b_tot and chi at g*."""
    sig = s05.read_parquet(SIGNATURES)
    t01 = s05.read_parquet(T01)
    at = t01.set_index(["spike_def_id", "opt_rate_key", "gain"])
    rows = []
    for r in sig.itertuples():
        cur = at.loc[(r.spike_def, r.rate_key, r.gstar)]
        rows.append(
            {
                "spike_def_id": r.spike_def,
                "rate_key": r.rate_key,
                "target_rate": r.rho,
                "gstar": r.gstar,
                "gstar_status": r.gstar_status,
                "delta_b_tot": float(cur["delta_b_tot_perm"]),
                "chi": float(cur["chi"]),
                "S1": bool(r.S1_BRANCHING_CROSSING),
                "S2": bool(r.S2_SUSCEPTIBILITY_PEAK),
                "S3": bool(r.S3_CRACKLING_RELATION),
                "quasi_critical": bool(r.quasi_critical),
                "gain_effect_resolved": bool(r.gain_effect_resolved),
            }
        )
    return pd.DataFrame(rows)


def replication_rows(summaries: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """T07 rows: one per (spike definition, rate key), each role's numbers side by side."""
    keys = ["spike_def_id", "rate_key"]
    merged = None
    for role, frame in summaries.items():
        part = frame.set_index(keys).add_suffix(f"_{role}")
        merged = part if merged is None else merged.join(part, how="outer")
    merged = merged.reset_index()
    first = next(iter(summaries))
    merged.insert(2, "target_rate", merged[f"target_rate_{first}"])
    return merged


def _fmt(x: Any) -> str:
    if isinstance(x, float | np.floating):
        return f"{x:.4g}"
    return str(x)


def claims_markdown(role: str, runs: Mapping[str, RunArtifacts]) -> str:
    """The claim-to-evidence note of one model role from its S05, S06B and S06ARC runs."""
    s05, s06b, s06arc = runs["S05"], runs["S06B"], runs["S06ARC"]
    summary = role_summary(s05)
    t01, t02, t03 = s05.read_parquet(T01), s06b.read_parquet(T02), s06arc.read_parquet(T03)
    t04 = s05.read_parquet(T04)
    lines = [f"# {role}: claims and evidence", "", f"Model `{t01['model_id'].iloc[0]}`.", ""]

    n_cross = int((summary["gstar_status"] == "crossing").sum())
    lines += [
        f"## C1 g* (b_tot nearest 1 on A): {n_cross}/{len(summary)} conditions cross b_tot = 1",
        "",
        "| condition | g* | status | delta_b_tot at g* | chi at g* | S1 | S2 | S3 | quasi-critical |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.itertuples():
        lines.append(
            f"| {r.spike_def_id}\\|{r.rate_key} | {r.gstar:g} | {r.gstar_status} | "
            f"{r.delta_b_tot:.3f} | {r.chi:.3g} | {r.S1} | {r.S2} | {r.S3} | {r.quasi_critical} |"
        )
    lines += ["", f"Evidence: {evidence(s05, SIGNATURES)}, {evidence(s05, T01)}.", ""]

    resolved = int(summary["gain_effect_resolved"].sum())
    spread = t01.groupby(["spike_def_id", "opt_rate_key"])["b_tot"].agg(lambda b: b.max() - b.min())
    width = (t01["b_tot_hi"] - t01["b_tot_lo"]).mean()
    by_rate = t01[t01["gain"] == 1.0].groupby("target_rate")["b_tot"].mean()
    lines += [
        f"## C2 the gain moves b_tot beyond its CI in {resolved}/{len(summary)} conditions",
        "",
        f"Range of b_tot over the gain grid: {spread.min():.3f}-{spread.max():.3f}; mean 95% CI "
        f"width {width:.3f}. At g=1, b_tot by target rate: "
        + ", ".join(f"{k:.3g}: {v:.3f}" for k, v in by_rate.items())
        + f". Evidence: {evidence(s05, T01)}.",
        "",
    ]

    g1 = t01[t01["gain"] == 1.0]
    excl = int((g1["delta_b_tot_perm_lo"] > 0).sum())
    lines += [
        f"## C3 b_tot exceeds the within-layer permutation null at g=1 in {excl}/{len(g1)} conditions",
        "",
        f"delta_b_tot (perm) at g=1: {g1['delta_b_tot_perm'].min():.3f}-"
        f"{g1['delta_b_tot_perm'].max():.3f}; vs circular shift "
        f"{g1['delta_b_tot_shift'].min():.3f}-{g1['delta_b_tot_shift'].max():.3f}. "
        f"Evidence: {evidence(s05, T01)}.",
        "",
    ]

    b = t02.pivot_table(
        index=["spike_def_id", "target_rate"],
        columns="gain_label",
        values=["ppl", "b_tot", "opt_rate_mean", "opt_rate_target"],
    )
    lines += [
        "## C4 transfer to dataset B (A's thresholds)",
        "",
        f"Perplexity on B at g=1: {b[('ppl', 'g1')].iloc[0]:.4g}; at g*: "
        + ", ".join(_fmt(v) for v in b[("ppl", "gstar")])
        + ". Spike rate on B over A's target: "
        + f"{(b[('opt_rate_mean', 'g1')] / b[('opt_rate_target', 'g1')]).min():.3f}-"
        + f"{(b[('opt_rate_mean', 'g1')] / b[('opt_rate_target', 'g1')]).max():.3f}x at g=1. "
        + f"Evidence: {evidence(s06b, T02)}.",
        "",
    ]

    arc = t03.drop_duplicates(subset=["gain"]).sort_values("gain")
    lines += [
        "## C5 multiple-choice accuracy at g=1 vs g*",
        "",
        "| gain | accuracy | 95% CI | mean log p(correct) - log p(incorrect) |",
        "|---|---|---|---|",
        *(
            f"| {r.gain:g} | {r.accuracy:.3f} | [{r.accuracy_lo:.3f}, {r.accuracy_hi:.3f}] | "
            f"{r.mean_logprob_correct_minus_incorrect:.4f} |"
            for r in arc.itertuples()
        ),
        "",
        f"n = {int(arc['n_items'].iloc[0])} items. Evidence: {evidence(s06arc, T03)}.",
        "",
    ]

    fitted = t04.dropna(subset=["alpha"])
    favour = int((fitted["llr_lognormal"] > 0).sum())
    lines += [
        "## C6 avalanche tails (descriptive): discrete power law, xmin by KS",
        "",
        f"{len(fitted)}/{len(t04)} fits had >= 100 tail samples; alpha "
        + (f"{fitted['alpha'].min():.2f}-{fitted['alpha'].max():.2f}" if len(fitted) else "n/a")
        + f"; power law preferred over lognormal (R > 0) in {favour}/{len(fitted)}. "
        + f"Evidence: {evidence(s05, T04)}.",
        "",
    ]
    return "\n".join(lines)
