"""Actuators on a fake sysfs tree: gates, rollback record written before any write, restore, recovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dream.actuators import Actuation, ActuationError
from dream.domains import genome_spec
from dream.host import HostInfo

HOST = HostInfo(cpus=(0, 1))
ALLOW = ("storage.scheduler_idx", "storage.readahead_kb", "storage.dirty_ratio")


def _real(tmp_path, root, **kw) -> Actuation:
    args = {"root": root, "allowlist": ALLOW, "confirmed": True, "euid": 0, "blockdev": "vda"}
    return Actuation("real", rollback_path=tmp_path / "rollback.json", **{**args, **kw})


def _candidate(act: Actuation) -> tuple:
    spec = genome_spec("storage", HOST, act)
    genome = {**spec.stock(), "scheduler_idx": 3, "readahead_kb": 4096, "dirty_ratio": 40}
    return spec, spec.check(genome)


def test_shadow_mode_writes_nothing(tmp_path, sysfs):
    act = Actuation(rollback_path=tmp_path / "rollback.json", root=sysfs, blockdev="vda")
    spec = genome_spec("storage", HOST, act)
    assert act.apply(spec, spec.stock()) == []
    assert not (tmp_path / "rollback.json").exists()
    assert (sysfs / "proc/sys/vm/dirty_ratio").read_text() == "20\n"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"confirmed": False}, "--yes-write-host"),
        ({"euid": 1000}, "needs root"),
        ({"allowlist": ()}, "real_allowlist"),
        ({"blockdev": None}, "not present"),
    ],
)
def test_every_gate_must_be_open(tmp_path, sysfs, override, reason):
    act = _real(tmp_path, sysfs, **override)
    spec = genome_spec("storage", HOST, act)
    assert reason in spec.frozen["scheduler_idx"]
    with pytest.raises(Exception, match="frozen"):
        spec.check({**spec.stock(), "scheduler_idx": 3})


def test_apply_records_old_values_then_restore_puts_them_back(tmp_path, sysfs):
    act = _real(tmp_path, sysfs)
    spec, genome = _candidate(act)
    assert "dirty_background_ratio" in spec.frozen  # not allowlisted
    changes = act.apply(spec, genome)
    record = json.loads((tmp_path / "rollback.json").read_text())
    assert {(Path(c["path"]).name, c["old"], c["new"]) for c in record["changes"]} == {
        ("scheduler", "mq-deadline", "bfq"),
        ("read_ahead_kb", "128", "4096"),
        ("dirty_ratio", "20", "40"),
    }
    assert len(changes) == 3
    assert (sysfs / "sys/block/vda/queue/read_ahead_kb").read_text() == "4096"
    assert (sysfs / "proc/sys/vm/dirty_background_ratio").read_text() == "10\n"
    act.restore()
    assert (sysfs / "sys/block/vda/queue/scheduler").read_text() == "mq-deadline"
    assert (sysfs / "sys/block/vda/queue/read_ahead_kb").read_text() == "128"
    assert (sysfs / "proc/sys/vm/dirty_ratio").read_text() == "20"
    assert not (tmp_path / "rollback.json").exists()


def test_a_failed_write_rolls_back_what_was_written(tmp_path, sysfs, refuse_write):
    act = _real(tmp_path, sysfs)
    spec, genome = _candidate(act)
    refuse_write("dirty_ratio", "40")
    with pytest.raises(ActuationError, match="cannot write '40'"):
        act.apply(spec, genome)
    assert (sysfs / "sys/block/vda/queue/scheduler").read_text() == "mq-deadline"
    assert (sysfs / "sys/block/vda/queue/read_ahead_kb").read_text() == "128"
    assert not (tmp_path / "rollback.json").exists()


def test_a_crashed_run_is_recovered_at_start_up(tmp_path, sysfs):
    act = _real(tmp_path, sysfs)
    spec, genome = _candidate(act)
    act.apply(spec, genome)  # the process "dies" here: no restore
    fresh = _real(tmp_path, sysfs)
    restored = fresh.recover()
    assert len(restored) == 3
    assert (sysfs / "proc/sys/vm/dirty_ratio").read_text() == "20"
    assert fresh.recover() == []


def test_a_corrupt_rollback_record_is_an_error_not_ignored(tmp_path, sysfs):
    (tmp_path / "rollback.json").write_text("{not json")
    with pytest.raises(ActuationError, match="unreadable"):
        _real(tmp_path, sysfs).recover()
