"""No orphans: workloads die with dream, a start-up sweep kills what a dead run left, stress-ng runs unprivileged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dream.reaper import PIDFILE, Registry, start_ticks, sweep
from dream.runner import run_process

DREAM_DIR = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a killed orphan may linger as a zombie until reaped


def _under(root: Path) -> dict[int, str]:
    """pid → name of every live process whose working directory lies under root."""
    found = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{p}/cwd").removesuffix(" (deleted)")
            name = Path(f"/proc/{p}/comm").read_text().strip()
        except OSError:
            continue
        if cwd.startswith(str(root)) and _alive(int(p)):
            found[int(p)] = name
    return found


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_workload_dies_with_its_parent_and_is_recorded_while_it_runs(tmp_path):
    work = tmp_path / "scratch" / "trial000_a1_x"
    work.mkdir(parents=True)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                from pathlib import Path
                from dream.runner import run_process
                run_process(["sleep", "300"], timeout_s=300, cwd=Path({str(work)!r}))
            """),
        ],
        start_new_session=True,
    )
    pidfile = tmp_path / "scratch" / PIDFILE
    assert _wait(pidfile.is_file, 30)
    (rec,) = json.loads(pidfile.read_text())
    assert rec["argv"] == ["sleep", "300"] and rec["cwd"] == str(work)
    assert rec["start_ticks"] == start_ticks(rec["pid"]) and _alive(rec["pid"])
    os.kill(parent.pid, signal.SIGKILL)  # the parent only, not its group: the kernel must act
    parent.wait()
    assert _wait(lambda: not _alive(rec["pid"]), 5)


def test_the_pid_file_is_empty_once_the_workload_ends(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    res = run_process(["true"], timeout_s=10, cwd=work)
    assert res.rc == 0 and not (tmp_path / PIDFILE).exists()


def test_the_sweep_kills_only_what_the_dead_run_left(tmp_path):
    scratch = tmp_path / "scratch"
    (scratch / "a").mkdir(parents=True)
    (scratch / "b").mkdir()
    other = tmp_path / "elsewhere"
    other.mkdir()

    def sleeper(cwd: Path) -> subprocess.Popen:
        # No parent-death signal: this stands for a workload that outlived a killed run.
        return subprocess.Popen(["sleep", "300"], cwd=cwd, start_new_session=True)

    orphan, child_of_orphan = sleeper(scratch / "a"), sleeper(scratch / "a")
    reused = sleeper(scratch / "b")
    bystander = sleeper(other)
    registry = Registry(scratch / PIDFILE)
    procs = [orphan, child_of_orphan, reused, bystander]
    try:
        with registry.running(orphan, scratch / "a"):
            # A record whose process started after this one: the pid now names someone else.
            records = json.loads((scratch / PIDFILE).read_text())
            late = {**records[0], "cwd": str(scratch / "b"), "start_ticks": 2**62}
            (scratch / PIDFILE).write_text(json.dumps([*records, late]))
            killed = sweep(scratch / PIDFILE)
        assert sorted(killed) == sorted([orphan.pid, child_of_orphan.pid])
        assert _wait(lambda: not _alive(orphan.pid) and not _alive(child_of_orphan.pid), 5)
        assert _alive(reused.pid) and _alive(bystander.pid)
        assert not (scratch / PIDFILE).exists() and sweep(scratch / PIDFILE) == []
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="the drop happens only when dream runs as root")
def test_root_runs_stress_ng_as_nobody(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    res = run_process(["id", "-u"], timeout_s=10, cwd=work, drop_root=True)
    assert res.stdout.strip() == "65534"
    assert run_process(["id", "-u"], timeout_s=10, cwd=work).stdout.strip() == "0"  # the control


@pytest.mark.parametrize(
    ("domain", "tool", "first"), [("cpu", "stress-ng", "idle"), ("storage", "fio", "normal")]
)
def test_kill_9_of_an_evaluate_process_group_leaves_no_workload_after_5_s(
    tmp_path, domain, tool, first
):
    out_root = tmp_path / "r"
    argv = [sys.executable, "-m", "dream", "evaluate", "--profile", "local", "--domain", domain]
    argv += ["--stage", "screen", "--out_root", str(out_root)]
    # The first regime this tool runs lasts 30 s, so only the kill can end it within 5 s.
    argv += ["-o", f"regimes.profiles.local.durations_s.{first}=30"]
    dream = subprocess.Popen(argv, cwd=DREAM_DIR, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        assert _wait(lambda: tool in _under(out_root).values(), 120), f"no {tool} started"
    finally:
        os.killpg(dream.pid, signal.SIGKILL)  # the repro: kill -9 -- -PGID
        dream.wait()
    assert _wait(lambda: not _under(out_root), 5), _under(out_root)
