"""The self-check job: pause/resume and SIGKILL/resume end byte-identical; refusals; bad input."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.checkpoint import latest_checkpoint, load_checkpoint
from labkit.cli import run_cli
from labkit.selfcheck import build_parser, main

OUTPUTS = ("weights.safetensors", "metrics.json", "logs/loss.jsonl")
SMALL = ["--steps", "12"]
OVERRIDES = ["train.checkpoint_every=2"]


def command(run_dir: Path, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "labkit.selfcheck",
        "--run_dir",
        str(run_dir),
        *SMALL,
        *flags,
        *OVERRIDES,
    ]


def selfcheck(run_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(run_dir, *flags), capture_output=True, text=True, timeout=300)


def digests(run_dir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in OUTPUTS}


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run_record.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """A run never paused; the other runs must end byte-identical to it."""
    run_dir = tmp_path_factory.mktemp("selfcheck") / "reference"
    done = selfcheck(run_dir, "--pause_at", "0")
    assert done.returncode == 0, done.stderr
    return run_dir


def test_plain_run_outputs_and_record(reference):
    rec = record(reference)
    assert rec["status"] == "complete" and rec["phases"]["train"]["attempts"] == 1
    indexed = {e["relative_path"]: e["sha256"] for e in rec["artifact_index"]}
    assert digests(reference).items() <= indexed.items()
    losses = [json.loads(line) for line in (reference / "logs/loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses] == list(range(1, 13))
    metrics = json.loads((reference / "metrics.json").read_text())
    assert metrics["final_train_loss"] == losses[-1]["loss"] and metrics["steps"] == 12
    beat = json.loads((reference / "logs/train_heartbeat.json").read_text())
    assert (beat["status"], beat["step"], beat["total"]) == ("complete", 12, 12)


def test_pause_at_step_3_then_resume_is_byte_identical(reference, tmp_path):
    run_dir = tmp_path / "paused"
    paused = selfcheck(run_dir, "--pause_at", "3")
    assert paused.returncode == 75, paused.stderr
    assert paused.stderr.count("\n") == 1 and "paused after step 3/12" in paused.stderr
    ack = json.loads((run_dir / "control/pause_ack_train.json").read_text())
    assert ack["step"] == 3 and ack["checkpoint"] == "checkpoints/state_step_000003.pt"
    assert record(run_dir)["status"] == "paused"
    beat = json.loads((run_dir / "logs/train_heartbeat.json").read_text())
    assert (beat["status"], beat["step"]) == ("paused", 3)
    assert not (run_dir / "control/pause.request").exists()

    refused = selfcheck(run_dir, "--pause_at", "3", "--no-resume")
    assert refused.returncode == 4 and refused.stderr.count("\n") == 1

    resumed = selfcheck(run_dir, "--pause_at", "3")  # the same command again
    assert resumed.returncode == 0, resumed.stderr
    assert record(run_dir)["phases"]["train"]["attempts"] == 2
    assert digests(run_dir) == digests(reference)


def test_sigkill_mid_step_resumes_from_last_checkpoint(reference, tmp_path):
    run_dir = tmp_path / "killed"
    # step_sleep holds each step between its update and its bookkeeping: the kill lands mid-step.
    cmd = command(run_dir, "--pause_at", "0", "--step_sleep", "0.2", "--heartbeat_s", "0")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    beat_file = run_dir / "logs/train_heartbeat.json"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert proc.poll() is None, f"finished before the kill: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no heartbeat reached step 5"
            if beat_file.exists() and json.loads(beat_file.read_text())["step"] >= 5:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert record(run_dir)["status"] == "running"  # nobody got to record the end
    logged = (run_dir / "logs/loss.jsonl").read_text().splitlines()
    checkpoints = sorted((run_dir / "checkpoints").glob("state_step_*.pt"))
    for path in checkpoints:
        load_checkpoint(path)  # none is torn
    last = load_checkpoint(latest_checkpoint(run_dir / "checkpoints", "state_step_*.pt"))
    assert last["step"] >= 4 and len(logged) > last["step"]  # steps past it must be redone

    resumed = selfcheck(run_dir, "--pause_at", "0")
    assert resumed.returncode == 0, resumed.stderr
    assert record(run_dir)["phases"]["train"]["attempts"] == 2
    assert digests(run_dir) == digests(reference)


def test_demo_cycle_pauses_resumes_and_matches(reference, tmp_path):
    run_dir = tmp_path / "demo"
    done = selfcheck(run_dir)  # no --pause_at: the demo cycle
    assert done.returncode == 0, done.stderr
    assert "paused after step 6/12" in done.stdout and "resuming" in done.stdout
    assert f"run complete at {run_dir.resolve()}" in done.stdout
    assert "artifacts 6" in done.stdout and "train_heartbeat.json" in done.stdout
    assert record(run_dir)["phases"]["train"]["attempts"] == 2
    assert digests(run_dir) == digests(reference)


def test_resume_refused_for_other_config_or_complete_run(reference):
    before = digests(reference)
    other = selfcheck(reference, "--pause_at", "0", "train.lr=0.02")
    assert other.returncode == 4 and "config hash" in other.stderr
    again = selfcheck(reference, "--pause_at", "0")
    assert again.returncode == 4 and "complete" in again.stderr
    for res in (other, again):
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert digests(reference) == before


def cli(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        run_cli(build_parser(), main, argv)
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--config", "{missing}"], 3, "config file not found"),
        (["--config", "{malformed}"], 2, "malformed YAML"),
        (["train.learning_rate=0.1"], 2, "unknown config key 'train.learning_rate'"),
        (["train.steps=0"], 2, "train.steps"),
        (["--step_sleep", "-1"], 2, "must not be negative"),
    ],
)
def test_bad_input_exits_with_one_line(tmp_path, capsys, args, code, words):
    (tmp_path / "bad.yaml").write_text("seed: [1, 2\ntrain: {steps: 3}\n")
    files = {"missing": tmp_path / "nope.yaml", "malformed": tmp_path / "bad.yaml"}
    argv = ["--run_dir", str(tmp_path / "run"), *(a.format(**files) for a in args)]
    got, err = cli(argv, capsys)
    assert got == code
    assert err.count("\n") == 1 and words in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing was started

    got, err = cli([*argv, "--debug"], capsys)
    assert got == code and "Traceback" in err


def test_existing_non_run_directory_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("someone's data")
    res = selfcheck(tmp_path)
    assert res.returncode == 4 and res.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
