"""The execution policy is enforced: trial counts, failures, retries, delays, adaptive stopping."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dream import evaluator
from dream.config import load_config
from dream.domains import DOMAINS, domain_status
from dream.evaluator import run_trials, seed_for, summarise_regime
from dream.host import HostInfo
from dream.runner import TrialOutcome
from labkit.errors import ConfigError


def _fails_at(bad, outcome, perf=lambda i: 100.0 + i % 3):
    def trial_fn(i):
        if i in bad:
            return TrialOutcome(i, False, 2, 0.01, reason="stress-ng exited with status 1: x")
        return outcome(i, perf=perf(i), p95_ms=1.0)

    return trial_fn


def test_failed_trials_are_excluded_and_counted_never_zero(ctx, outcome):
    # Reference bug: 2 failing trials of 10 were stored as 0.0 and dragged every statistic down.
    policy = load_config(profile="full").policy
    delays = []
    series = run_trials(_fails_at({3, 7}, outcome), policy, seed=seed_for(0), sleep=delays.append)
    assert len(series.outcomes) == 10 and len(series.ok) == 8
    assert delays == [2.0] * 9
    result = summarise_regime(ctx, "cpu", "normal", series, None, {})
    assert len(result.kpis["perf"]) == 8 and 0.0 not in result.kpis["perf"]
    assert min(result.ci95["perf"]) >= 100.0
    assert [f["trial"] for f in result.failed_trials] == [3, 7]
    assert result.failed_trials[0] == {
        "trial": 3,
        "attempts": 2,
        "reason": "stress-ng exited with status 1: x",
        "sensors": {},
    }
    assert (result.trials, result.trials_ok) == (10, 8)


def test_max_trial_failures_stops_the_regime(outcome):
    local = load_config().policy
    series = run_trials(_fails_at({0, 1, 2, 3, 4}, outcome), local, seed=seed_for(0))
    assert len(series.outcomes) == 2 and "max_trial_failures" in series.stop_reason
    looser = load_config(overrides=["regimes.profiles.local.execution.max_trial_failures=3"]).policy
    series = run_trials(_fails_at({0, 1, 2, 3, 4}, outcome), looser, seed=seed_for(0))
    assert len(series.outcomes) == 3 and "min_successful_trials" in series.stop_reason


def test_adaptive_stopping_and_delays_follow_the_policy(outcome):
    delays = []
    tight = lambda i: 100.0 + 0.01 * (i % 2)  # noqa: E731
    local = load_config().policy
    series = run_trials(
        _fails_at(set(), outcome, tight), local, seed=seed_for(0), sleep=delays.append
    )
    assert len(series.outcomes) == 3 and series.stop_reason.startswith("adaptive")
    assert delays == [0.2, 0.2]
    fixed = load_config(overrides=["regimes.profiles.local.execution.rel_halfwidth=null"]).policy
    assert len(run_trials(_fails_at(set(), outcome, tight), fixed, seed=seed_for(0)).outcomes) == 5
    noisy = lambda i: [50.0, 150.0, 90.0, 130.0, 70.0][i]  # noqa: E731
    assert len(run_trials(_fails_at(set(), outcome, noisy), local, seed=seed_for(0)).outcomes) == 5
    more = load_config(overrides=["regimes.profiles.local.execution.min_trials=4"]).policy
    assert len(run_trials(_fails_at(set(), outcome, tight), more, seed=seed_for(0)).outcomes) == 4


def test_measure_regime_hands_retries_and_timeout_to_the_runner(ctx, monkeypatch, outcome):
    seen = []

    def fake_run_trial(make_command, **kw):
        seen.append((kw["retries"], kw["timeout_s"]))
        return outcome(kw["trial"], perf=1.0, p95_ms=1.0)

    monkeypatch.setattr(evaluator, "run_trial", fake_run_trial)
    genome = ctx.spec("cpu").stock()
    policy = load_config(
        overrides=["regimes.profiles.local.execution.failure_retry_count=3"]
    ).policy
    evaluator.measure_regime(ctx, "cpu", "stress", genome, policy)
    assert seen[0] == (3, 1.5 * 2 + 5.0)


def test_statistics_leave_the_global_rngs_alone(ctx, outcome):
    # Reference bug: the bootstrap reseeded numpy's global RNG, which the GA then drew from.
    np.random.seed(123)
    random.seed(5)
    np_state, py_state = np.random.get_state(), random.getstate()
    series = run_trials(_fails_at({1}, outcome), load_config().policy, seed=seed_for(3))
    summarise_regime(ctx, "cpu", "idle", series, None, {})
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and (after[1] == np_state[1]).all() and after[2:] == np_state[2:]


def test_unavailable_domains_say_why_and_refuse_evaluation(ctx):
    host = HostInfo.detect()
    statuses = {d: domain_status(d, host) for d in DOMAINS}
    for d in ("gpu", "audio", "asr_tts", "power_thermal", "conversation"):
        assert not statuses[d].available and statuses[d].reason
        assert statuses[d].to_dict() == {
            "domain": d,
            "status": "unavailable",
            "reason": statuses[d].reason,
        }
    for d in ("cpu", "memory", "storage", "os_scheduler"):
        assert statuses[d].available
    with pytest.raises(
        ConfigError, match=r"^domain gpu is unavailable on this host: no NVIDIA GPU"
    ):
        evaluator.evaluate_candidate(ctx, "gpu", {}, generation=0, cand_id="gen0_00", baselines={})


def test_a_broken_regime_fails_before_any_trial_runs(ctx, monkeypatch):
    ran = []
    monkeypatch.setattr(evaluator, "measure_regime", lambda *a, **k: ran.append(a))
    ctx.cfg = load_config(overrides=["regimes.domains.storage.mixed.script=missing.py"])
    genome = ctx.spec("storage").stock()
    with pytest.raises(ConfigError, match=r"storage\.mixed: script .*missing\.py does not exist"):
        evaluator.evaluate_candidate(
            ctx, "storage", genome, generation=0, cand_id="g", baselines={}
        )
    ctx.cfg = load_config(overrides=["regimes.domains.cpu.idle.args='--cpu {workers}'"])
    with pytest.raises(ConfigError, match=r"\{workers\}, which this domain does not set"):
        evaluator.evaluate_candidate(
            ctx, "cpu", ctx.spec("cpu").stock(), generation=0, cand_id="g", baselines={}
        )
    assert ran == []


def test_a_series_can_continue_from_screen_trials(outcome):
    local = load_config().policy
    tight = _fails_at(set(), outcome, lambda i: 100.0 + 0.01 * (i % 2))
    screen = run_trials(tight, local.screening(), seed=seed_for(0))
    assert len(screen.outcomes) == 3 and screen.stop_reason == "ran all 3 trials"
    ran = []

    def counted(i):
        ran.append(i)
        return tight(i)

    full = run_trials(counted, local, seed=seed_for(0), prior=screen.outcomes)
    assert ran == [] and full.outcomes == screen.outcomes  # already tight: nothing more to run
    assert full.stop_reason.startswith("adaptive") and full.stop_reason.endswith("from the screen")
    noisy = _fails_at({1}, outcome, lambda i: [50.0, 150.0, 90.0, 130.0, 70.0][i])
    screen = run_trials(noisy, local.screening(), seed=seed_for(0))
    full = run_trials(counted, local, seed=seed_for(0), prior=screen.outcomes)
    assert len(screen.outcomes) == 2  # the failure made 3 successes unreachable in 3 trials
    assert ran == [2, 3, 4] and len(full.outcomes) == 5 and len(full.failed) == 1
