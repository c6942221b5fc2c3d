"""Whole episodes through the CLI: growth and fossilisation on both topologies, clean random runs,
indexed artifacts, pause/resume with identical logs, and bad input refused with its exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper.cli import main
from labkit.jsonl import read_jsonl

from .conftest import CNN_CONFIG, CNN_TEST, LM_CONFIG

LOGS = ("episodes.jsonl", "steps.jsonl", "events.jsonl")


def esper(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code


def train(run_dir: Path, config: Path, overrides: list[str], *extra: str) -> int:
    return esper("train-host", "--config", config, "--run_dir", run_dir, *extra, *overrides)


def _records(run_dir: Path, name: str) -> list[dict]:
    return read_jsonl(run_dir / name, strict=True).records


@pytest.mark.parametrize("topology", ["cnn", "transformer"])
def test_heuristic_episode_grows_and_fossilises_a_seed(tmp_path, topology, lm_overrides):
    config, overrides = (CNN_CONFIG, CNN_TEST) if topology == "cnn" else (LM_CONFIG, lm_overrides)
    assert train(tmp_path / "run", config, overrides, "--policy", "heuristic") == 0
    (episode,) = _records(tmp_path / "run", "episodes.jsonl")
    assert episode["fossils"] >= 1 and episode["params_added"] > 0
    assert episode["host_params_final"] == episode["host_params_initial"] + episode["params_added"]
    events = _records(tmp_path / "run", "events.jsonl")
    kinds = [e["kind"] for e in events]
    assert kinds.index("germinated") < kinds.index("fossilized")
    fossils = [e for e in events if e["kind"] == "fossilized"]
    assert all(f["contribution"] > 0 for f in fossils)
    assert sum(f["params"] for f in fossils) == episode["params_added"]
    probation = [e for e in events if e["to_stage"] == "PROBATIONARY"]
    assert probation and probation[0]["contribution"] is not None
    stages = [s["seed_stage"] for s in _records(tmp_path / "run", "steps.jsonl")]
    assert {3, 4, 5, 6} <= set(stages)  # TRAINING, BLENDING, SHADOWING, PROBATIONARY seen


def test_random_policy_runs_clean_and_everything_is_indexed(tmp_path):
    run = tmp_path / "run"
    assert train(run, CNN_CONFIG, CNN_TEST, "--policy", "random", "--episodes", "2") == 0
    steps = _records(run, "steps.jsonl")
    assert len(steps) == 2 * 13
    for step in steps:
        if step["action"] is not None:
            assert step["mask"][_action_index(step)] == 1
    record = json.loads((run / "run_record.json").read_text())
    assert record["status"] == "complete"
    indexed = {a["relative_path"] for a in record["artifact_index"]}
    want = {*LOGS, "summary.json", "figures/learning_curves.png", "figures/seed_timeline.png"}
    assert want <= indexed
    summary = json.loads((run / "summary.json").read_text())
    assert summary["episodes"] == 2 and sum(summary["action_counts"].values()) == 24
    assert esper("plot", "--run_dir", run) == 0


def _action_index(step: dict) -> int:
    names = ["WAIT", "GERMINATE_NORM", "GERMINATE_ATTENTION", "GERMINATE_DEPTHWISE"]
    names += ["GERMINATE_CONV_ENHANCE", "ADVANCE", "CULL"]
    return names.index(step["action"])


def test_pause_and_resume_give_identical_logs(tmp_path):
    overrides = [*CNN_TEST, "episodes=2"]
    assert train(tmp_path / "straight", CNN_CONFIG, overrides) == 0
    paused = tmp_path / "paused"
    assert train(paused, CNN_CONFIG, overrides, "--pause_at", "7") == 75
    ack = json.loads((paused / "control" / "pause_ack_train_host.json").read_text())
    assert ack["step"] == 7
    assert len(_records(paused, "steps.jsonl")) == 8  # epoch 0 and epochs 1..7
    assert train(paused, CNN_CONFIG, overrides, "--pause_at", "16") == 75  # mid second episode
    assert train(paused, CNN_CONFIG, overrides) == 0
    for name in LOGS:
        assert (paused / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    record = json.loads((paused / "run_record.json").read_text())
    assert record["phases"]["train_host"]["attempts"] == 3


def test_bad_input_fails_before_work_with_its_exit_code(tmp_path, capsys):
    assert train(tmp_path / "a", CNN_CONFIG, [*CNN_TEST, "task.nope=1"]) == 2
    assert train(tmp_path / "b", CNN_CONFIG, [*CNN_TEST, "optimizer.lr=-1"]) == 2
    assert train(tmp_path / "c", CNN_CONFIG, [*CNN_TEST, "slots.enabled=[block9_post]"]) == 2
    assert train(tmp_path / "d", CNN_CONFIG, [*CNN_TEST, "task.target_loss=9.0"]) == 2
    assert train(tmp_path / "e", tmp_path / "missing.yaml", []) == 3
    assert "block9_post" in capsys.readouterr().err
    assert train(tmp_path / "g", LM_CONFIG, ["host.n_embd=30"]) == 2  # 4-head attention seed
    assert "blueprint attention cannot be built" in capsys.readouterr().err
    assert not any((tmp_path / x).exists() for x in "abcdg")
    assert train(tmp_path / "f", CNN_CONFIG, [*CNN_TEST, "task.max_epochs=1"]) == 0
    assert train(tmp_path / "f", CNN_CONFIG, [*CNN_TEST, "task.max_epochs=1"]) == 4  # complete
    assert train(tmp_path / "f", CNN_CONFIG, [*CNN_TEST, "task.max_epochs=2"]) == 4  # other config
