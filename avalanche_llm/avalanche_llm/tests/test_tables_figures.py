"""Tables keep their skeleton and id columns; tables and figures are byte-stable and carry provenance."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from avalanche_llm.plotting import figures
from avalanche_llm.plotting.tables import (
    ID_COLUMNS,
    SKELETONS,
    build_table,
    table_bytes,
    to_table_names,
)
from labkit.errors import SchemaError
from labkit.stamp import NOTE

IDS = dict.fromkeys(ID_COLUMNS, "x") | {"run_id": "RUN_S05_0123456789ab"}


def t01_rows() -> pd.DataFrame:
    """A T01-shaped frame: 2 spike definitions x 2 rates x 3 gains, numbers from a seeded rng."""
    rng = np.random.default_rng(0)
    rows = []
    for sd in ("SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"):
        for rho in (1e-3, 2e-3):
            for g in (0.9, 1.0, 1.1):
                row = {c: float(rng.random()) for c in SKELETONS["T01_SUMMARY"]}
                row |= {"spike_def": sd, "rho": rho, "g": g, "crackling_pass": False}
                row |= {"m_mr": 0.9}
                rows.append(row)
    frame = pd.DataFrame(rows).drop(columns=["spike_def_id", "target_rate", "gain"])
    return to_table_names(frame)


def test_table_has_ids_then_skeleton_then_opt_extras():
    df = build_table("T01_SUMMARY", t01_rows(), IDS)
    skeleton = list(SKELETONS["T01_SUMMARY"])
    assert list(df.columns) == [*ID_COLUMNS, *skeleton, "opt_m_mr"]
    assert len(df) == 12 and (df["run_id"] == IDS["run_id"]).all()


def test_missing_skeleton_or_id_column_fails():
    with pytest.raises(SchemaError, match="b_tot_lo"):
        build_table("T01_SUMMARY", t01_rows().drop(columns=["b_tot_lo"]), IDS)
    with pytest.raises(SchemaError, match="code_version"):
        build_table(
            "T01_SUMMARY", t01_rows(), {k: v for k, v in IDS.items() if k != "code_version"}
        )


def test_table_bytes_are_stable_and_round_trip():
    df = build_table("T01_SUMMARY", t01_rows(), IDS)
    a, b = table_bytes(df), table_bytes(df.copy())
    assert a == b
    back = pd.read_parquet(io.BytesIO(a["parquet"]))
    pd.testing.assert_frame_equal(back, df)
    assert a["csv"].decode().splitlines()[0].startswith("run_id,stage_id,model_id")


def test_figure_bytes_are_stable_and_embed_provenance():
    t01 = build_table("T01_SUMMARY", t01_rows(), IDS)
    prov = {"figure_id": "F03_BRANCHING_CURVES", "sources": [{"sha256": "ab" * 32}]}
    first = figures.figure_bytes(figures.f03_branching_curves(t01), "F03", prov)
    again = figures.figure_bytes(figures.f03_branching_curves(t01), "F03", prov)
    assert first == again
    assert first["pdf"].startswith(b"%PDF") and b"CreationDate" not in first["pdf"]
    png = Image.open(io.BytesIO(first["png"]))
    assert json.loads(png.text["Provenance"]) == prov


def test_rehearsal_tables_and_figures_are_stamped_and_others_are_not(tmp_path):
    df = build_table("T01_SUMMARY", t01_rows(), IDS)
    plain, stamped = table_bytes(df), table_bytes(df, rehearsal=True)
    assert stamped["csv"].decode().splitlines()[0] == f"# {NOTE}"
    assert "REHEARSAL" not in plain["csv"].decode()
    pd.testing.assert_frame_equal(
        pd.read_csv(io.BytesIO(stamped["csv"]), comment="#"), pd.read_csv(io.BytesIO(plain["csv"]))
    )
    meta = pq.read_metadata(io.BytesIO(stamped["parquet"])).metadata
    assert meta[b"rehearsal"] == NOTE.encode()
    assert b"rehearsal" not in pq.read_metadata(io.BytesIO(plain["parquet"])).metadata
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(stamped["parquet"])), df)
    prov = {"figure_id": "F03_BRANCHING_CURVES", "sources": []}
    fig = figures.figure_bytes(figures.f03_branching_curves(df), "F03", prov, rehearsal=True)
    assert Image.open(io.BytesIO(fig["png"])).text["Comment"] == NOTE
    assert NOTE.encode() in fig["pdf"]
    real = figures.figure_bytes(figures.f03_branching_curves(df), "F03", prov)
    assert "Comment" not in Image.open(io.BytesIO(real["png"])).text
    assert b"REHEARSAL" not in real["pdf"]


def test_branching_curves_one_line_per_rate_in_every_panel():
    fig = figures.f03_branching_curves(build_table("T01_SUMMARY", t01_rows(), IDS))
    assert len(fig.axes) == 6  # b_time, b_depth, b_tot x two spike definitions
    for ax in fig.axes:
        curves = [line for line in ax.get_lines() if len(line.get_xdata()) == 3]
        assert len(curves) == 2  # one per target rate, over the three gains
