"""Every Esper paper config rehearsed on replicas (the `test` size of the GPT-2 replica; the data sets
have one size), at the sizes of configs/rehearsal_profile.yaml: train-host, train-tamiyo (2 PPO
updates) and evaluate complete, write their locked files with every figure and table stamped
REHEARSAL, and every run record says rehearsal: true with the caps it applied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper.cli import main
from labkit.jsonl import read_jsonl
from labkit.rehearsal import ENV
from labkit.stamp import stamped
from labkit.zoo import replicas

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
LOCKED = {
    "host": ("summary.json", "figures/learning_curves.png", "figures/seed_timeline.png"),
    "tamiyo": ("figures/ppo_returns.png", "figures/ppo_diagnostics.png"),
    "eval": ("summary.json", "results.md", "results.tex", "figures/return_ci.png"),
}


def esper(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code


def check_rehearsed_run(run: Path, kind: str, config: str) -> None:
    """Complete, its locked files there, figures and tables stamped, the record a capped rehearsal."""
    record = json.loads((run / "run_record.json").read_text(encoding="utf-8"))
    assert record["rehearsal"] is True and record["status"] == "complete"
    assert "task.max_epochs=2" in record["rehearsal_profile"][str(CONFIGS / config)]
    for name in LOCKED[kind]:
        path = run / name
        assert path.is_file(), path
        if path.suffix in (".png", ".md", ".tex"):
            assert stamped(path), path


@pytest.mark.rehearsal
@pytest.mark.parametrize("task", ["cifar10", "tinystories"])
def test_paper_configs_rehearse_host_tamiyo_and_evaluation(task, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "1")
    monkeypatch.setattr(replicas, "REPLICA_SIZE", "test")
    host, tamiyo, ev = tmp_path / "host", tmp_path / "tamiyo", tmp_path / "eval"
    config = CONFIGS / f"{task}.yaml"
    assert esper("train-host", "--config", config, "--policy", "heuristic", "--run_dir", host) == 0
    check_rehearsed_run(host, "host", f"{task}.yaml")
    assert len(read_jsonl(host / "steps.jsonl").records) == 3  # epoch 0, then the 2 capped epochs
    ppo = CONFIGS / f"ppo_{task}.yaml"
    assert esper("train-tamiyo", "--config", ppo, "--run_dir", tamiyo) == 0
    check_rehearsed_run(tamiyo, "tamiyo", f"ppo_{task}.yaml")
    assert len(read_jsonl(tamiyo / "ppo_updates.jsonl").records) == 2
    policies = f"ppo:{tamiyo},heuristic,random"
    evaluate = CONFIGS / f"eval_{task}.yaml"
    assert esper("evaluate", "--config", evaluate, "--policies", policies, "--run_dir", ev) == 0
    check_rehearsed_run(ev, "eval", f"eval_{task}.yaml")
