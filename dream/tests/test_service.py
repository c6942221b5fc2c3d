"""The service loop on synthetic trials: generations, telemetry, resume, pause, drift, unavailable domains."""

from __future__ import annotations

import json
import math

import pytest

from dream.approvals import Approvals, ineligible
from dream.baseline import BaselineStore, ensure_baselines
from dream.candidate_pack import load_pack
from dream.config import load_config
from dream.manifest import Manifest
from dream.search import SearchEngine
from dream.service import ServiceOptions, check_drift, finalists, run_service
from dream.telemetry import fitness, read_telemetry
from labkit.errors import ConfigError, Paused


def _run(ctx, domains=("cpu",), generations=2, population=4):
    manifest = Manifest(ctx, "service", {"generations": generations})
    with manifest.running():
        result = run_service(ctx, ServiceOptions(domains, generations, population), manifest)
    return result, json.loads(manifest.path.read_text())


def test_each_generation_screens_all_runs_top_k_full_and_tells_the_study(ctx, synthetic):
    result, manifest = _run(ctx)
    assert manifest["status"] == "complete" and manifest["progress"]["generations_done"] == {
        "cpu": [0, 1]
    }
    lines = read_telemetry(ctx.artifacts, "cpu")
    assert [r["generation"] for r in lines] == [0, 1] and lines == result["domains"]["cpu"]
    packs = {p.stem: load_pack(p) for p in (ctx.artifacts / "candidates/cpu").glob("*.json")}
    assert sorted(packs) == [f"gen{g}_{i:02d}" for g in (0, 1) for i in range(4)]
    for line in lines:
        g = line["generation"]
        full = [p for p in packs.values() if p["generation"] == g and p["stage"] == "full"]
        assert len(full) == 1  # local profile: top_k 1
        assert line["candidate_packs"] == [full[0]["artifacts"]["pack"]]
        assert (ctx.out_root / line["candidate_packs"][0]).is_file()
        assert line["best_fitness"] == full[0]["aggregate"]["score_v2"]
        assert line["valid"] + line["unsafe"] + line["failed"] == 4
        assert line["trials_per_regime"] == {r: [3] for r in ("idle", "normal", "stress", "mixed")}
        queued = set(line["approvals"]["queued"])
        assert queued == {p["cand_id"] for p in full if ineligible(p) is None}
    engine = SearchEngine(
        ctx.artifacts / "studies", ctx.spec("cpu"), population=4, seed=ctx.seed, watts=False
    )
    trials = engine.study.get_trials()
    assert len(trials) == 8 and all(t.state.is_finished() for t in trials)
    # The search study holds every candidate's screen; the full study only the finalists' fresh trials.
    assert {t.user_attrs["stage"] for t in trials} == {"screen"}
    full_trials = engine.full_study.get_trials()
    assert sorted(t.user_attrs["cand_id"] for t in full_trials) == sorted(
        k for k, p in packs.items() if p["stage"] == "full"
    )
    assert all(t.params == trials[i].params for t in full_trials for i in range(len(trials))
               if trials[i].user_attrs["cand_id"] == t.user_attrs["cand_id"])  # fmt: skip
    beat = json.loads((ctx.artifacts / "logs/service_heartbeat.json").read_text())
    assert beat["status"] == "complete" and beat["step"] == beat["total"] == 2
    # A full pack takes its candidate's path, but the screen pack that selected it is kept.
    kept = {p.stem: load_pack(p) for p in (ctx.artifacts / "candidates/cpu/screen").glob("*.json")}
    assert sorted(kept) == sorted(k for k, p in packs.items() if p["stage"] == "full")
    assert all(
        p["stage"] == "screen" and p["genome"] == packs[k]["genome"] for k, p in kept.items()
    )


def test_a_rerun_continues_where_the_last_one_stopped(ctx, synthetic):
    _run(ctx, generations=1)
    n = len(synthetic.calls)
    assert n == 4 + 4 + 4  # baselines, screens, one full over four regimes
    # The finalist's full evaluation runs fresh trials on all four regimes, `normal` included.
    full = synthetic.calls[8:]
    assert [r for _, r, _ in full] == ["idle", "normal", "stress", "mixed"]
    assert full[1][2] in [g for _, r, g in synthetic.calls[4:8]]
    _run(ctx, generations=2)
    assert len(synthetic.calls) == n + 8  # only generation 1; baselines and generation 0 reused
    assert [r["generation"] for r in read_telemetry(ctx.artifacts, "cpu")] == [0, 1]
    runs = sorted(p.name for p in (ctx.artifacts / "manifests").glob("*.json"))
    assert len(runs) == 1  # the test reuses one run_id; the CLI numbers each run


