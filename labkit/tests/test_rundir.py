import json
import os
import subprocess
import sys
import time

import pytest

from labkit.atomic import atomic_write_text
from labkit.errors import MissingInputError, Paused, RunExistsError
from labkit.rundir import CONFIG, RECORD, RunDir, git_state, sha256_file

CFG = {"seed": 3, "train": {"lr": 0.1}}
REQUIRED = {
    "run_id", "status", "created_utc", "updated_utc", "command", "config_path", "config_hash",
    "env", "git", "hostname", "device", "seeds", "determinism", "phases", "artifact_index",
}  # fmt: skip


def test_create_writes_record_and_indexes_files(tmp_path):
    run = RunDir.create(tmp_path / "r1", CFG, phase="train", seeds={"seed": 3}, command=["x"])
    rec = json.loads((run.path / RECORD).read_text())
    assert rec.keys() >= REQUIRED
    assert rec["status"] == "started" and rec["phases"]["train"]["status"] == "started"
    assert {"python", "torch", "transformers", "numpy", "cuda", "gpu_name"} <= rec["env"].keys()
    assert rec["env"]["cpu_capability"] in {"DEFAULT", "VSX", "ZVECTOR", "AVX2", "AVX512", "SVE256"}
    assert set(rec["git"]) == {"commit", "dirty"}
    paths = {e["relative_path"] for e in rec["artifact_index"]}
    assert paths == {CONFIG, "env.json", "git.json"}
    entry = next(e for e in rec["artifact_index"] if e["relative_path"] == CONFIG)
    assert entry["sha256"] == sha256_file(run.path / CONFIG)
    assert entry["bytes"] == (run.path / CONFIG).stat().st_size
    assert run.config == CFG


def test_existing_run_refused_without_resume(tmp_path):
    RunDir.create(tmp_path / "r", CFG)
    with pytest.raises(RunExistsError, match="resume"):
        RunDir.create(tmp_path / "r", CFG)


def test_foreign_nonempty_dir_refused_and_untouched(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "precious.txt").write_text("keep")
    with pytest.raises(RunExistsError):
        RunDir.create(tmp_path / "d", CFG)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["precious.txt"]


def test_resume_incomplete_marks_resumed(tmp_path):
    run = RunDir.create(tmp_path / "r", CFG)
    with pytest.raises(Paused), run.running():
        raise Paused("asked to pause")
    assert run.phase_status() == "paused"
    again = RunDir.create(tmp_path / "r", CFG, resume=True)
    assert again.resumed and again.record["phases"]["main"]["attempts"] == 2


def test_complete_phase_is_immutable_even_forced(tmp_path):
    run = RunDir.create(tmp_path / "r", CFG)
    with run.running():
        pass
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    for resume, force in ((True, False), (False, True), (True, True)):
        with pytest.raises(RunExistsError, match="complete"):
            RunDir.create(tmp_path / "r", CFG, resume=resume, force=force)
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before


def test_force_restarts_a_failed_phase(tmp_path):
    run = RunDir.create(tmp_path / "r", CFG)
    atomic_write_text(run.file("out.txt"), "partial")
    with pytest.raises(ZeroDivisionError), run.running():
        raise ZeroDivisionError("boom")
    redo = RunDir.create(tmp_path / "r", CFG, force=True)
    assert not redo.resumed and redo.record["phases"]["main"]["restarted"]


def test_failed_run_without_outputs_is_replaced(tmp_path):
    run = RunDir.create(tmp_path / "r", CFG)
    with pytest.raises(ZeroDivisionError), run.running():
        raise ZeroDivisionError("boom")
    fresh = RunDir.create(tmp_path / "r", {**CFG, "seed": 4})  # a corrected config takes its name
    assert fresh.record["status"] == "started" and fresh.record["phases"]["main"]["attempts"] == 1


