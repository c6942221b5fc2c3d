"""Phases 1-8 on test-size zoo models: outputs complete, exports rebuilt from saved artifacts only."""

from __future__ import annotations

import re
import shutil
from fnmatch import fnmatchcase
from pathlib import Path

import pandas as pd
import pytest

from avalanche_llm import canon
from avalanche_llm.config import ResolvedConfig
from avalanche_llm.io.artifacts import RunArtifacts, StageRun
from avalanche_llm.io.release import verify_run, verify_zip
from avalanche_llm.plotting.phase5_exports import export
from avalanche_llm.runs import PhaseContext
from avalanche_llm.tests.local_cli import local_args, run
from labkit.config import parse_yaml
from labkit.errors import ConfigError

PHASES = (
    "phase1_calibrate",
    "phase2_gain_grid",
    "phase2_select_gstar",
    "phase3_extract_rasters",
    "phase4_run_nulls",
    "phase5_analyze_and_export",
    "phase6_generalize_b_metrics",
    "phase6_arc_mcq_eval",
    "phase7_paper_export",
    "phase8_release",
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, zoo_test_model) -> tuple[Path, list[str]]:
    """One INSTRUCT run of every phase into a fresh out root; returns it and the CLI arguments."""
    models = {"INSTRUCT": zoo_test_model("tiny-llama"), "BASE": zoo_test_model("tiny-gpt2")}
    out = tmp_path_factory.mktemp("runs")
    args = [*local_args(models, "datasets.ARC_MCQ.max_items=40"), "--out_root", str(out)]
    for phase in PHASES:
        assert run(phase, *args) == 0, phase
    return out, args


def only(out: Path, tag: str) -> RunArtifacts:
    """The single run of stage `tag` under `out`."""
    (path,) = [p for p in out.glob(f"RUN_{tag}_*") if p.name.split("_")[1] == tag]
    return RunArtifacts(path)


def test_every_table_and_figure_is_there_and_complete(pipeline):
    out, _ = pipeline
    s05, s06b, s06arc, s07 = (only(out, t) for t in ("S05", "S06B", "S06ARC", "S07"))
    t01 = s05.read_parquet(f"{canon.output('TABLE.T01_SUMMARY')}.parquet")
    assert len(t01) == 2 * 2 * 3  # spike definitions x rates x gains
    assert not t01[["b_tot", "delta_b_tot_perm", "chi"]].isna().any().any()
    assert len(s06b.read_parquet(f"{canon.output('TABLE.T02_GENERALIZATION')}.parquet")) == 8
    s05_side = s05.read_parquet(canon.output("CONTROLS_COMPARE_PARQUET"))
    at_gstar = s05_side[s05_side["g_label"] == "gstar"]
    # every signature: the real value, every control's value and the excess CI
    for _, sig in at_gstar.groupby(["cond_id", "signature"]):
        assert set(sig["source"]) == {"real", "perm", "shift", "shuffle", "iid"}
        assert {"value", "excess_lo", "excess_hi"} <= set(sig.columns)
    assert set(at_gstar["signature"]) >= {"b_tot", "chi", "m_mr", "tail_S", "tail_D", "crackling"}
    t02 = s06b.read_parquet(f"{canon.output('TABLE.T02_GENERALIZATION')}.parquet")
    assert (t02["opt_delta_ppl_lo"] <= t02["opt_delta_ppl"]).all()
    assert (t02["opt_delta_ppl"] <= t02["opt_delta_ppl_hi"]).all()
    t03 = s06arc.read_parquet(f"{canon.output('TABLE.T03_ARC')}.parquet")
    assert len(t03) == 8 and (t03["n_items"] == 40).all()
    assert t03["opt_mcnemar_p_vs_g1"].between(0, 1).all()
    assert (t03["opt_accuracy_diff_vs_g1_lo"] <= t03["opt_accuracy_diff_vs_g1_hi"]).all()
    t07 = s07.read_parquet(f"{canon.output('TABLE.T07_REPLICATION_SUMMARY')}.parquet")
    assert len(t07) == 4 and t07["gstar_BASE"].isna().all()  # BASE was not run here
    pngs = {p.stem for r in (s05, s06b, s06arc) for p in r.path.glob("figs/**/*.png")}
    assert pngs == {Path(f).name for f in canon.registry()["OUTPUT"]["FIGURE"].values()}
    claims = (s07.path / canon.output("PAPER_CLAIMS_MD").format(ROLE="INSTRUCT")).read_text()
    assert f"`{s05.run_id}/tables/table_T01_SUMMARY.parquet`" in claims