def test_a_pause_request_stops_at_a_safe_point_and_a_rerun_completes(ctx, synthetic):
    (ctx.artifacts / "control").mkdir(parents=True)
    (ctx.artifacts / "control/pause.request").write_text("maintenance\n")
    with pytest.raises(Paused, match="after baselines"):
        _run(ctx, generations=1)
    ack = json.loads((ctx.artifacts / "control/pause_ack_service.json").read_text())
    assert ack["reason"] == "maintenance" and ack["checkpoint"] == "studies/cpu.db"
    manifest = json.loads(next((ctx.artifacts / "manifests").glob("*.json")).read_text())
    assert manifest["status"] == "paused"
    assert not (ctx.artifacts / "candidates").exists()
    _, manifest = _run(ctx, generations=1)
    assert manifest["status"] == "complete"


def test_unavailable_domains_get_one_telemetry_line_and_naming_one_fails(ctx, synthetic):
    result, _ = _run(ctx, domains=None, generations=1, population=2)
    assert set(result["domains"]) == {"cpu", "memory", "storage", "os_scheduler"}
    gone = {u["domain"] for u in result["unavailable"]}
    assert gone == {"gpu", "audio", "asr_tts", "power_thermal", "conversation"}
    _run(ctx, domains=None, generations=1, population=2)
    for d in gone:
        (line,) = read_telemetry(ctx.artifacts, d)
        assert line["status"] == "unavailable" and line["reason"] and line["domain"] == d
        assert not (ctx.artifacts / "candidates" / d).exists()
    with pytest.raises(ConfigError, match="domain gpu is unavailable"):
        _run(ctx, domains=("cpu", "gpu"), generations=1)


def test_drift_is_checked_on_schedule_and_pauses_approvals(ctx, synthetic):
    store = BaselineStore(ctx.artifacts / "baselines.json")
    base = ensure_baselines(ctx, store, "cpu")["normal"]
    assert check_drift(ctx, "cpu", 0, base) is None  # every 5 generations: not due after gen 0
    ctx.cfg = load_config(overrides=["regimes.profiles.local.drift.every_generations=1"])
    assert check_drift(ctx, "cpu", 0, base)["drift"] is False
    synthetic.scale = 0.97
    assert check_drift(ctx, "cpu", 0, base)["drift"] is False  # significant but under 5 %
    synthetic.scale = 0.8
    verdict = check_drift(ctx, "cpu", 0, base)
    assert verdict["drift"] is True and verdict["change_pct"] == pytest.approx(-20.0)
    _run(ctx, generations=1)
    line = read_telemetry(ctx.artifacts, "cpu")[0]
    assert line["drift"]["drift"] is True and line["approvals"]["paused"] is True
    queue = Approvals(ctx.artifacts, max_pending=3)
    assert queue.paused("cpu")["reason"] == "baseline_drift"
    assert all("paused" in r or "improves" in r for r in line["approvals"]["not_queued"].values())


def test_finalists_keep_already_full_packs_then_rank_screen_scores():
    def pack(stage, score):
        return {"stage": stage, "aggregate": {"score_v2": score}}

    packs = {"a": pack("screen", 0.7), "b": pack("screen", None), "c": pack("screen", 0.9)}
    assert finalists(packs, 2) == ["c", "a"]
    assert finalists({**packs, "d": pack("full", 0.1)}, 2) == ["d", "c"]
    assert finalists({**packs, "d": pack("full", 0.1)}, 1) == ["d"]


def test_best_fitness_is_the_max_finite_score_even_when_the_last_pack_is_unsafe():
    # Reference bug: a missing `else` left best_fitness unset when the last candidate scored -inf.
    def pack(score):
        status = "ok" if score is not None else "unsafe"
        return {"aggregate": {"score_v2": score, "score_status": status}}

    got = fitness([pack(0.71), pack(0.74), pack(None)])
    assert got == {"best_fitness": 0.74, "avg_fitness": pytest.approx(0.725), "min_fitness": 0.71}
    assert fitness([pack(None)]) == {"best_fitness": None, "avg_fitness": None, "min_fitness": None}
    assert all(math.isfinite(v) for v in fitness([pack(0.7)]).values())
