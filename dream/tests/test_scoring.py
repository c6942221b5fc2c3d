"""Scoring, caps and the improvement rule, driven through evaluate_candidate with synthetic trials."""

from __future__ import annotations

import json

import pytest

from dream.config import load_config
from dream.significance import improves_over_baseline, log_ratio


def test_stock_scores_0_7_and_0_8_without_watts(evaluate):
    pack = evaluate()
    assert pack["aggregate"]["score_v2"] == pytest.approx(0.7)
    assert pack["aggregate"]["score_terms"] == ["perf", "p95_ms", "watts"]
    assert pack["aggregate"]["improves_over_baseline"] is False  # no significant perf gain
    pack = evaluate(watts=None)
    assert pack["aggregate"]["score_v2"] == pytest.approx(0.8)
    assert pack["aggregate"]["score_terms"] == ["perf", "p95_ms"]
    regime = pack["regimes"][0]
    assert regime["ci95"]["watts"] is None and "not measurable" in regime["unavailable"]["watts"]


def test_score_is_invariant_to_the_units_of_each_kpi(evaluate):
    # Reference bug: the score added ops/s, ms and W as raw numbers, so a unit change re-ranked packs.
    perf, p95, watts = evaluate.stock
    cand = ([x * 1.03 for x in perf], [x * 0.9 for x in p95], [x * 1.01 for x in watts])
    ref = evaluate(perf=cand[0], p95=cand[1], watts=cand[2])
    unit = (1e-3, 1e3, 1e3)  # ops/ms, us, mW
    scale = [[x * u for x in xs] for xs, u in zip(evaluate.stock, unit, strict=True)]
    rescaled = evaluate(
        perf=[x * unit[0] for x in cand[0]],
        p95=[x * unit[1] for x in cand[1]],
        watts=[x * unit[2] for x in cand[2]],
        stock=scale,
    )
    assert rescaled["aggregate"]["score_v2"] == pytest.approx(ref["aggregate"]["score_v2"])
    assert ref["aggregate"]["score_v2"] == pytest.approx(1.03 - 0.2 * 0.9 - 0.1 * 1.01)


def test_a_fake_reading_over_a_cap_makes_the_pack_unsafe_with_a_null_score(ctx, evaluate):
    pack = evaluate(extra={("stress", 2): {"temp_peak_c": 95.0}})
    assert pack["safe"] is False
    assert pack["aggregate"]["score_v2"] is None and pack["aggregate"]["score_status"] == "unsafe"
    violation = {"cap": "temp_peak_c", "limit": 90.0, "worst": 95.0, "count": 1}
    assert pack["risk_profile"]["violations"] == [violation]
    unchecked = {c["cap"] for c in pack["risk_profile"]["caps_unchecked"]}
    assert unchecked == {"package_power_w", "thermal_throttle_events"}
    written = (ctx.out_root / pack["artifacts"]["pack"]).read_text()
    assert json.loads(written)["aggregate"]["score_v2"] is None and "Infinity" not in written


def test_tolerance_keys_change_the_verdict(ctx, evaluate):
    perf, p95, watts = evaluate.stock
    wobble = [1.02, 0.98, 1.01, 0.99, 1.0]  # the candidate's p95 and watts vary around stock's
    cand = {
        "perf": [x * 1.01 for x in perf],
        "p95": [x * w for x, w in zip(p95, wobble, strict=True)],
        "watts": [x * (1 + (w - 1) / 2) for x, w in zip(watts, wobble, strict=True)],
    }
    assert evaluate(**cand)["aggregate"]["improves_over_baseline"] is True
    for override in (
        "caps.tolerance.perf_improvement_pct=2.0",
        "caps.tolerance.latency_regression_pct=1.0",
        "caps.tolerance.power_regression_pct=0.5",
        "caps.tolerance.perf_alpha=0.00001",
    ):
        ctx.cfg = load_config(overrides=[override])
        assert evaluate(**cand)["aggregate"]["improves_over_baseline"] is False, override


