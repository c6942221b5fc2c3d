"""Every documented exit code of `python -m avalanche_llm`: 0, 2, 3 and 4, each for its real reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avalanche_llm import canon
from avalanche_llm.tests.local_cli import local_args, run
from labkit.zoo import weights_digest


@pytest.fixture(scope="module")
def models(zoo_test_model):
    return {"INSTRUCT": zoo_test_model("tiny-llama"), "BASE": zoo_test_model("tiny-gpt2")}


def test_entry_point_prints_help_and_rejects_unknown_phase():
    root = canon.ROOT
    ok = subprocess.run(
        [sys.executable, "-m", "avalanche_llm", "--help"], cwd=root, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "phase8_release" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "avalanche_llm", "phase9"], cwd=root, capture_output=True, text=True
    )
    assert bad.returncode == 2


def test_phase0_and_dry_run_exit_0_without_run_dirs(tmp_path: Path, models, capsys):
    out = ["--out_root", str(tmp_path)]
    assert run("phase0_validate_env", *local_args(models), *out) == 0
    assert "layer-0 exact True" in capsys.readouterr().out
    assert run("phase1_calibrate", *local_args(models), *out, "--dry_run") == 0
    assert "would create" in capsys.readouterr().out
    assert not list(tmp_path.glob("RUN_*"))


def test_pipeline_exit_codes(tmp_path: Path, models):
    args = [*local_args(models), "--out_root", str(tmp_path)]
    assert run("phase2_gain_grid", *args) == 3  # no S01 yet
    assert run("phase1_calibrate", *args) == 0
    (s01,) = tmp_path.glob("RUN_S01_*")
    assert json.loads((s01 / "run_record.json").read_text())["stage_status"] == "complete"
    assert run("phase1_calibrate", *args) == 4  # rerun
    assert run("phase1_calibrate", *args, "--allow_resume") == 4  # complete runs never resume
    # An unfinished run is reopened only with --allow_resume (spec/14), which then completes it.
    record_path = s01 / "run_record.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "stage_status": "failed", "error": "killed"}))
    assert run("phase1_calibrate", *args) == 4
    assert json.loads(record_path.read_text())["stage_status"] == "failed"  # nothing was changed
    assert run("phase1_calibrate", *args, "--allow_resume") == 0
    assert json.loads(record_path.read_text())["stage_status"] == "complete"
    # A second S01 with the same config (another id mode) makes the upstream ambiguous ...
    assert run("phase1_calibrate", *args, "--run_id_mode", "timestamp_counter") == 0
    assert run("phase2_gain_grid", *args) == 2
    # ... until --dep picks one.
    assert run("phase2_gain_grid", *args, "--dep", s01.name) == 0
    assert run("phase2_select_gstar", *args, "--dep", "RUN_S01_000000000000") == 3
    assert run("phase3_extract_rasters", *args, "--dep", s01.name) == 3  # no S02B yet
    assert run("phase2_select_gstar", *args) == 0
    assert run("phase3_extract_rasters", *args, "--dep", s01.name) == 0
    assert run("phase4_run_nulls", *args, "--dep", s01.name) == 0
    record = json.loads(next(tmp_path.glob("RUN_S04_*/run_record.json")).read_text())
    assert {d["stage_tag"] for d in record["dependencies"]} == {"S01", "S03"}


def test_bad_input_exits_2(tmp_path: Path, models):
    out = ["--out_root", str(tmp_path)]
    assert run("phase1_calibrate", *local_args(models, "pipeline.nope=1"), *out) == 2
    assert run("phase1_calibrate", *local_args(models, "pipeline.eps=CANON.CONST.NOPE"), *out) == 2
    assert run("phase1_calibrate", *local_args(models, "pipeline.spike_defs=[X]"), *out) == 2
    # A rate gate that cannot be met fails the phase with 2 and leaves a failed record.
    args = local_args(models, "pipeline.rate_match_tol_rel=1.0e-12")
    assert run("phase1_calibrate", *args, *out) == 0
    assert run("phase2_gain_grid", *args, *out) == 2
    (s02,) = tmp_path.glob("RUN_S02_*")
    record = json.loads((s02 / "run_record.json").read_text())
    assert record["stage_status"] == "failed" and "rate gate failed" in record["error"]
    # The same command refuses the failed run; --allow_resume redoes it in place (the gate fails again).
    assert run("phase2_gain_grid", *args, *out) == 4
    assert run("phase2_gain_grid", *args, *out, "--allow_resume") == 2
    assert [p.name for p in tmp_path.glob("RUN_S02_*")] == [s02.name]


def test_missing_inputs_exit_3(tmp_path: Path, models):
    out = ["--out_root", str(tmp_path)]
    assert run("phase1_calibrate", "--config", str(tmp_path / "nope.yaml"), *out) == 3
    if not torch.cuda.is_available():
        assert run("phase1_calibrate", *local_args(models), "--device", "cuda", *out) == 3


def test_slice_hash_mismatch_exits_2(tmp_path: Path, models):
    # An S01 drawn from a different pool gives a different slice: a determinism failure.
    out = ["--out_root", str(tmp_path)]
    other = local_args(models, "pipeline.window_pool_factor=3")
    assert run("phase1_calibrate", *other, *out) == 0
    (s01,) = tmp_path.glob("RUN_S01_*")
    assert run("phase2_gain_grid", *local_args(models), *out, "--dep", s01.name) == 2


def test_upstream_measured_on_other_weights_exits_2(tmp_path: Path, models):
    args = [*local_args(models), "--out_root", str(tmp_path)]
    assert run("phase1_calibrate", *args) == 0
    (s01,) = tmp_path.glob("RUN_S01_*")
    record_path = s01 / "run_record.json"
    record = json.loads(record_path.read_text())
    assert record["model"]["weights_sha256"] == weights_digest(record["model"]["path"])
    # What a zoo rebuild under the same name looks like from the upstream run's side.
    record["model"]["weights_sha256"] = "0" * 64
    record_path.write_text(json.dumps(record))
    assert run("phase2_gain_grid", *args) == 2
    assert not list(tmp_path.glob("RUN_S02_*"))
