"""Phases 2-4 run one labkit executor task per gain: in this process, in local processes and on a
local Ray cluster they write the same bytes, and each run record says where every task ran."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import ray

from avalanche_llm.tests.local_cli import local_args, run

TASK_PHASES = (
    "phase2_gain_grid",
    "phase2_select_gstar",
    "phase3_extract_rasters",
    "phase4_run_nulls",
)
# Fewer windows than the test profile: each phase stays a few seconds, even with a worker's start-up.
FAST = ("pipeline.n_windows_a_calibration=8", "pipeline.n_windows_a_rasters=8")
STRICT = ("pipeline.rate_match_tol_abs=1e-300", "pipeline.rate_match_tol_rel=1e-300")
# The three gains of local_cli.SMALL, in grid order.
GAIN_TASKS = ["00_g0.8", "01_g1", "02_g1.2"]


def records(out: Path) -> dict[str, dict]:
    """run_record.json of every run under `out`, by stage tag."""
    recs = [json.loads(p.read_text(encoding="utf-8")) for p in out.glob("RUN_*/run_record.json")]
    return {r["stage_tag"]: r for r in recs}


def results(out: Path) -> dict[str, str]:
    """sha256 of every file under results/ of every run, by run id and relative path."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.glob("RUN_*/results/**/*"))
        if p.is_file()
    }


def run_ids(out: Path) -> set[str]:
    """The run ids under `out`."""
    return {p.name for p in out.glob("RUN_*")}


def file_names(out: Path) -> set[str]:
    """Every file and folder under every run directory, relative to `out`."""
    return {p.relative_to(out).as_posix() for p in out.glob("RUN_*/**/*")}


@pytest.fixture
def models(zoo_test_model) -> dict[str, Path]:
    """Test-size zoo models for both roles."""
    return {"INSTRUCT": zoo_test_model("tiny-llama"), "BASE": zoo_test_model("tiny-gpt2")}


def test_sequential_local_processes_and_ray_write_the_same_bytes(tmp_path, models):
    args = [*local_args(models, *FAST), "--model_role", "BASE"]
    seq, procs, on_ray = tmp_path / "seq", tmp_path / "procs", tmp_path / "ray"
    assert run("phase1_calibrate", *args, "--out_root", str(seq)) == 0
    (s01,) = seq.glob("RUN_S01_*")
    for out in (procs, on_ray):
        shutil.copytree(s01, out / s01.name)
    for phase in TASK_PHASES:
        assert run(phase, *args, "--out_root", str(seq)) == 0, phase
    # Local processes start afresh for every task (seconds each): phase 2's three tasks suffice.
    assert run("phase2_gain_grid", *args, "--out_root", str(procs), "--workers", "2") == 0
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        for phase in TASK_PHASES:
            assert run(phase, *args, "--out_root", str(on_ray), "--executor", "ray") == 0, phase
    finally:
        ray.shutdown()
    assert results(on_ray) == results(seq)
    assert {k[:7] for k in results(seq)} >= {"RUN_S02", "RUN_S03", "RUN_S04"}
    in_procs = results(procs)
    assert in_procs == {k: v for k, v in results(seq).items() if k.split("/")[0] in run_ids(procs)}
    assert {k[:8] for k in in_procs} == {"RUN_S01_", "RUN_S02_"}
    # The same run directories with the same files: no task leaves anything behind.
    assert file_names(on_ray) == file_names(seq)
    assert not list(seq.glob("RUN_*/tasks")) and not list(procs.glob("RUN_*/tasks"))
    for out, executor in ((seq, "LocalExecutor"), (on_ray, "RayExecutor")):
        recs = records(out)
        assert "tasks" not in recs["S01"] and "tasks" not in recs["S02B"]
        for tag in ("S02", "S03", "S04"):
            tasks = recs[tag]["tasks"]
            assert tasks["executor"]["class"] == executor
            assert all(t["status"] == "complete" and t["node"]["hostname"] for t in tasks["runs"])
        assert [t["name"] for t in recs["S02"]["tasks"]["runs"]] == GAIN_TASKS
        assert [t["name"] for t in recs["S04"]["tasks"]["runs"]] == GAIN_TASKS
    in_processes = records(procs)["S02"]["tasks"]
    assert in_processes["executor"] == {"class": "LocalExecutor", "workers": 2}
    assert [t["name"] for t in in_processes["runs"]] == GAIN_TASKS
    # On Ray each task names the node and worker process that ran it.
    ray_tasks = [t for r in records(on_ray).values() for t in r.get("tasks", {}).get("runs", [])]
    assert all(t["node"]["node_id"] and t["node"]["pid"] for t in ray_tasks)


def test_a_gate_failing_in_a_worker_fails_the_phase_with_its_exit_code(tmp_path, models):
    # No fitted rate is exactly on its target, so phase 2's rate gate fails at every gain (phase 1
    # does not gate); the control is the same phase with the profile's tolerances, above.
    args = [*local_args(models, *FAST, *STRICT)]
    args += ["--model_role", "BASE", "--out_root", str(tmp_path)]
    assert run("phase1_calibrate", *args) == 0
    assert run("phase2_gain_grid", *args, "--workers", "2") == 2  # GateError, as in one process
    s02 = records(tmp_path)["S02"]
    assert s02["stage_status"] == "failed" and s02["error"].startswith(
        "GateError: rate gate failed"
    )
    tasks = s02["tasks"]["runs"]
    assert tasks[0]["status"] == "failed" and tasks[0]["error"].startswith("GateError")


def test_ray_address_without_the_ray_executor_is_refused_before_work(tmp_path, models):
    args = [*local_args(models, *FAST), "--out_root", str(tmp_path / "out")]
    assert run("phase1_calibrate", *args, "--ray_address", "auto") == 2
    assert not (tmp_path / "out").exists()


def test_a_crashing_task_fails_the_phase_with_exit_1_and_its_traceback(
    tmp_path, models, monkeypatch
):
    from avalanche_llm.phases import phase2_gain_grid

    def crash(lm, x):
        raise RuntimeError(f"boom at g={x['g']}")

    args = [*local_args(models, *FAST), "--model_role", "BASE", "--out_root", str(tmp_path)]
    assert run("phase1_calibrate", *args) == 0
    monkeypatch.setattr(phase2_gain_grid, "gain_rows", crash)  # tasks run in this process
    assert run("phase2_gain_grid", *args) == 1
    s02 = records(tmp_path)["S02"]
    assert s02["stage_status"] == "failed" and "boom at g=0.8" in s02["error"]
    first, *rest = s02["tasks"]["runs"]
    assert first["status"] == "failed" and first["error"] == "RuntimeError: boom at g=0.8"
    assert [t["status"] for t in rest] == [
        "not_started",
        "not_started",
    ]  # no launch after a failure
    (run_dir,) = tmp_path.glob("RUN_S02_*")
    events = (run_dir / "logs" / "events.jsonl").read_text(encoding="utf-8")
    assert "task_failed" in events and "Traceback" in events and "boom at g=0.8" in events
