"""Safety holes closed: rollback replay, failed-trial sensors, drift pause, host identity, host stock."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dream import evaluator
from dream.actuators import Actuation, RollbackRefused
from dream.cli import cli
from dream.config import load_config
from dream.domains import genome_spec
from dream.evaluator import EvalContext, measure_regime
from dream.host import HostInfo, host_identity
from dream.promotion import promote
from dream.runner import TrialOutcome
from dream.scoring import check_caps
from dream.sensors import Sensors
from dream.workloads import FIO_BUFFERED, build_command
from labkit.errors import ConfigError

HOST = HostInfo(cpus=(0, 1))
ALLOW = ("storage.readahead_kb", "storage.dirty_ratio")


@pytest.fixture
def sysfs(sysfs: Path) -> Path:
    """The shared fake root, with a host whose values differ from the code's defaults."""
    (sysfs / "sys/block/vda/queue/read_ahead_kb").write_text("384\n")
    (sysfs / "proc/sys/vm/dirty_ratio").write_text("35\n")
    return sysfs


def _real(tmp_path, root, **kw) -> Actuation:
    args = {"root": root, "allowlist": ALLOW, "confirmed": True, "euid": 0, "blockdev": "vda"}
    return Actuation("real", rollback_path=tmp_path / "rb/actuation.json", **{**args, **kw})


def _record(path: Path, target: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {"schema": "dream_rollback.v1", "changes": [{"path": str(target), "old": "x", "new": "y"}]}
    )
    path.write_text(text)
    return text


def test_a_record_naming_a_path_off_the_allowlist_writes_nothing_and_is_kept(tmp_path, sysfs):
    target = sysfs / "sys/block/vda/queue/scheduler"  # real file, but no allowlisted gene's
    act = _real(tmp_path, sysfs)
    text = _record(act.rollback_path, target)
    with pytest.raises(
        RollbackRefused, match=r"scheduler is not a caps\.yaml real_allowlist"
    ) as exc:
        act.recover()
    assert exc.value.exit_code == 2 and str(act.rollback_path) in str(exc.value)
    assert target.read_text() == "none [mq-deadline] kyber bfq\n"
    assert act.rollback_path.read_text() == text


def test_an_allowlisted_record_is_replayed_in_real_mode(tmp_path, sysfs):
    target = sysfs / "proc/sys/vm/dirty_ratio"
    act = _real(tmp_path, sysfs)
    _record(act.rollback_path, target)
    assert len(act.recover()) == 1
    assert target.read_text() == "x" and not act.rollback_path.exists()


