"""Write tables and figures into a phase's run: id columns, CANON paths, provenance, registration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from avalanche_llm import canon
from avalanche_llm.io.artifacts import RunArtifacts
from avalanche_llm.plotting.figures import figure_bytes
from avalanche_llm.plotting.tables import build_table, table_bytes
from avalanche_llm.runs import PhaseContext


def table_ids(
    ctx: PhaseContext, dataset_role: str, model_role: str | None = None
) -> dict[str, Any]:
    """The id columns every table row carries."""
    role = model_role or ctx.role
    return {
        "run_id": ctx.run_id,
        "stage_id": ctx.stage_tag,
        "model_id": "|".join(ctx.cfg["models"][r]["hf_id"] for r in role.split("|")),
        "model_role": role,
        "dataset_role": dataset_role,
        "config_hash": ctx.config.sha256,
        "code_version": ctx.run.record["hashes"]["code_version"],
    }


def write_table(
    ctx: PhaseContext,
    table_id: str,
    rows: pd.DataFrame,
    dataset_role: str,
    model_role: str | None = None,
) -> pd.DataFrame:
    """Build table `table_id` from `rows`, write its CSV and Parquet at the CANON path, register both."""
    df = build_table(table_id, rows, table_ids(ctx, dataset_role, model_role))
    base = canon.output(f"TABLE.{table_id}")
    for ext, data in table_bytes(df, rehearsal=ctx.run.record["rehearsal"]).items():
        ctx.run.write_bytes(f"{base}.{ext}", data, name=f"{table_id}_{ext.upper()}")
    return df


def source(run: RunArtifacts, rel: str) -> dict[str, str]:
    """Provenance of one input artifact: its run, path and recorded sha256."""
    entry = next(e for e in run.record["artifact_index"] if e["relative_path"] == rel)
    return {"run_id": run.run_id, "relative_path": rel, "sha256": entry["sha256"]}


def write_figure(
    ctx: PhaseContext, fig_id: str, fig: Figure, sources: Sequence[dict[str, str]]
) -> None:
    """Write figure `fig_id` as PDF + PNG at its CANON path, provenance embedded, and register both."""
    base = canon.output(f"FIGURE.{fig_id}")
    provenance = {
        "figure_id": fig_id,
        "run_id": ctx.run_id,
        "stage_id": ctx.stage_tag,
        "config_hash": ctx.config.sha256,
        "code_version": ctx.run.record["hashes"]["code_version"],
        "sources": list(sources),
    }
    stamp = ctx.run.record["rehearsal"]
    for ext, data in figure_bytes(fig, fig_id, provenance, rehearsal=stamp).items():
        ctx.run.write_bytes(f"{base}.{ext}", data, name=f"{fig_id}_{ext.upper()}")
