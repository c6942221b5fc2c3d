"""`make rehearse` -> scripts/rehearse.sh: device check first, every system in turn, a failed, real or
timed-out system fails the whole, and a pass/fail line with wall time per system."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "scripts" / "rehearse.sh"
# Test systems that keep the driver's contract (`<system>/scripts/rehearse.sh OUT_ROOT DEVICE`) and
# end in four ways: a rehearsal run, a run made without the switch, a failure, a hang.
SYSTEMS = {
    "good": 'mkdir -p "$1/r" && echo "{\\"rehearsal\\": $LABKIT_REHEARSAL}" | sed "s/1/true/" > "$1/r/run_record.json"',
    "real": 'mkdir -p "$1/r" && echo "{\\"rehearsal\\": false}" > "$1/r/run_record.json"',
    "bad": 'echo "phase 3 failed" >&2; exit 5',
    "slow": "sleep 60",
}


def run_driver(root: Path, **env: str) -> subprocess.CompletedProcess:
    """The driver, run from a copy of it under `root`, with `env` added."""
    return subprocess.run(
        ["bash", str(root / "scripts" / "rehearse.sh")],
        env={**os.environ, "PY": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A repository-shaped folder: the real driver and the four test systems."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(DRIVER, tmp_path / "scripts" / "rehearse.sh")
    for name, body in SYSTEMS.items():
        (tmp_path / name / "scripts").mkdir(parents=True)
        (tmp_path / name / "scripts" / "rehearse.sh").write_text(f"#!/usr/bin/env bash\n{body}\n")
    return tmp_path


def test_each_system_passes_or_fails_on_its_own_and_the_summary_says_which(tree):
    out = tree / "out"
    done = run_driver(
        tree, SYSTEMS="good real bad slow", SKIP_BUILD="1", OUT_ROOT=str(out), LIMITS="slow=2"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads((out / "rehearse_summary.json").read_text())
    assert summary["passed"] is False and summary["device"] == "cpu"
    exits = {s["step"]: s["exit"] for s in summary["steps"]}
    # `real` exits 0 but its record does not say rehearsal: true; `slow` is killed at its limit
    assert exits == {"good": 0, "real": 1, "bad": 5, "slow": 124}
    assert all(s["seconds"] < 60 for s in summary["steps"])
    lines = done.stdout.splitlines()
    assert any(ln.split()[:2] == ["good", "pass"] for ln in lines)
    assert any(ln.split()[:2] == ["bad", "FAIL"] for ln in lines)
    assert any("slow" in ln and "time limit" in ln for ln in lines)
    assert "phase 3 failed" in (out / "bad.log").read_text()

    again = run_driver(tree, SYSTEMS="good", SKIP_BUILD="1", OUT_ROOT=str(tree / "out2"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((tree / "out2" / "rehearse_summary.json").read_text())["passed"] is True


def test_bad_device_or_missing_system_stops_before_anything_is_written(tree):
    for env, code, says in (
        ({"DEVICE": "tpu"}, 2, "expected cpu or cuda"),
        ({"SYSTEMS": "good nosuch"}, 2, "nosuch/scripts/rehearse.sh does not exist"),
    ):
        done = run_driver(tree, OUT_ROOT=str(tree / "never"), **env)
        assert done.returncode == code and says in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not (tree / "never").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_fails_fast_with_one_line(tree):
    done = run_driver(tree, DEVICE="cuda", SYSTEMS="good", OUT_ROOT=str(tree / "never"))
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "DEVICE=cuda but torch.cuda.is_available() is false" in done.stderr
    assert not (tree / "never").exists()
