"""Approvals queue (eligibility, max pending, displacement, who/when/sha256), promotion and rollback."""

from __future__ import annotations

import json

import pytest

from dream.approvals import Approvals, ineligible
from dream.candidate_pack import write_pack
from dream.config import load_config
from dream.promotion import current_promotion, promote, rollback
from labkit.errors import ConfigError, MissingInputError, SchemaError


def _improved(evaluate, cand_id: str, gain: float) -> dict:
    perf, p95, _ = evaluate.stock
    return evaluate(perf=[x * gain for x in perf], p95=p95, watts=None, cand_id=cand_id)


@pytest.fixture
def queue(ctx) -> Approvals:
    return Approvals(ctx.artifacts, max_pending=3)


def test_only_full_safe_improving_packs_are_eligible(evaluate):
    assert ineligible(_improved(evaluate, "gen0_01", 1.05)) is None
    assert "screen" in ineligible(evaluate(stage="screen"))
    assert ineligible(evaluate()) == "improves_over_baseline is False"
    hot = evaluate(extra={("stress", 1): {"temp_peak_c": 95.0}})
    assert ineligible(hot) == "unsafe"


def test_three_pending_per_domain_and_only_a_better_pack_displaces_the_worst(evaluate, queue):
    for i, gain in enumerate((1.03, 1.04, 1.05)):
        assert queue.offer(_improved(evaluate, f"gen0_0{i}", gain))["queued"] is True
    worse = queue.offer(_improved(evaluate, "gen1_00", 1.02))
    assert worse["queued"] is False and "queue full (3 pending)" in worse["reason"]
    assert queue.offer(_improved(evaluate, "gen1_01", 1.06))["queued"] is True
    status = {e["cand_id"]: e["status"] for e in queue.entries("cpu")}
    assert status == {
        "gen0_00": "displaced",
        "gen0_01": "pending",
        "gen0_02": "pending",
        "gen1_01": "pending",
    }
    assert queue.entries("cpu", "displaced")[0]["displaced_by"] == "gen1_01"
    assert queue.offer(_improved(evaluate, "gen1_01", 1.06))["reason"] == "already queued"
    events = [json.loads(x) for x in queue.log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["offered"] * 5
    assert [e["queued"] for e in events] == [True, True, True, False, True]
    assert events[-1]["displaced"] == "gen0_00"


def test_packs_scored_against_other_baselines_never_displace(evaluate, queue, baseline_record):
    for i, gain in enumerate((1.03, 1.04, 1.05)):
        queue.offer(_improved(evaluate, f"gen0_0{i}", gain))
    perf, p95, _ = evaluate.stock
    samples = {"perf": perf, "p95_ms": p95, "watts": None}
    other = {r: {**baseline_record("cpu", r, samples), "baseline_id": f"cpu_{r}_new"} for r in
             ("idle", "normal", "stress", "mixed")}  # fmt: skip
    pack = evaluate(perf=[x * 1.2 for x in perf], p95=p95, watts=None, baselines=other,
                    cand_id="gen2_00")  # fmt: skip
    assert queue.offer(pack)["queued"] is False


def test_decisions_record_who_when_and_the_pack_sha256(ctx, evaluate, queue):
    queue.offer(_improved(evaluate, "gen0_01", 1.05))
    queue.offer(_improved(evaluate, "gen0_02", 1.04))
    entry = queue.decide("cpu", "gen0_01", "approve", who="ada", note="looks right")
    assert (entry["status"], entry["decided_by"], entry["note"]) == (
        "approved",
        "ada",
        "looks right",
    )
    assert entry["decided_utc"].endswith("Z") and len(entry["pack_sha256"]) == 64
    with pytest.raises(ConfigError, match="is approved, not pending"):
        queue.decide("cpu", "gen0_01", "reject", who="bob")
    path = ctx.out_root / "artifacts/candidates/cpu/gen0_02.json"
    path.write_text(path.read_text() + "\n")
    with pytest.raises(SchemaError, match="changed since it was queued"):
        queue.decide("cpu", "gen0_02", "approve", who="ada")
    with pytest.raises(MissingInputError):
        queue.decide("cpu", "gen9_09", "approve", who="ada")
    with pytest.raises(ConfigError, match="decision must be"):
        queue.decide("cpu", "gen0_02", "maybe", who="ada")


def test_promote_and_rollback_walk_back_through_promotions(ctx, evaluate, queue):
    for cid, gain in (("gen0_01", 1.05), ("gen0_02", 1.04), ("gen0_03", 1.03)):
        queue.offer(_improved(evaluate, cid, gain))
    queue.decide("cpu", "gen0_01", "approve", who="ada")
    queue.decide("cpu", "gen0_02", "approve", who="ada")
    cfg = ctx.cfg
    with pytest.raises(ConfigError, match="is pending; only approved"):
        promote(cfg, ctx.artifacts, "cpu", "gen0_03", who="ada")
    first = promote(cfg, ctx.artifacts, "cpu", "gen0_01", who="bob")
    assert first["actuation"] == "shadow" and first["changes"] == [] and first["previous"] is None
    assert first["approved_by"] == "ada" and first["promoted_by"] == "bob"
    second = promote(cfg, ctx.artifacts, "cpu", "gen0_02", who="bob")
    assert second["previous"]["cand_id"] == "gen0_01"
    status = {e["cand_id"]: e["status"] for e in queue.entries("cpu")}
    assert status == {"gen0_01": "superseded", "gen0_02": "promoted", "gen0_03": "pending"}
    assert rollback(cfg, ctx.artifacts, "cpu", who="bob")["now_in_effect"] == "gen0_01"
    assert current_promotion(ctx.artifacts, "cpu")["cand_id"] == "gen0_01"
    assert rollback(cfg, ctx.artifacts, "cpu", who="bob")["now_in_effect"] is None
    assert current_promotion(ctx.artifacts, "cpu") is None
    with pytest.raises(MissingInputError, match="nothing is promoted for cpu"):
        rollback(cfg, ctx.artifacts, "cpu", who="bob")
    history = (ctx.artifacts / "promoted/history.jsonl").read_text().splitlines()
    assert [json.loads(x)["event"] for x in history] == ["promoted"] * 2 + ["rolled_back"] * 2


def test_real_promotion_passes_every_gate_writes_settings_and_rolls_back(
    ctx, evaluate, queue, tmp_path
):
    root = tmp_path / "root"
    (root / "proc/sys/vm").mkdir(parents=True)
    (root / "proc/sys/vm/nr_hugepages").write_text("0\n")
    cfg = load_config(overrides=["caps.real_allowlist=[cpu.hugepages_mb]"])
    real = _improved(evaluate, "gen0_07", 1.05)
    real.update(actuation="real", genome={**real["genome"], "hugepages_mb": 512})
    write_pack(real, ctx.out_root / real["artifacts"]["pack"])
    shadow = _improved(evaluate, "gen0_08", 1.04)
    for pack in (real, shadow):
        queue.offer(pack)
        queue.decide("cpu", pack["cand_id"], "approve", who="ada")
    gates = {"root": root, "euid": 0, "host": ctx.host}
    with pytest.raises(ConfigError, match="add --yes-write-host"):
        promote(cfg, ctx.artifacts, "cpu", "gen0_07", who="ada", apply_real=True, **gates)
    with pytest.raises(ConfigError, match="evaluated in shadow mode"):
        promote(cfg, ctx.artifacts, "cpu", "gen0_08", who="ada", apply_real=True,
                yes_write_host=True, **gates)  # fmt: skip
    with pytest.raises(ConfigError, match="caps this host could not check: temp_peak_c"):
        promote(cfg, ctx.artifacts, "cpu", "gen0_07", who="ada", apply_real=True,
                yes_write_host=True, **gates)  # fmt: skip
    with pytest.raises(
        ConfigError, match="no cpu setting can be written here: real actuation needs root"
    ):
        promote(cfg, ctx.artifacts, "cpu", "gen0_07", who="ada", apply_real=True,
                yes_write_host=True, accept_unchecked_caps=True, **{**gates, "euid": 1000})  # fmt: skip
    assert (root / "proc/sys/vm/nr_hugepages").read_text() == "0\n"
    doc = promote(cfg, ctx.artifacts, "cpu", "gen0_07", who="ada", apply_real=True,
                  yes_write_host=True, accept_unchecked_caps=True, **gates)  # fmt: skip
    assert (root / "proc/sys/vm/nr_hugepages").read_text() == "256"
    assert doc["changes"] == [
        {"path": str(root / "proc/sys/vm/nr_hugepages"), "old": "0", "new": "256"}
    ]
    assert (ctx.out_root / doc["rollback_record"]).is_file()
    assert "temp_peak_c" in doc["accepted_unchecked_caps"]
    event = rollback(cfg, ctx.artifacts, "cpu", who="ada", root=root, euid=0)
    assert event["restored"] == doc["changes"]
    assert (root / "proc/sys/vm/nr_hugepages").read_text() == "0"
    assert not (ctx.out_root / doc["rollback_record"]).exists()
