"""Smoke end-to-end on real workloads: `python -m dream service` (cpu, 1 generation, population 2) is
SIGKILLed after its first pack and rerun; then the seed's seven Phase-2 checks, the report, a safety flip."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import optuna
import pytest

from dream.baseline import BaselineStore, ensure_baselines
from dream.candidate_pack import load_pack
from dream.config import REGIMES, load_config
from dream.evaluator import EvalContext, evaluate_candidate
from dream.host import DREAM_ROOT
from dream.sensors import Sensors
from dream.telemetry import read_telemetry

Temp = namedtuple("Temp", "label current high critical")
Run = namedtuple("Run", "out artifacts first_pack killed_trials stdout")


def _service(out: Path) -> list[str]:
    return [sys.executable, "-m", "dream", "service", "--profile", "local", "--domains", "cpu",
            "--generations", "1", "--population", "2", "--out_root", str(out)]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("smoke") / "run"
    artifacts = out / "artifacts"
    first = artifacts / "candidates/cpu/gen0_00.json"
    proc = subprocess.Popen(_service(out), cwd=DREAM_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.exists(), f"no first pack before the kill: {proc.poll()} {proc.stderr.read()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    study = optuna.load_study(study_name="cpu", storage=f"sqlite:///{artifacts}/studies/cpu.db")
    killed = [t.state.name for t in study.get_trials()]
    first_pack = first.read_bytes()
    done = subprocess.run(
        _service(out), cwd=DREAM_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return Run(out, artifacts, first_pack, killed, done.stdout)


def _packs(run: Run) -> dict[str, dict]:
    return {p.stem: load_pack(p) for p in (run.artifacts / "candidates/cpu").glob("*.json")}


def test_the_killed_service_resumes_without_duplicate_or_corrupt_packs(run):
    assert run.killed_trials == ["RUNNING", "RUNNING"]
    manifests = [json.loads(p.read_text()) for p in sorted(run.artifacts.glob("manifests/*.json"))]
    assert [m["status"] for m in manifests] == ["interrupted", "complete"]
    assert [m["run_id"][-4:] for m in manifests] == ["r001", "r002"]
    assert manifests[1]["resumes"] == [manifests[0]["run_id"]]
    files = sorted(p.name for p in (run.artifacts / "candidates/cpu").iterdir())
    # no duplicates, no leftover temp files; screen/ keeps the finalist's screen pack
    assert files == ["gen0_00.json", "gen0_01.json", "screen"]
    (kept,) = (run.artifacts / "candidates/cpu/screen").iterdir()  # local profile: top_k 1
    assert json.loads(kept.read_text())["stage"] == "screen"
    assert json.loads((kept.parent.parent / kept.name).read_text())["stage"] == "full"
    packs = _packs(run)
    if packs["gen0_00"]["stage"] == "screen":  # reused as written before the kill, not redone
        assert (run.artifacts / "candidates/cpu/gen0_00.json").read_bytes() == run.first_pack
    study = optuna.load_study(study_name="cpu", storage=f"sqlite:///{run.artifacts}/studies/cpu.db")
    trials = study.get_trials()
    assert all(t.state.is_finished() for t in trials)
    live = [t for t in trials if "resumed_from" in t.user_attrs]
    assert sorted(t.user_attrs["cand_id"] for t in live) == ["gen0_00", "gen0_01"]
    for t in live:
        old = trials[t.user_attrs["resumed_from"]]
        assert old.state.name == "FAIL" and old.params == t.params
        assert t.user_attrs["stage"] == "screen"  # the search study learns from screens only
    assert len(read_telemetry(run.artifacts, "cpu")) == 1
    assert not any((run.out / "scratch").iterdir())


def test_the_seven_phase2_acceptance_checks(run):
    packs = _packs(run)
    # (1) schema
    assert {p["schema"] for p in packs.values()} == {"candidate_pack.v3"}
    # (2) baselines for all four regimes
    baselines = json.loads((run.artifacts / "baselines.json").read_text())
    assert sorted(baselines["cpu"]) == sorted(REGIMES)
    line = read_telemetry(run.artifacts, "cpu")[-1]
    (full_path,) = line["candidate_packs"]
    full = load_pack(run.out / full_path)
    assert full["stage"] == "full" and [r["regime"] for r in full["regimes"]] == list(REGIMES)
    # (3) CIs: [lo, hi] for perf and p95_ms, null for watts on a host without RAPL
    for kpi in ("perf", "p95_ms"):
        lo, hi = full["regimes"][0]["ci95"][kpi]
        assert lo <= hi
    assert full["regimes"][0]["ci95"]["watts"] is None
    assert full["regimes"][0]["unavailable"]["watts"].startswith("no RAPL")
    # (4) one paired delta per valid ABBA block; the run order in the pack interleaves A and B
    for pack in packs.values():
        for r in pack["regimes"]:
            assert len(r["delta"]["perf"]) == r["blocks_valid"] >= 2
    for r in full["regimes"]:
        assert [b["order"] for b in r["blocks"]] == ["AB", "BA", "AB"]
        roles = [e["role"][0] for e in r["sequence"] if not e["warmup"]]
        assert "".join(roles) == "cssccs"  # candidate, stock, stock, candidate, ...
    # (5) a finite aggregate score when safe (null only with the reason in score_status)
    for pack in packs.values():
        score, status = pack["aggregate"]["score_v2"], pack["aggregate"]["score_status"]
        finite = score is not None and math.isfinite(score)
        assert pack["safe"] is False or finite or status == "insufficient"
    assert full["safe"] is True and math.isfinite(full["aggregate"]["score_v2"])
    # (6) the last telemetry line links to pack files that exist
    assert line["best_fitness"] == full["aggregate"]["score_v2"]
    assert all((run.out / p).is_file() for p in line["candidate_packs"] + line["screened_packs"])
    assert line["baseline_ids"] == {r: baselines["cpu"][r]["baseline_id"] for r in REGIMES}


def test_a_fake_temperature_over_the_cap_flips_a_real_evaluation_to_unsafe(run, tmp_path):
    # (7) the safety flip, on real trials against the run's own (still current) baselines
    hot = {"coretemp": [Temp("Package id 0", 95.0, 100.0, 100.0)]}
    ctx = EvalContext(load_config(profile="local"), tmp_path, run_id="flip", seed=3,
                      sensors=Sensors(temperatures=lambda: hot, sampling_ms=100))  # fmt: skip
    store = BaselineStore(ctx.artifacts / "baselines.json")
    store.data = json.loads((run.artifacts / "baselines.json").read_text())
    baselines = ensure_baselines(ctx, store, "cpu")
    assert baselines == store.data["cpu"]  # reused, not remeasured
    genome = ctx.spec("cpu").stock()
    pack = evaluate_candidate(
        ctx, "cpu", genome, generation=0, cand_id="hot_00", stage="screen", baselines=baselines
    ).to_dict()
    assert pack["safe"] is False and pack["aggregate"]["score_v2"] is None
    assert pack["aggregate"]["score_status"] == "unsafe"
    assert pack["regimes"][0]["peaks"]["temp_peak_c"] == 95.0
    assert pack["risk_profile"]["violations"][0] == {
        "cap": "temp_peak_c",
        "limit": 90.0,
        "worst": 95.0,
        "count": pack["regimes"][0]["trials_ok"],
    }
    assert "Infinity" not in (ctx.artifacts / "candidates/cpu/hot_00.json").read_text()


def test_the_report_renders_the_generation_from_saved_artifacts(run):
    res = subprocess.run([sys.executable, "-m", "dream", "report", "--out_root", str(run.out)],
                         cwd=DREAM_ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    table = (run.artifacts / "reports/gen0.txt").read_text()
    assert "gen0_00" in table and "gen0_01" in table and "full evaluations vs stock" in table
    png = (run.artifacts / "reports/gen0_cpu.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "reports/gen0_cpu.png" in res.stdout
