"""The heartbeat dashboard: driven live against a run this test advances, and on broken files."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from labkit.cli import run_cli
from labkit.heartbeat import Heartbeat
from labkit.rundir import RunDir
from labkit.watch import PhaseView, all_terminal, build_parser, health, main, read_phases


def test_follow_sees_progress_and_stops_when_every_phase_is_terminal(tmp_path):
    run = RunDir.create(tmp_path / "run", {"steps": 5}, phase="train")
    train = Heartbeat(run.path, "train", total=5, min_interval_s=0)
    sweep = Heartbeat(run.path, "sweep_7", total=2, min_interval_s=0)  # any phase name is shown
    cmd = [sys.executable, "-m", "labkit.watch", "--run_dir", str(run.path)]
    proc = subprocess.Popen(
        [*cmd, "--follow", "--stop_on_terminal", "--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()  # the watcher is up and has drawn the first view
        assert first.startswith("run "), first
        for step in range(1, 6):
            train.beat(step, checkpoint=run.path / "checkpoints" / f"step_{step}.pt")
            time.sleep(0.3)
        sweep.set_status("paused", step=1)
        train.beat(5, metrics={"loss": 0.1}, force=True)
        time.sleep(0.5)
        assert proc.poll() is None, "stopped while a phase was still running"
        train.set_status("complete")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    seen = {int(s) for s in re.findall(r"\b([0-5])/5\b", first + out)}
    assert len(seen & {1, 2, 3, 4, 5}) >= 3, out  # it followed the steps as they came
    assert "sweep_7" in out and "paused" in out and "complete" in out
    assert "train checkpoint: checkpoints/step_5.pt" in out


def test_once_without_follow(tmp_path, capsys):
    with Heartbeat(tmp_path, "eval", total=4, min_interval_s=0) as hb:
        hb.beat(4)
    with pytest.raises(SystemExit) as exc:
        run_cli(build_parser(), main, ["--run_dir", str(tmp_path)])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "eval" in out and "4/4" in out and "complete" in out


def test_broken_files_do_not_crash_it(tmp_path, capsys):
    hb = Heartbeat(tmp_path, "train", total=10, min_interval_s=0)
    hb.beat(6)
    logs = tmp_path / "logs"
    (logs / "train_heartbeat.json").write_text('{"phase": "train", "st')  # torn by a foreign writer
    (logs / "eval_heartbeat.json").write_text("")  # empty, and no timeline to fall back on
    views = {v.phase: v for v in read_phases(tmp_path)}
    assert views["train"].beat["step"] == 6 and "timeline" in views["train"].note
    assert views["eval"].beat is None
    with pytest.raises(SystemExit) as exc:
        run_cli(build_parser(), main, ["--run_dir", str(tmp_path)])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "eval: heartbeat unreadable" in out and "6/10" in out and "record: unreadable" in out


def test_missing_run_dir_and_bad_interval(tmp_path, capsys):
    for argv, code in (
        (["--run_dir", str(tmp_path / "absent")], 3),
        (["--run_dir", str(tmp_path), "--interval", "0"], 2),
    ):
        with pytest.raises(SystemExit) as exc:
            run_cli(build_parser(), main, argv)
        assert exc.value.code == code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_health_flags_stale_and_dead_running_phases():
    now = datetime.now(UTC)
    old = (now - timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    elsewhere = {"status": "running", "updated_utc": old, "hostname": "not-" + socket.gethostname()}
    assert health(elsewhere, now, stale_after_s=120) == "stale"
    assert health({**elsewhere, "status": "complete"}, now, stale_after_s=120) == ""
    dead = {"status": "running", "updated_utc": old, "hostname": socket.gethostname()}
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert health({**dead, "pid": child.pid}, now, stale_after_s=1e9) == "process gone"
    fresh = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    alive = {"status": "running", "updated_utc": fresh, "hostname": socket.gethostname()}
    assert health({**alive, "pid": os.getpid()}, now, stale_after_s=120) == ""


def test_all_terminal():
    def view(status):
        return PhaseView("p", {"status": status})

    assert not all_terminal([])
    assert all_terminal([view("complete"), view("paused"), view("failed")])
    assert not all_terminal([view("complete"), view("running")])
    assert not all_terminal([view("complete"), PhaseView("q", None)])