def test_failed_run_with_outputs_is_kept(tmp_path):
    run = RunDir.create(tmp_path / "r", CFG)
    atomic_write_text(run.file("out.txt"), "partial")
    with pytest.raises(ZeroDivisionError), run.running():
        raise ZeroDivisionError("boom")
    with pytest.raises(RunExistsError, match="config hash"):
        RunDir.create(tmp_path / "r", {**CFG, "seed": 4})
    assert (tmp_path / "r" / "out.txt").read_text() == "partial"


def test_resume_refuses_different_config_hash(tmp_path):
    RunDir.create(tmp_path / "r", CFG)
    with pytest.raises(RunExistsError, match="config hash"):
        RunDir.create(tmp_path / "r", {**CFG, "seed": 4}, resume=True, force=True)


def test_new_phase_of_existing_run(tmp_path):
    train = RunDir.create(tmp_path / "r", CFG, phase="train")
    with train.running():
        pass
    ev = RunDir.create(tmp_path / "r", CFG, phase="eval")
    assert not ev.resumed
    assert ev.phase_status("train") == "complete" and ev.phase_status() == "started"


def test_failure_is_recorded(tmp_path):
    run = RunDir.create(tmp_path / "r", CFG)
    with pytest.raises(ZeroDivisionError), run.running():
        1 / 0  # noqa: B018
    rec = RunDir.open(tmp_path / "r").record
    assert rec["status"] == "failed" and "ZeroDivisionError" in rec["phases"]["main"]["error"]


def test_register_artifact_replaces_entry(tmp_path):
    run = RunDir.create(tmp_path / "r", CFG)
    f = run.file("metrics", "m.json")
    f.write_text("1")
    run.register_artifact("metrics/m.json")
    f.write_text("22")
    run.register_artifact(f)
    entries = [e for e in run.record["artifact_index"] if e["relative_path"] == "metrics/m.json"]
    assert len(entries) == 1 and entries[0]["bytes"] == 2
    with pytest.raises(MissingInputError):
        run.register_artifact("nope.bin")


def test_open_requires_record(tmp_path):
    with pytest.raises(MissingInputError):
        RunDir.open(tmp_path)


def test_relative_run_dir_paths_built_from_run_path_register(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = RunDir.create("runs/rel", CFG)
    fig = run.path / "figures" / "f.png"
    fig.parent.mkdir()
    fig.write_bytes(b"png")
    assert run.register_artifact(fig)["relative_path"] == "figures/f.png"


def test_git_probe_never_rewrites_the_index(tmp_path):
    """git status refreshes a stale index under .git/index.lock unless GIT_OPTIONAL_LOCKS=0."""
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f").write_text("a")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    os.utime(tmp_path / "f", (2e9, 2e9))  # same content, stale stat data: status wants a refresh
    index = (tmp_path / ".git" / "index").read_bytes()
    assert git_state(tmp_path)["dirty"] is False
    assert (tmp_path / ".git" / "index").read_bytes() == index
    subprocess.run([*git, "status", "--porcelain"], check=True, capture_output=True)
    assert (
        tmp_path / ".git" / "index"
    ).read_bytes() != index  # the control: plain status writes it


def test_resume_removes_what_a_killed_atomic_write_left(tmp_path):
    RunDir.create(tmp_path / "r", CFG)
    writer = subprocess.Popen(  # killed inside atomic_write_with, between mkstemp and rename
        [
            sys.executable,
            "-c",
            "import time; from labkit.atomic import atomic_write_with as w; "
            f"w({str(tmp_path / 'r' / 'out' / 'big.bin')!r}, lambda fh: (fh.write(b'x'), fh.flush(), time.sleep(60)))",
        ]
    )
    deadline = time.monotonic() + 60
    while not list((tmp_path / "r" / "out").glob(".big.bin.*.tmp")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    writer.kill()
    writer.wait()
    (tmp_path / "r" / "out" / "notes.tmp").write_text("mine")  # not an atomic write's temp file
    assert list((tmp_path / "r" / "out").glob(".big.bin.*.tmp"))  # the kill left it
    assert RunDir.create(tmp_path / "r", CFG, resume=True).resumed
    assert sorted(p.name for p in (tmp_path / "r" / "out").iterdir()) == ["notes.tmp"]
