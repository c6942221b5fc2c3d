"""Tables T01-T07 (design §7): fixed id columns, each table's skeleton, extras prefixed `opt_`."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from labkit.errors import SchemaError
from labkit.stamp import NOTE, stamp_table

ID_COLUMNS = (
    "run_id",
    "stage_id",
    "model_id",
    "model_role",
    "dataset_role",
    "config_hash",
    "code_version",
)
COND = ("spike_def_id", "target_rate")
ARM = (*COND, "gain_label", "gain", "gstar_status")


def _ci(*names: str) -> tuple[str, ...]:
    return tuple(c for n in names for c in (n, f"{n}_lo", f"{n}_hi"))


SKELETONS: dict[str, tuple[str, ...]] = {
    "T01_SUMMARY": (
        *COND,
        "gain",
        "rate_mean",
        *_ci("b_time", "b_depth", "b_tot"),
        "b_time_perm",
        "b_depth_perm",
        "b_tot_perm",
        *_ci("delta_b_time_perm", "delta_b_depth_perm", "delta_b_tot_perm"),
        *_ci("delta_b_tot_shift"),
        "ratio_b_tot_perm",
        "chi",
        "crackling_gamma",
        "crackling_pass",
        "n_avalanches",
        "size_mean",
        "size_max",
        "duration_mean",
        "height_mean",
    ),
    "T02_GENERALIZATION": (
        *ARM,
        "b_time",
        "b_depth",
        "b_tot",
        *_ci("delta_b_tot"),
        "chi",
        "ppl",
        "nll_mean",
    ),
    "T03_ARC": (*ARM, "n_items", *_ci("accuracy"), "mean_logprob_correct_minus_incorrect"),
    "T04_TAIL_FITS": (
        *ARM,
        "quantity",
        "alpha",
        "sigma",
        "xmin",
        "ks_d",
        "n",
        "n_tail",
        "llr_lognormal",
        "p_lognormal",
        "llr_exponential",
        "p_exponential",
        "llr_truncated_power_law",
        "p_truncated_power_law",
    ),
    "T05_CRACKLING_DIAGNOSTICS": (
        *ARM,
        "gamma",
        "gamma_lo",
        "gamma_hi",
        "n_duration_points",
        "r2",
        "pass",
    ),
    "T06_ABLATIONS": (
        *COND,
        "arm",
        "intervention_id",
        "gain",
        "rate_mean",
        "b_tot",
        "delta_b_tot_perm",
        "chi",
    ),
    "OPT_T08_CONTROLS": (
        *ARM,
        "signature",
        "status",
        "source",
        "value",
        "lo",
        "hi",
        "met",
        "excess",
        "excess_lo",
        "excess_hi",
    ),
    "T07_REPLICATION_SUMMARY": (
        *COND,
        *(
            f"{k}_{role}"
            for role in ("BASE", "INSTRUCT")
            for k in ("gstar", "gstar_status", "delta_b_tot", "chi")
        ),
    ),
}


# Result files use the phases' short names; tables use the design's.
RENAME = {"spike_def": "spike_def_id", "rho": "target_rate", "g": "gain", "g_label": "gain_label"}


def to_table_names(df: pd.DataFrame) -> pd.DataFrame:
    """A result frame with the design's column names (spike_def -> spike_def_id, rho -> target_rate...)."""
    return df.rename(columns=RENAME)


def build_table(table_id: str, rows: pd.DataFrame, ids: Mapping[str, Any]) -> pd.DataFrame:
    """Id columns, then the skeleton's columns in order, then every other column as `opt_<name>`."""
    skeleton = SKELETONS[table_id]
    missing_ids = [c for c in ID_COLUMNS if c not in ids]
    missing = [c for c in skeleton if c not in rows.columns]
    if missing_ids or missing:
        raise SchemaError(f"{table_id}: missing columns {missing_ids + missing}")
    extras = [c for c in rows.columns if c not in skeleton and c not in ID_COLUMNS]
    out = pd.DataFrame({c: [ids[c]] * len(rows) for c in ID_COLUMNS})
    body = rows.reset_index(drop=True)
    for c in skeleton:
        out[c] = body[c]
    for c in extras:
        out[c if c.startswith("opt_") else f"opt_{c}"] = body[c]
    return out


def table_bytes(df: pd.DataFrame, *, rehearsal: bool = False) -> dict[str, bytes]:
    """CSV (LF line ends) and Parquet bytes of a table; the same frame always gives the same bytes.

    A rehearsal's table is stamped: a REHEARSAL first line in the CSV (pandas reads past it with
    comment="#") and the note under the `rehearsal` key of the Parquet file's metadata.
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    if rehearsal:
        table = table.replace_schema_metadata(
            {**table.schema.metadata, b"rehearsal": NOTE.encode()}
        )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    csv = stamp_table(df.to_csv(index=False, lineterminator="\n"), "csv", rehearsal=rehearsal)
    return {"csv": csv.encode(), "parquet": buf.getvalue()}
