"""Heartbeats show progress: a live bar on a terminal (a pseudo-TTY here), one line per stage without one."""

import os
import pty
import subprocess
import sys
import time

from labkit.progress import ENV, describe

# Two phases with heartbeats, as a system writes them; nothing here prints on its own.
SCRIPT = """
import sys, time
from labkit.heartbeat import Heartbeat
with Heartbeat(sys.argv[1], "alpha", 3, min_interval_s=60) as hb:
    for i in range(1, 4):
        time.sleep(0.4)
        hb.beat(i, metrics={"loss": 0.25, "note": "x", "nested": {"a": 1}})
with Heartbeat(sys.argv[1], "beta", 2, min_interval_s=60) as hb:
    for i in (1, 2):
        hb.beat(i)
print("done")
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV, "COLUMNS")}
    return {**env, **extra}


def _run_on_pty(argv: list[str], env: dict[str, str]) -> str:
    """Run `argv` with stdout and stderr on a pseudo-terminal; return everything it drew."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(leader)
    assert proc.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_is_live_on_a_terminal(tmp_path):
    drawn = _run_on_pty([sys.executable, "-c", SCRIPT, str(tmp_path)], _env(COLUMNS="120"))
    assert "\x1b[" in drawn  # a live display redraws with terminal control sequences
    assert "alpha: loss 0.25 · note x" in drawn and "3/3" in drawn
    assert "beta" in drawn and "2/2" in drawn and "━" in drawn
    assert "alpha: complete" not in drawn  # the bar replaces the stage line
    assert "done" in drawn


def test_without_a_terminal_each_stage_prints_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=_env()
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [line.split(" in ")[0] for line in lines] == [
        "alpha: complete, 3/3",
        "beta: complete, 2/2",
    ]
    assert "\x1b[" not in done.stderr and done.stdout == "done\n"


def test_progress_can_be_switched_off(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(**{ENV: "off"}),
    )
    assert done.returncode == 0 and done.stderr == ""


def test_a_real_command_shows_progress_on_a_terminal_and_one_line_off_it(tmp_path):
    argv = [sys.executable, "-m", "labkit.selfcheck", "--steps", "20"]
    drawn = _run_on_pty([*argv, "--run_dir", str(tmp_path / "tty")], _env(COLUMNS="120"))
    assert "train" in drawn and "20/20" in drawn and "━" in drawn
    piped = subprocess.run(
        [*argv, "--run_dir", str(tmp_path / "pipe")], capture_output=True, text=True, env=_env()
    )
    assert piped.returncode == 0, piped.stderr
    stage_lines = [line for line in piped.stderr.splitlines() if ": complete, " in line]
    assert [line.split(" in ")[0] for line in stage_lines] == ["train: complete, 20/20"]


def test_describe_keeps_the_first_scalar_metrics():
    metrics = {"a": 1, "skip": [1], "b": 0.123456, "flag": True, "c": "s", "d": 2, "e": 3}
    assert describe(metrics) == "a 1 · b 0.1235 · c s · d 2"
