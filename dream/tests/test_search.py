"""NSGA-II ask/tell on Optuna: decoding, constraints, FAIL for unscoreable packs, resume, determinism."""

from __future__ import annotations

import copy

import optuna
import pytest
from optuna.trial import TrialState

from dream.search import SearchEngine, constraints
from labkit.errors import ConfigError


def _engine(ctx, tmp_path, **kw) -> SearchEngine:
    args = {"population": 4, "seed": 7, "watts": False}
    return SearchEngine(tmp_path / "studies", ctx.spec("cpu"), **{**args, **kw})


def _states(engine) -> list[str]:
    return [t.state.name for t in engine.study.get_trials()]


def test_asked_genomes_decode_from_the_unit_cube_and_are_valid(ctx, tmp_path):
    engine = _engine(ctx, tmp_path)
    cands = engine.ask(0)
    assert [c.cand_id for c in cands] == ["gen0_00", "gen0_01", "gen0_02", "gen0_03"]
    spec = ctx.spec("cpu")
    for c in cands:
        assert set(c.u) == {g.name for g in spec.active}
        assert all(0.0 <= x <= 1.0 for x in c.u.values())
        assert spec.check(c.genome) == c.genome
        assert c.genome == spec.decode([c.u[g.name] for g in spec.active])
        assert {k: c.genome[k] for k in spec.frozen} == {k: spec.stock()[k] for k in spec.frozen}
    assert [d.name for d in engine.study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert len(_engine(ctx, tmp_path / "w", watts=True).study.directions) == 3


def test_told_values_are_normalised_kpis_with_cap_constraints(ctx, tmp_path, evaluate):
    engine = _engine(ctx, tmp_path, population=2)
    ok, hot = engine.ask(0)
    assert engine.tell(ok, evaluate(watts=None)) == "complete"
    unsafe = evaluate(watts=None, extra={("idle", 0): {"temp_peak_c": 99.0}})
    assert unsafe["safe"] is False and unsafe["aggregate"]["score_v2"] is None
    assert engine.tell(hot, unsafe) == "complete"  # infeasible, not discarded
    t_ok, t_hot = engine.study.get_trials()
    assert t_ok.values == pytest.approx([1.0, 1.0])
    assert all(v <= 0 for v in t_ok.constraints.values())
    assert t_hot.constraints["cap:temp_peak_c"] == pytest.approx((99.0 - 90.0) / 90.0)
    assert t_hot.constraints["trial_failures"] == -1.0
    assert t_ok.user_attrs["score_v2"] == pytest.approx(0.8)
    assert engine.tell(ok, evaluate()) == "already told"


def test_unscoreable_packs_are_failed_trials(ctx, tmp_path, evaluate):
    engine = _engine(ctx, tmp_path, population=2)
    a, b = engine.ask(0)
    unsafe_to_score = evaluate(watts=None, failed=(0, 1, 2))  # over max_trial_failures: unsafe
    assert engine.tell(a, unsafe_to_score) == "complete"  # told, with a violated constraint
    short = evaluate(watts=None, perf=[100.0, 101.0], p95=[2.0, 2.1])
    assert short["aggregate"]["score_status"] == "insufficient"
    assert engine.tell(b, short) == "fail"
    assert _states(engine) == ["COMPLETE", "FAIL"]


def test_constraints_count_failures_and_ignore_unmeasurable_caps(evaluate):
    pack = evaluate(watts=None, failed=(0,))
    c = constraints(pack)
    assert c["trial_failures"] == 0.0  # one failure per regime, limit 1: on the boundary, feasible
    assert c["cap:temp_peak_c"] == 0.0 and c["cap:errors"] == 0.0
    worse = copy.deepcopy(pack)
    worse["risk_profile"]["trial_failures"]["mixed"] = 3
    assert constraints(worse)["trial_failures"] == 2.0


def test_a_killed_generation_is_asked_again_with_the_same_genomes(ctx, tmp_path, evaluate):
    first = _engine(ctx, tmp_path).ask(0)  # this "process" dies with its 4 trials RUNNING
    engine = _engine(ctx, tmp_path)
    again = engine.ask(0)
    assert [c.genome for c in again] == [c.genome for c in first]
    assert [c.u for c in again] == [c.u for c in first]
    assert _states(engine) == ["FAIL"] * 4 + ["RUNNING"] * 4
    assert [t.user_attrs["resumed_from"] for t in engine.study.get_trials()[4:]] == [0, 1, 2, 3]
    for c in again[:2]:
        engine.tell(c, evaluate(watts=None))
    third = _engine(ctx, tmp_path).ask(0)  # dies again after two tells: only two are redone
    assert [c.trial is None for c in third] == [True, True, False, False]
    assert _states(engine)[8:] == ["RUNNING", "RUNNING"]
    assert len(optuna.load_study(study_name="cpu", storage=engine.storage).trials) == 10


def test_same_seed_same_asks_and_the_next_generation_breeds(ctx, tmp_path, evaluate):
    a, b = _engine(ctx, tmp_path / "a"), _engine(ctx, tmp_path / "b")
    ga, gb = a.ask(0), b.ask(0)
    assert [c.u for c in ga] == [c.u for c in gb]
    for c in ga:
        a.tell(c, evaluate(watts=None))
    nxt = a.ask(1)
    assert [c.cand_id for c in nxt] == ["gen1_00", "gen1_01", "gen1_02", "gen1_03"]
    assert all(t.state == TrialState.RUNNING for t in a.study.get_trials()[4:])
    assert _engine(ctx, tmp_path / "c", seed=8).ask(0)[0].u != ga[0].u


def test_a_study_made_for_other_genes_or_objectives_is_refused(ctx, tmp_path):
    _engine(ctx, tmp_path)
    with pytest.raises(ConfigError, match="was searched with"):
        _engine(ctx, tmp_path, population=6)
    with pytest.raises(ConfigError, match=r"cpu\.db"):
        _engine(ctx, tmp_path, watts=True)
    with pytest.raises(ConfigError, match="population must be >= 2"):
        _engine(ctx, tmp_path / "x", population=1)
