"""Heartbeat: snapshot + timeline files, throttling, throughput/ETA, terminal states, strict JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from labkit.errors import Paused
from labkit.heartbeat import Heartbeat, heartbeat_path, jsonable
from labkit.jsonl import read_jsonl


class Clock:
    """A hand-driven stand-in for time.monotonic."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr("labkit.heartbeat.time.monotonic", c)
    return c


def snapshot(run_dir, phase="train"):
    return json.loads(heartbeat_path(run_dir, phase).read_text(encoding="utf-8"))


def timeline(run_dir, phase="train"):
    return read_jsonl(heartbeat_path(run_dir, phase).with_suffix(".jsonl")).records


def test_files_and_fields(tmp_path):
    hb = Heartbeat(tmp_path, "train", total=10, min_interval_s=0)
    hb.beat(3, metrics={"loss": 0.25}, checkpoint=tmp_path / "ckpt" / "step_3.pt")
    snap = snapshot(tmp_path)
    assert (tmp_path / "logs" / "train_heartbeat.json").is_file()
    assert snap["phase"] == "train" and snap["status"] == "running"
    assert (snap["step"], snap["total"]) == (3, 10)
    assert snap["metrics"] == {"loss": 0.25}
    assert snap["latest_checkpoint"] == "ckpt/step_3.pt"  # relative to the run
    for key in ("started_utc", "updated_utc", "eta_s", "eta_utc", "throughput_steps_per_s"):
        assert key in snap
    assert snap["updated_utc"].endswith("Z") and snap["started_utc"] <= snap["updated_utc"]
    assert [r["step"] for r in timeline(tmp_path)] == [0, 3]


def test_throttled_beats_stay_in_memory_until_something_matters(tmp_path, clock):
    hb = Heartbeat(tmp_path, "train", total=100, min_interval_s=10)
    for step in range(1, 6):
        clock.now += 1
        assert hb.beat(step, metrics={"loss": 1 / step}) is False
    assert snapshot(tmp_path)["step"] == 0 and len(timeline(tmp_path)) == 1
    assert hb.step == 5 and hb.metrics == {"loss": 0.2}
    assert hb.beat(6, checkpoint="c6.pt") is True  # a checkpoint always writes
    assert hb.beat(7, force=True) is True
    hb.set_status("paused")  # and so does a status change
    assert [r["step"] for r in timeline(tmp_path)] == [0, 6, 7, 7]
    clock.now += 10
    hb.status = "running"
    assert hb.beat(8) is True  # the interval has passed
    assert snapshot(tmp_path)["step"] == 8


def test_throughput_and_eta_from_recent_window(tmp_path, clock):
    hb = Heartbeat(tmp_path, "train", total=30, step=10, min_interval_s=1)
    clock.now += 5
    hb.beat(20)
    snap = snapshot(tmp_path)
    assert snap["throughput_steps_per_s"] == pytest.approx(2.0)
    assert snap["eta_s"] == pytest.approx(5.0)
    # The window forgets old speed: after `window` fast samples only the fast rate remains.
    hb = Heartbeat(tmp_path, "fast", total=10_000, min_interval_s=1, window=3)
    for step in range(1, 10):
        clock.now += 1 if step > 3 else 100
        hb.beat(step * 100)
    assert snapshot(tmp_path, "fast")["throughput_steps_per_s"] == pytest.approx(100.0)


def test_no_eta_without_total_or_progress(tmp_path):
    Heartbeat(tmp_path, "a", total=None, min_interval_s=0).beat(5)
    assert snapshot(tmp_path, "a")["eta_s"] is None
    Heartbeat(tmp_path, "b", total=10, min_interval_s=0)
    assert snapshot(tmp_path, "b")["throughput_steps_per_s"] is None


def test_context_manager_sets_terminal_status(tmp_path):
    with Heartbeat(tmp_path, "ok", total=2) as hb:
        hb.beat(2)
    assert snapshot(tmp_path, "ok")["status"] == "complete"
    assert snapshot(tmp_path, "ok")["step"] == 2

    with pytest.raises(Paused), Heartbeat(tmp_path, "pz", total=9) as hb:
        hb.beat(4)
        raise Paused("asked to")
    assert snapshot(tmp_path, "pz")["status"] == "paused"

    with pytest.raises(ZeroDivisionError), Heartbeat(tmp_path, "bad", total=9):
        1 / 0  # noqa: B018
    snap = snapshot(tmp_path, "bad")
    assert snap["status"] == "failed" and "ZeroDivisionError" in snap["error"]


def test_metrics_are_strict_json(tmp_path):
    out = jsonable(
        {
            "nan": math.nan,
            "inf": -math.inf,
            "np": np.float32(0.5),
            "t": torch.tensor(3),
            "l": (1, 2),
        }
    )
    assert out == {"nan": "nan", "inf": "-inf", "np": 0.5, "t": 3, "l": [1, 2]}
    with pytest.raises(TypeError, match=r"metrics\.w"):
        jsonable({"w": torch.ones(3)})
    hb = Heartbeat(tmp_path, "train", min_interval_s=0)
    hb.beat(1, metrics={"loss": float("nan")})
    assert snapshot(tmp_path)["metrics"] == {"loss": "nan"}


def test_bad_phase_and_status(tmp_path):
    with pytest.raises(ValueError, match="phase name"):
        Heartbeat(tmp_path, "../escape")
    hb = Heartbeat(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown heartbeat status"):
        hb.set_status("done")


def test_resumed_heartbeat_appends_to_timeline(tmp_path):
    with pytest.raises(Paused), Heartbeat(tmp_path, "train", total=10, min_interval_s=0) as hb:
        hb.beat(4)
        raise Paused("x")
    with Heartbeat(tmp_path, "train", total=10, step=4, min_interval_s=0) as hb:
        hb.beat(10)
    statuses = [(r["step"], r["status"]) for r in timeline(tmp_path)]
    assert statuses == [
        (0, "running"),
        (4, "running"),
        (4, "paused"),
        (4, "running"),
        (10, "running"),
        (10, "complete"),
    ]
