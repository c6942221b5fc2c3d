"""Pause protocol (request, acknowledge, paused record, resume) and the checkpoint helpers."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from labkit.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from labkit.control import REQUEST, PauseControl, request_pause
from labkit.errors import MissingInputError, Paused
from labkit.heartbeat import Heartbeat, heartbeat_path
from labkit.rundir import RunDir


def test_request_is_noticed_acknowledged_and_retired(tmp_path):
    hb = Heartbeat(tmp_path, "train", total=10, min_interval_s=60)
    pause = PauseControl(tmp_path, "train", heartbeat=hb, min_interval_s=0)
    assert not pause.requested()
    request_pause(tmp_path, "maintenance window")
    assert pause.requested()
    ckpt = save_checkpoint(tmp_path / "checkpoints" / "step_7.pt", {"step": 7})
    ack_path = pause.acknowledge(7, ckpt, note="from a test")

    assert ack_path == tmp_path / "control" / "pause_ack_train.json"
    ack = json.loads(ack_path.read_text(encoding="utf-8"))
    assert ack["phase"] == "train" and ack["step"] == 7
    assert ack["checkpoint"] == "checkpoints/step_7.pt"
    assert ack["reason"] == "maintenance window" and ack["note"] == "from a test"
    assert ack["requested_utc"] and ack["acknowledged_utc"]
    # The request is renamed, so a rerun does not pause at once, and the trace stays.
    assert not (tmp_path / REQUEST).exists()
    assert len(list((tmp_path / "control").glob("pause.handled_train_*"))) == 1
    assert not PauseControl(tmp_path, "train", min_interval_s=0).requested()
    snap = json.loads(heartbeat_path(tmp_path, "train").read_text(encoding="utf-8"))
    assert (snap["status"], snap["step"]) == ("paused", 7)
    assert snap["latest_checkpoint"] == "checkpoints/step_7.pt"


def test_checks_are_throttled(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr("labkit.control.time.monotonic", lambda: now[0])
    pause = PauseControl(tmp_path, "train", min_interval_s=0.5)
    assert not pause.requested()  # the first call always looks
    request_pause(tmp_path)
    now[0] += 0.2
    assert not pause.requested()  # too soon to look again
    now[0] += 0.4
    assert pause.requested()


def test_paused_run_records_paused_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    cfg = {"steps": 5}
    run = RunDir.create(run_dir, cfg, phase="train")
    with pytest.raises(Paused), run.running(), Heartbeat(run_dir, "train", total=5) as hb:
        pause = PauseControl(run_dir, "train", heartbeat=hb, min_interval_s=0)
        for step in range(1, 6):
            hb.beat(step)
            if step == 2:
                request_pause(run_dir)
            if pause.requested():
                pause.acknowledge(step, save_checkpoint(run_dir / "ck" / f"s{step}.pt", {}))
                raise Paused(f"paused at {step}")
    assert RunDir.open(run_dir).record["phases"]["train"]["status"] == "paused"
    assert RunDir.open(run_dir).record["status"] == "paused"

    again = RunDir.create(run_dir, cfg, phase="train", resume=True)
    assert again.resumed
    assert latest_checkpoint(run_dir / "ck", "s*.pt") == run_dir / "ck" / "s2.pt"


def test_checkpoint_roundtrip_and_latest(tmp_path):
    state = {"w": torch.arange(4.0), "step": 10, "nested": {"xs": [1, 2]}}
    for step in (9, 10, 2):
        save_checkpoint(tmp_path / f"state_step_{step}.pt", {**state, "step": step})
    (tmp_path / ".state_step_11.pt.abc.tmp").write_bytes(b"torn")  # a crashed write's leftover
    latest = latest_checkpoint(tmp_path, "state_step_*.pt")
    assert latest == tmp_path / "state_step_10.pt"  # numeric, not lexical, order
    loaded = load_checkpoint(latest)
    assert torch.equal(loaded["w"], state["w"]) and loaded["nested"] == {"xs": [1, 2]}
    assert latest_checkpoint(tmp_path / "none") is None
    with pytest.raises(MissingInputError):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_roundtrip_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's legacy state
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    first = (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist())
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist()) == first