def canon_output_patterns() -> list[str]:
    """Glob patterns of every file CANON.OUTPUT names (figure/table stems with their extensions)."""
    reg = canon.registry()["OUTPUT"]
    pats = [v for k, v in reg.items() if isinstance(v, str)]
    pats += [f"{v}.{ext}" for v in reg["FIGURE"].values() for ext in ("pdf", "png")]
    pats += [f"{v}.{ext}" for v in reg["TABLE"].values() for ext in ("csv", "parquet")]
    return [re.sub(r"\{[A-Z]+\}", "*", p) for p in pats]


def test_every_file_a_phase_writes_is_named_in_canon(pipeline):
    out, _ = pipeline
    patterns = canon_output_patterns()
    files = {
        f.relative_to(r).as_posix() for r in out.glob("RUN_*") for f in r.rglob("*") if f.is_file()
    }
    unnamed = sorted(f for f in files if not any(fnmatchcase(f, p) for p in patterns))
    assert len(files) > 50 and not unnamed


def test_rerun_of_a_finished_phase_exits_4(pipeline):
    _, args = pipeline
    assert run("phase5_analyze_and_export", *args) == 4
    assert run("phase8_release", *args) == 4


def test_phase5_exports_rebuild_byte_identically_from_saved_artifacts(pipeline, tmp_path):
    out, _ = pipeline
    s05 = only(out, "S05")
    copy = tmp_path / s05.run_id
    shutil.copytree(s05.path, copy)
    exported = [p.relative_to(copy) for d in ("tables", "figs") for p in (copy / d).rglob("*.*")]
    for rel in exported:
        (copy / rel).unlink()
    record = dict(s05.record)
    keep = {rel.as_posix() for rel in exported}
    record["artifact_index"] = [
        e for e in record["artifact_index"] if e["relative_path"] not in keep
    ]
    text = (copy / "config_resolved.yaml").read_text()
    config = ResolvedConfig(parse_yaml(text), text, record["hashes"]["config_sha256"], copy)
    deps = {d["stage_tag"]: RunArtifacts(out / d["relative_path"]) for d in record["dependencies"]}
    ctx = PhaseContext(
        "phase5_analyze_and_export",
        "S05",
        config,
        s05.run_id,
        out,
        deps,
        None,
        run=StageRun(copy, record),
    )
    export(ctx)  # no model: only results/ of this run and its upstream artifacts are read
    assert len(exported) == 5 * 2 + 10 * 2  # T01, T04-T06, opt_T08 (csv, parquet); 10 figures
    for rel in exported:
        assert (copy / rel).read_bytes() == (s05.path / rel).read_bytes(), rel


def test_release_pack_verifies_and_tampering_is_caught(pipeline, tmp_path):
    out, _ = pipeline
    s08 = only(out, "S08")
    n = verify_zip(s08.path / canon.output("PACK_ZIP"), canon.output("MANIFEST"))
    assert n == len((s08.path / canon.output("MANIFEST")).read_text().splitlines())
    copy = tmp_path / "S05"
    shutil.copytree(only(out, "S05").path, copy)
    metrics = copy / canon.output("METRICS_PARQUET")
    frame = pd.read_parquet(metrics)
    frame.loc[0, "b_tot"] += 1.0
    frame.to_parquet(metrics)
    with pytest.raises(ConfigError, match="sha256 mismatch"):
        verify_run(RunArtifacts(copy))


def test_arc_split_flag_finds_its_upstream_runs(pipeline, tmp_path):
    # --arc_split changes this run's config hash, not the hash S02B and S05 were made with.
    out, args = pipeline
    copy = tmp_path / "runs"
    shutil.copytree(out, copy)
    args = [a if a != str(out) else str(copy) for a in args]
    assert run("phase6_arc_mcq_eval", *args, "--arc_split", "validation") == 0
    runs = [RunArtifacts(p) for p in copy.glob("RUN_S06ARC_*")]
    (new,) = [r for r in runs if r.record["dataset"]["ARC_MCQ"]["split"] == "validation"]
    assert new.record["determinism"]["nondeterministic_ops"] == []  # recorded, none on CPU
