"""MLflow tracking: runs mirror themselves to a SQLite store, resume into the same MLflow run, sweeps
become parent runs; a broken store never breaks a run; without the switch nothing is loaded or written."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labkit.atomic import atomic_write_json
from labkit.cli import run_cli
from labkit.errors import EXIT_PAUSED, EXIT_RUN_EXISTS, Paused
from labkit.jsonl import append_jsonl, read_jsonl
from labkit.rundir import RunDir
from labkit.tracking import ENV, add_track_flag, parse_track

HERE = Path(__file__).resolve().parent
ENTRY = "test_tracking:tracked_run"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16  # a figure's bytes: content does not matter here


def tracked_run(name: str, config: dict, run_dir: Path) -> dict:
    """A labkit run: a step log of `steps` lines (from where it stopped), then metrics, a figure, a table."""
    run = RunDir.create(run_dir, config, phase="train", resume=True, seeds={"seed": config["seed"]})
    log = run.path / "logs" / "train.jsonl"
    with run.running():
        start = len(read_jsonl(log).records)
        for step in range(start + 1, config["steps"] + 1):
            append_jsonl(log, {"step": step, "loss": 1.0 / step})
            if step == config["pause_at"] and start == 0:
                raise Paused(f"paused after step {step}")
        atomic_write_json(
            run.path / "metrics.json", {"loss": 1.0 / config["steps"], "eval": {"acc": 0.5}}
        )
        run.file("figures", "loss.png").write_bytes(PNG)
        run.file("tables", "loss.csv").write_text("step,loss\n1,1.0\n", encoding="utf-8")
    return {"loss": 1.0 / config["steps"]}


def command(argv: list[str]) -> int:
    """The run above as a labkit command line; returns its exit code."""
    parser = argparse.ArgumentParser(prog="job")
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--pause_at", type=int, default=0)

    def main(args: argparse.Namespace) -> None:
        config = {
            "seed": 3,
            "steps": 6,
            "pause_at": args.pause_at,
            "opt": {"lr": 0.1, "betas": [0.9, 0.99]},
        }
        tracked_run("job", config, Path(args.run_dir))

    with pytest.raises(SystemExit) as exit_info:
        run_cli(parser, main, argv)
    return exit_info.value.code


@pytest.fixture
def store(mlflow_store, monkeypatch) -> str:
    """The session's store (root conftest), switched on through the variable (undone after the test)."""
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv(ENV, mlflow_store)
    return mlflow_store


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def tracking(run_dir: Path) -> dict:
    return json.loads((run_dir / "run_record.json").read_text(encoding="utf-8"))["tracking"]


def test_a_run_lands_with_params_tags_step_and_final_metrics_and_artifacts(tmp_path, store):
    assert command(["--run_dir", str(tmp_path / "lands")]) == 0
    state = tracking(tmp_path / "lands")
    assert state["status"] == "ok" and state["reason"] is None and state["uri"] == store
    mlflow = client(store)
    run = mlflow.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "lands"
    # the experiment is the system's: the package whose command ran (this test module is labkit's)
    assert mlflow.get_experiment(run.info.experiment_id).name == "labkit"
    # the resolved config, flattened to dot keys (lists as JSON)
    assert run.data.params == {
        "seed": "3",
        "steps": "6",
        "pause_at": "0",
        "opt.lr": "0.1",
        "opt.betas": "[0.9, 0.99]",
    }
    tags = run.data.tags
    record = json.loads((tmp_path / "lands" / "run_record.json").read_text(encoding="utf-8"))
    assert tags["system"] == "labkit" and tags["phase"] == "train"
    assert tags["config_hash"] == record["config_hash"] and tags["seed.seed"] == "3"
    assert tags["git_commit"] == str(record["git"]["commit"]) and tags["rehearsal"] == "false"
    # one point per log line, at the line's own step; the final metrics from metrics.json
    history = mlflow.get_metric_history(state["run_id"], "logs/train.loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / s) for s in range(1, 7)]
    assert run.data.metrics["metrics.loss"] == pytest.approx(1 / 6)
    assert run.data.metrics["metrics.eval.acc"] == 0.5
    files = {a.path for a in mlflow.list_artifacts(state["run_id"])}
    assert files == {"figures", "tables", "config_resolved.yaml", "run_record.json"}
    assert [a.path for a in mlflow.list_artifacts(state["run_id"], "figures")] == [
        "figures/loss.png"
    ]


def test_pause_and_resume_continue_the_same_mlflow_run_without_duplicates(tmp_path, store):
    run_dir = tmp_path / "resumed"
    assert command(["--run_dir", str(run_dir), "--pause_at", "3"]) == EXIT_PAUSED
    first = tracking(run_dir)
    mlflow = client(store)
    # a paused run shows as KILLED with what it logged so far
    assert mlflow.get_run(first["run_id"]).info.status == "KILLED"
    assert len(mlflow.get_metric_history(first["run_id"], "logs/train.loss")) == 3
    assert command(["--run_dir", str(run_dir), "--pause_at", "3"]) == 0
    second = tracking(run_dir)
    assert second["run_id"] == first["run_id"]
    assert mlflow.get_run(second["run_id"]).info.status == "FINISHED"
    history = mlflow.get_metric_history(second["run_id"], "logs/train.loss")
    assert [m.step for m in history] == [1, 2, 3, 4, 5, 6]
    experiment = mlflow.get_run(second["run_id"]).info.experiment_id
    assert len(mlflow.search_runs([experiment], "attributes.run_name = 'resumed'")) == 1


def test_a_refused_command_sends_and_changes_nothing(tmp_path, store):
    run_dir = tmp_path / "r"
    assert command(["--run_dir", str(run_dir)]) == 0
    before = (run_dir / "run_record.json").read_bytes()
    # the phase is complete: exit 4, and not one byte of the record changes
    assert command(["--run_dir", str(run_dir)]) == EXIT_RUN_EXISTS
    assert (run_dir / "run_record.json").read_bytes() == before


def test_a_broken_store_leaves_the_run_complete_and_the_reason_in_its_record(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "a_file").write_text("not a folder\n", encoding="utf-8")
    monkeypatch.setenv(ENV, f"sqlite:///{tmp_path / 'a_file' / 'mlruns.db'}")
    run_dir = tmp_path / "r"
    assert command(["--run_dir", str(run_dir)]) == 0
    record = json.loads((run_dir / "run_record.json").read_text(encoding="utf-8"))
    assert record["status"] == "complete"
    assert record["tracking"]["status"] == "failed" and record["tracking"]["reason"]
    assert (run_dir / "metrics.json").is_file()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "tracking: MLflow mirror failed, the run is unaffected"
    )