def test_a_record_found_in_shadow_mode_exits_2_writes_nothing_and_is_kept(tmp_path, capsys):
    out = tmp_path / "run"
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    record = out / "artifacts/rollback/actuation.json"
    text = _record(record, victim)
    with pytest.raises(SystemExit) as exc:
        cli(["evaluate", "--domain", "cpu", "--out_root", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert str(record) in err and "nothing written" in err
    assert victim.read_text() == "untouched" and record.read_text() == text
    assert not (out / "artifacts/candidates").exists()


def test_real_mode_takes_the_hosts_current_values_as_stock_before_writing(tmp_path, sysfs):
    act = _real(tmp_path, sysfs)
    spec = genome_spec("storage", HOST, act)
    stock = spec.stock()
    assert (stock["readahead_kb"], stock["dirty_ratio"]) == (384, 35)  # code defaults: 128, 20
    recorded = json.loads(act.stock_path.read_text())["storage"]
    assert recorded["values"] == {"readahead_kb": 384.0, "dirty_ratio": 35.0}
    assert not act.rollback_path.exists()  # recorded before any write
    (sysfs / "proc/sys/vm/dirty_ratio").write_text("33\n")  # off the 5..40/5 grid
    spec = genome_spec("storage", HOST, _real(tmp_path / "other", sysfs))
    assert "host value unusable as stock" in spec.frozen["dirty_ratio"]


def test_a_refused_write_fails_that_trial_and_the_run_goes_on(tmp_path, sysfs, cfg, refuse_write):
    act = _real(tmp_path, sysfs)
    ctx = EvalContext(
        cfg, tmp_path / "run", run_id="r", actuation=act, host=HOST, sleep=lambda s: None,
        sensors=Sensors(tmp_path / "nosys", temperatures=dict),
    )  # fmt: skip
    genome = {**ctx.spec("storage").stock(), "dirty_ratio": 40}
    refuse_write("dirty_ratio", "40")
    policy = cfg.policy.screening()
    series = measure_regime(ctx, "storage", "normal", genome, policy)
    assert series.outcomes and not series.ok  # the trial failed; measure_regime did not raise
    assert all(o.reason.startswith("write refused: cannot write '40'") for o in series.outcomes)
    assert (sysfs / "proc/sys/vm/dirty_ratio").read_text().strip() == "35"
    assert not act.rollback_path.exists()


def test_sensor_readings_of_failed_trials_count_against_the_caps():
    hot = TrialOutcome(0, False, 2, 1.0, metrics={"temp_peak_c": 97.0}, reason="exit 1")
    fine = TrialOutcome(1, True, 1, 1.0, metrics={"perf": 1.0, "temp_peak_c": 60.0})
    verdict = check_caps({"temp_peak_c": 90.0}, {"normal": [hot, fine]}, max_trial_failures=3)
    assert not verdict.safe and verdict.violations[0]["worst"] == 97.0
    assert hot.failure_record()["sensors"] == {"temp_peak_c": 97.0}


def test_a_failed_attempt_keeps_its_sensor_reading(tmp_path):
    from dream.runner import run_trial
    from dream.workloads import WorkloadCommand

    hot = {"coretemp": [SimpleNamespace(current=99.0)]}
    sensors = Sensors(tmp_path / "nosys", temperatures=lambda: hot, sampling_ms=20)
    out = run_trial(
        lambda wd: WorkloadCommand("script", ("false",), 1.0),
        trial=0, timeout_s=5, retries=1, sensors=sensors, probe=(1.0, 10.0),
        required=("perf",), scratch_root=tmp_path / "s",
    )  # fmt: skip
    assert not out.ok and out.metrics["temp_peak_c"] == 99.0


def test_the_host_wide_load_cap_is_gone(tmp_path, cfg):
    assert cfg.domain_caps("os_scheduler", HOST) == {"temp_peak_c": 90.0}
    with pytest.raises(ConfigError, match="unknown cap 'load_average_1m'"):
        load_config(overrides=["caps.domains.os_scheduler={temp_peak_c: 90, load_average_1m: 4}"])


def test_drift_pause_blocks_approval_and_promotion_of_pending_packs(ctx, evaluate):
    from dream.approvals import Approvals

    queue = Approvals(ctx.artifacts, max_pending=3)
    perf, p95, _ = evaluate.stock
    for cid in ("gen0_01", "gen0_02"):
        queue.offer(evaluate(perf=[x * 1.05 for x in perf], p95=p95, watts=None, cand_id=cid))
    queue.decide("cpu", "gen0_01", "approve", who="ada")
    queue.pause("cpu", {"reason": "baseline_drift"})
    with pytest.raises(ConfigError, match="paused by baseline drift"):
        queue.decide("cpu", "gen0_02", "approve", who="ada")
    with pytest.raises(ConfigError, match="paused by baseline drift"):
        promote(ctx.cfg, ctx.artifacts, "cpu", "gen0_01", who="ada")
    queue.decide("cpu", "gen0_02", "reject", who="ada")  # rejecting stays possible
    queue.resume("cpu")
    assert promote(ctx.cfg, ctx.artifacts, "cpu", "gen0_01", who="ada")["cand_id"] == "gen0_01"


def test_packs_carry_the_host_and_promote_refuses_another(ctx, evaluate):
    from dream.approvals import Approvals

    queue = Approvals(ctx.artifacts, max_pending=3)
    perf, p95, _ = evaluate.stock
    pack = evaluate(perf=[x * 1.05 for x in perf], p95=p95, watts=None, cand_id="gen0_01")
    assert pack["host"] == host_identity()
    queue.offer(pack)
    queue.decide("cpu", "gen0_01", "approve", who="ada")
    other = {**host_identity(), "kernel": "0.0.1-other"}
    with pytest.raises(ConfigError, match="kernel"):
        promote(ctx.cfg, ctx.artifacts, "cpu", "gen0_01", who="ada", identity=other)


def test_fio_without_o_direct_is_noted_in_every_pack_it_affects(ctx, cfg, monkeypatch, outcome):
    from dream import workloads

    monkeypatch.setattr(workloads, "supports_o_direct", lambda d: False)
    stock = ctx.spec("storage").stock()
    cmd = build_command(cfg, "storage", "normal", stock, HOST, scratch=ctx.scratch_root, seed=0)
    assert "--direct=0" in cmd.argv and cmd.notes == (FIO_BUFFERED,)

    def fake(ctx_, domain, regime, genome, policy, prior=()):
        runs = [outcome(i, perf=1.0 + i, p95_ms=1.0) for i in range(3)]
        for o in runs:
            o.notes = [FIO_BUFFERED] if regime == "normal" else []
        return evaluator.TrialSeries(runs, "synthetic")

    monkeypatch.setattr(evaluator, "measure_regime", fake)
    pack = evaluator.evaluate_candidate(
        ctx, "storage", stock, generation=0, cand_id="c", baselines={}
    ).to_dict()
    assert pack["measurement_notes"] == [FIO_BUFFERED]
    notes = {r["regime"]: r["notes"] for r in pack["regimes"]}
    assert notes["normal"] == [FIO_BUFFERED] and notes["idle"] == []