def test_global_and_execution_keys_change_the_verdict(ctx, evaluate):
    perf, p95, watts = evaluate.stock
    ctx.cfg = load_config(
        overrides=[
            "regimes.profiles.local.execution.trials=5",
            "regimes.profiles.local.execution.min_successful_trials=5",
        ]
    )
    pack = evaluate(perf=perf[:4], p95=p95[:4], watts=watts[:4])
    assert pack["aggregate"]["score_status"] == "insufficient"
    assert pack["aggregate"]["score_v2"] is None
    full = ["caps.global.min_successful_trials=5"]
    ctx.cfg = load_config(profile="full", overrides=full)
    pack = evaluate(failed=[0, 1])
    assert pack["safe"] is True and pack["aggregate"]["score_status"] == "ok"
    ctx.cfg = load_config(profile="full", overrides=[*full, "caps.global.max_trial_failures=1"])
    pack = evaluate(failed=[0, 1])
    assert pack["safe"] is False and pack["aggregate"]["score_v2"] is None
    assert pack["risk_profile"]["unsafe_reasons"][0] == (
        "idle: 2 failed trials > max_trial_failures 1"
    )
    assert pack["regimes"][0]["failed_trials"][0]["reason"] == "fio exited with status 1"
    assert len(pack["regimes"][0]["kpis"]["perf"]) == 5  # failures excluded, not zeros


def test_an_unmeasured_reading_is_neither_a_failure_nor_a_violation(evaluate):
    pack = evaluate(extra={("idle", 0): {"temp_peak_c": None}})
    assert pack["safe"] is True and pack["aggregate"]["score_status"] == "ok"


def test_a_genome_that_moves_no_gene_of_any_regime_cannot_improve(evaluate):
    # Reference bug: the first candidate seen became the baseline and "no delta" read as improved.
    pack = evaluate(perf=[x * 2 for x in evaluate.stock[0]], genome={})
    assert [r["affected"] for r in pack["regimes"]] == [False] * 4
    assert all(r["gain"] is True for r in pack["regimes"])  # the numbers alone would say "better"
    assert pack["aggregate"]["improves_over_baseline"] is False


def test_fewer_than_three_trials_give_no_verdict(ctx, evaluate):
    _, p95, watts = evaluate.stock
    ctx.cfg = load_config(overrides=["regimes.profiles.local.execution.min_successful_trials=2"])
    pack = evaluate(perf=[150.0, 151.0], p95=p95[:2], watts=watts[:2])
    assert all(r["improves"] is None for r in pack["regimes"])
    assert pack["aggregate"]["improves_over_baseline"] is None


def test_deltas_are_per_block_and_screen_runs_normal_only(evaluate):
    perf = evaluate.stock[0]
    pack = evaluate(stage="screen")
    assert [r["regime"] for r in pack["regimes"]] == ["normal"] and pack["stage"] == "screen"
    regime = pack["regimes"][0]
    assert len(regime["delta"]["perf"]) == regime["blocks_valid"] == 5
    assert regime["delta"]["perf"][0] == pytest.approx(perf[0] - perf[0] * evaluate.noise[0])
    assert [b["order"] for b in regime["blocks"]] == ["AB", "BA", "AB", "BA", "AB"]
    lo, hi = regime["ci95"]["perf"]
    assert lo < sum(perf) / 5 < hi


def test_improves_needs_a_gain_where_affected_and_no_loss_anywhere():
    # (affected, gain, non-inferior) per regime
    assert improves_over_baseline([(True, True, True), (False, False, True)]) is True
    assert improves_over_baseline([(True, True, True), (False, True, False)]) is False
    assert improves_over_baseline([(False, True, True), (False, True, True)]) is False
    assert improves_over_baseline([(True, False, True), (True, None, True)]) is None
    assert improves_over_baseline([(True, True, True), (False, None, None)]) is None
    assert improves_over_baseline([]) is None


def test_log_ratio_terms_are_floored_and_clipped():
    assert log_ratio(0.06, 0.0001, floor=1.0, max_abs=2.0) == 0.0  # both under the floor
    assert log_ratio(50.0, 2.0, floor=1.0, max_abs=2.0) == 2.0  # x25 clipped to e^2
    assert log_ratio(2.0, 1.0, floor=1.0, max_abs=2.0) == pytest.approx(0.6931, abs=1e-4)
