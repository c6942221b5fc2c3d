"""The benchmarks' measuring functions on small synthetic inputs (the numbers come from running them)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from dream.config import load_config
from dream.host import DREAM_ROOT


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, DREAM_ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_labkit_bca_covers_small_samples_better_than_the_percentile_bootstrap():
    bench = _load("bench_coverage")
    cov = bench.coverage("normal", 5, reps=300, n_resamples=500)
    assert cov["bca"] > cov["percentile"] + 0.05
    # n=3: every bootstrap interval lies within [min, max] of the data, which holds the mean
    # of 3 normal draws only 75% of the time; no resampling method can do better.
    cov = bench.coverage("normal", 3, reps=300, n_resamples=500)
    assert max(cov.values()) <= 0.80


def test_adaptive_replay_uses_the_evaluators_stopping_rule():
    bench = _load("bench_adaptive")
    policy = load_config(profile="local", overrides=bench.RULE).policy
    tight = [100.0, 100.5, 99.8, 100.2, 100.1, 99.9, 100.0, 100.3, 99.7, 100.2]
    got = bench.compare(tight, policy)
    assert (got["adaptive"], got["capped"], got["fixed"]) == (3, 3, 10)
    assert got["hw_adaptive"] < policy.rel_halfwidth and got["hw_fixed"] < got["hw_adaptive"]
    noisy = [60.0, 140.0, 80.0, 120.0, 100.0, 70.0, 130.0, 90.0, 110.0, 100.0]
    got = bench.compare(noisy, policy)
    assert (got["adaptive"], got["capped"]) == (10, 5)
    with_failure = [100.0, None, 100.2, 99.9, 100.1, 100.0, 100.0, 100.0, 100.0, 100.0]
    assert bench.compare(with_failure, policy)["adaptive"] == 4


def test_the_judge_approves_a_planted_gain_and_not_the_null_control():
    bench = _load("bench_power")
    # Same design and noise (full profile, 10 ABBA blocks, 1 % per-trial CV), model trials judged
    # by pack_candidate: a 10 % gain planted on `normal` is found, the null genome is not approved.
    planted = bench.approval_rate("full", effect=0.10, cv=0.01, reps=40)
    assert planted["rate"] >= 0.8 and planted["blocks"] == 10
    null = bench.approval_rate("full", effect=0.0, cv=0.01, reps=60)
    assert null["rate"] <= 0.05
    assert null["high"] < planted["low"]  # the two arms' Clopper-Pearson intervals do not overlap


def test_the_real_arm_approves_a_large_planted_effect_and_not_the_null(tmp_path):
    bench = _load("bench_power")
    # Real fio trials through `python -m dream evaluate`, one replicate per arm, kept small: the
    # screen stage (`normal` only) with 5 ABBA blocks of 1-s trials, and a large effect (block size
    # 4 -> 16 KiB), since one 1-s trial under other engineers' jobs can swing by half. A p95 above
    # 1 ms there is a preemption, not the block size, so here p95 values under 5 ms count as 5 ms
    # and the test judges the planted perf effect (the README's run keeps the 1 ms floor). With one
    # regime, the null is approved whenever its gain test errs, so alpha is 0.01 instead of 0.05.
    overrides = [
        "caps.tolerance.perf_alpha=0.01",
        "regimes.profiles.local.execution.min_trials=5",
        "regimes.profiles.local.execution.trials=5",
        "regimes.kpis.log_ratio.floors.p95_ms=5",
    ]
    r = bench.real_power(
        1, out_root=tmp_path, stage="screen", overrides=overrides, step=2, echo=False
    )
    assert r["planted"]["rate"] == 1.0, r
    assert r["null"]["rate"] == 0.0, r
    assert (
        r["planted"]["normal_perf_ratio_median"] > 1.5
    )  # 16 KiB reads move several times the MB/s
    packs = sorted(p.name for p in tmp_path.glob("*/artifacts/candidates/storage/*.json"))
    assert packs == ["r000.json", "r000.json"]
