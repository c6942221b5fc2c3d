"""A real local evaluation: stock baselines and one cpu candidate over the four regimes (~2 s trials)."""

from __future__ import annotations

import json
import math
from collections import namedtuple

import pytest

from dream.baseline import BaselineStore, ensure_baselines
from dream.candidate_pack import load_pack
from dream.config import REGIMES, load_config
from dream.evaluator import EvalContext, evaluate_candidate
from dream.sensors import Sensors

Temp = namedtuple("Temp", "label current high critical")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local_run")
    ctx = EvalContext(load_config(profile="local"), out, run_id="2025-01-01T00-00-00_r001", seed=3)
    store = BaselineStore(ctx.artifacts / "baselines.json")
    baselines = ensure_baselines(ctx, store, "cpu")
    genome = ctx.spec("cpu").decode([0.0, 0.0, 0.99])  # 1 CPU, 1 worker, hugepage madvise
    pack = evaluate_candidate(
        ctx, "cpu", genome, generation=0, cand_id="gen0_01", stage="full", baselines=baselines
    )
    return ctx, baselines, pack.to_dict()


def test_baselines_cover_all_four_regimes(run):
    ctx, _, _ = run
    doc = json.loads((ctx.artifacts / "baselines.json").read_text())
    assert doc["schema"] == "baselines.v2" and sorted(doc["cpu"]) == sorted(REGIMES)
    for record in doc["cpu"].values():
        assert record["trials_ok"] >= 3 and record["kpis"]["perf"] > 0
        assert record["genome"] == ctx.spec("cpu").stock()


def test_the_pack_is_valid_with_cis_deltas_and_a_finite_score(run):
    ctx, baselines, pack = run
    assert load_pack(ctx.out_root / "artifacts/candidates/cpu/gen0_01.json") == pack
    assert pack["schema"] == "candidate_pack.v2" and pack["actuation"] == "shadow"
    assert [r["regime"] for r in pack["regimes"]] == list(REGIMES)
    for regime in pack["regimes"]:
        assert 3 <= regime["trials_ok"] <= 5 and regime["failed_trials"] == []
        for kpi in ("perf", "p95_ms"):
            lo, hi = regime["ci95"][kpi]
            assert lo <= sum(regime["kpis"][kpi]) / regime["trials_ok"] <= hi
        assert regime["ci95"]["watts"] is None and regime["unavailable"]["watts"]
        assert len(regime["delta"]["perf"]) == regime["trials_ok"]
        assert regime["baseline"]["baseline_id"] == baselines[regime["regime"]]["baseline_id"]
        assert all(t < 15 for t in regime["trial_seconds"])
    assert pack["safe"] is True and math.isfinite(pack["aggregate"]["score_v2"])
    assert pack["aggregate"]["score_terms"] == ["perf", "p95_ms"]
    assert set(pack["frozen_genes"]) == {
        "governor_idx",
        "smt_enabled",
        "epp_value",
        "turbo_enabled",
    }


def test_a_fake_temperature_over_the_cap_flips_a_real_evaluation_to_unsafe(run):
    ctx, baselines, _ = run
    hot = {"coretemp": [Temp("Package id 0", 95.0, 100.0, 100.0)]}
    ctx.sensors = Sensors(temperatures=lambda: hot, sampling_ms=100)
    genome = ctx.spec("cpu").stock()
    pack = evaluate_candidate(
        ctx, "cpu", genome, generation=0, cand_id="gen0_02", stage="screen", baselines=baselines
    ).to_dict()
    assert pack["safe"] is False and pack["aggregate"]["score_v2"] is None
    assert pack["regimes"][0]["peaks"]["temp_peak_c"] == 95.0
    assert pack["risk_profile"]["violations"][0]["cap"] == "temp_peak_c"