def test_the_track_flag_switches_tracking_on_with_a_uri(tmp_path, monkeypatch, mlflow_store):
    monkeypatch.setenv(ENV, "")  # off, and restored after the test whatever --track sets
    uri = mlflow_store
    assert command(["--run_dir", str(tmp_path / "r"), "--track", f"mlflow:{uri}"]) == 0
    state = tracking(tmp_path / "r")
    assert state["status"] == "ok" and state["uri"] == uri
    assert os.environ[ENV] == uri  # exported, so the processes the command starts track too
    assert client(uri).get_run(state["run_id"]).data.metrics["metrics.eval.acc"] == 0.5


def test_track_values():
    assert parse_track("mlflow").startswith("sqlite:///") and parse_track("mlflow").endswith(
        "/mlruns.db"
    )
    assert parse_track("mlflow:http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    for bad in ("wandb", "mlflow:", "tensorboard:x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_track(bad)
    # before or after a subcommand (esper, dream, avalanche_llm have them), and absent
    parser = argparse.ArgumentParser()
    parser.add_subparsers(dest="command").add_parser("run")
    add_track_flag(parser)
    assert parser.parse_args(["run"]).track is None
    assert parser.parse_args(["--track", "mlflow:a", "run"]).track == "a"
    assert parser.parse_args(["run", "--track", "mlflow:b"]).track == "b"


def test_a_sweep_is_a_parent_run_with_its_runs_as_children(tmp_path, store):
    from labkit.sweep import main

    base = {"seed": 0, "steps": 4, "pause_at": 0}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    doc = {
        "sweep_name": "s1",
        "base_config": "base.yaml",
        "entry": ENTRY,
        "workers": 2,  # the runs happen in worker processes; the sweep's command mirrors them
        "runs": [{"name": "a", "overrides": ["seed=1"]}, {"name": "b", "overrides": ["seed=2"]}],
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep_config", str(tmp_path / "sweep.yaml"), "--out_root", str(out)])
    assert exit_info.value.code == 0
    summary = json.loads((out / "s1_summary.json").read_text(encoding="utf-8"))
    parent = summary["tracking"]["run_id"]
    mlflow = client(store)
    assert mlflow.get_run(parent).data.tags["phase"] == "sweep"
    children = {name: tracking(out / "s1" / name)["run_id"] for name in ("a", "b")}
    for name, run_id in children.items():
        run = mlflow.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.params["seed"] == str(1 if name == "a" else 2)
        assert len(mlflow.get_metric_history(run_id, "logs/train.loss")) == 4


def test_without_the_switch_mlflow_is_never_imported_and_nothing_is_written(tmp_path):
    code = f"""
import argparse, sys
from labkit.cli import run_cli
from labkit.rundir import RunDir

def main(args):
    run = RunDir.create({str(tmp_path / "r")!r}, {{"seed": 0}}, phase="main")
    with run.running():
        pass

try:
    run_cli(argparse.ArgumentParser(prog="job"), main, [])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print(sorted(m for m in sys.modules if m.split(".")[0] == "mlflow" or m == "labkit.tracking.mirror"))
"""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # neither mlflow nor the mirror was loaded
    record = json.loads((tmp_path / "r" / "run_record.json").read_text(encoding="utf-8"))
    assert "tracking" not in record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
