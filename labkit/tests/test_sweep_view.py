"""One line per run of a sweep, from its summary and heartbeats: in labkit.watch and the sweep CLI."""

from __future__ import annotations

import json
import os
import socket

import pytest

from labkit.cli import run_cli
from labkit.executors import LocalExecutor
from labkit.progress import ENV as PROGRESS_ENV
from labkit.selfcheck import DEFAULT_CONFIG
from labkit.sweep import main, plan_sweep, run_sweep
from labkit.sweep_view import sweep_summaries, sweeps_terminal
from labkit.watch import build_parser
from labkit.watch import main as watch_main

RUNS = [
    {"name": "short", "overrides": ["train.steps=4"]},
    {"name": "broken", "overrides": ["train.steps=4", "train.lr=-1"]},
]


def sweep_doc() -> dict:
    # train.lr=-1 passes the sweep (no schema given) and fails in the run: one failed line.
    return {
        "sweep_name": "v",
        "base_config": DEFAULT_CONFIG,
        "entry": "labkit.selfcheck:sweep_run",
        "runs": RUNS,
    }


def watch(path, *flags) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(build_parser(), watch_main, ["--run_dir", str(path), *flags])
    assert exit_info.value.code == 0
    return exit_info


def run_line(out: str, name: str) -> str:
    return next(row for row in out.splitlines() if row.lstrip().startswith(name))


def test_watch_on_an_out_root_shows_a_line_per_run(tmp_path, capsys):
    run_sweep(plan_sweep(sweep_doc()), tmp_path, executor=LocalExecutor(1))
    assert sweep_summaries(tmp_path) == [tmp_path / "v_summary.json"]
    assert sweep_summaries(tmp_path / "v") == [tmp_path / "v_summary.json"]
    assert sweeps_terminal(sweep_summaries(tmp_path))
    watch(tmp_path, "--follow", "--stop_on_terminal", "--interval", "0.05")
    out = capsys.readouterr().out
    assert "sweep v: failed" in out
    short = run_line(out, "short")
    assert "complete" in short and "train" in short and "4/4" in short
    assert socket.gethostname() in short
    assert "failed" in run_line(out, "broken") and "SchemaError" in run_line(out, "broken")


def test_a_running_sweep_is_not_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    run_sweep(plan_sweep(sweep_doc()), tmp_path, executor=LocalExecutor(1))
    assert ": complete, " in capsys.readouterr().err  # without the view, each stage prints a line
    summary = tmp_path / "v_summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": "running"}))
    assert not sweeps_terminal([summary])


def test_the_sweep_cli_prints_a_line_per_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({**sweep_doc(), "runs": RUNS[:1]}), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep_config", str(path), "--out_root", str(tmp_path / "out")])
    assert exit_info.value.code == 0
    out, err = capsys.readouterr()
    assert "complete" in run_line(out, "short")
    # The view shows the runs' progress, so the runs print none of their own (control below).
    assert ": complete, " not in err and PROGRESS_ENV not in os.environ
    # The CLI's closing line follows the run lines on a line of its own.
    assert any(row.startswith("sweep v: 1 complete") for row in out.splitlines())
