"""`evaluate` end to end at test size: paired episodes, PPO units, pause/resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from esper.cli import main
from esper.config import load_esper_config
from esper.evaluate.command import load_eval_config
from esper.evaluate.episodes import run_chunk
from esper.evaluate.units import ENV_BLOCKS, expand_specs
from esper.kasmina import action_enum
from esper.leyline import OBS_DIM
from esper.tamiyo.network import ActorCritic
from esper.tamiyo.normaliser import EmaNormaliser
from esper.tamiyo.ppo_policy import policy_payload
from labkit.checkpoint import save_checkpoint
from labkit.control import request_pause
from labkit.errors import MissingInputError, Paused
from labkit.jsonl import append_jsonl, read_jsonl
from labkit.rundir import RunDir

from .conftest import CNN_TEST, CONFIGS

EVAL_CONFIG = CONFIGS / "eval_cifar10_local.yaml"
LOGS = ("episodes.jsonl", "steps.jsonl", "events.jsonl")


def esper(*argv: Any) -> int:
    """Run `python -m esper ...` in process; the exit code."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code


def evaluate(run_dir: Path, policies: str, *extra: Any, episodes: int = 3, workers: int = 1) -> int:
    return esper(
        "evaluate",
        "--config",
        EVAL_CONFIG,
        "--policies",
        policies,
        "--run_dir",
        run_dir,
        "--episodes",
        episodes,
        "--workers",
        workers,
        "eval.chunk_episodes=2",
        *CNN_TEST,
        *extra,
    )


def fake_ppo_run(path: Path, seed: int, *overrides: str) -> Path:
    """A train-tamiyo-shaped run dir holding an untrained (seeded) Tamiyo and a training curve."""
    cfg = load_eval_config(EVAL_CONFIG, [*CNN_TEST, *overrides], "static")
    cfg.pop("eval")
    cfg["seed"] = seed
    run = RunDir.create(path, cfg, phase="train_tamiyo")
    actions = action_enum(cfg["task"]["topology"])
    net = ActorCritic(OBS_DIM, len(actions), 16, 8)
    payload = policy_payload(
        net,
        EmaNormaliser(OBS_DIM),
        topology=cfg["task"]["topology"],
        actions=[a.name for a in actions],
        task=cfg["task"]["name"],
    )
    save_checkpoint(path / "policy.pt", payload)
    for k in range(6):
        append_jsonl(path / "episodes.jsonl", {"policy": "ppo", "return": float(k + seed)})
    return run.path


def _bytes(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in LOGS}


def test_ppo_units_and_baselines_are_paired_and_summarised(tmp_path):
    for seed in (0, 1):
        fake_ppo_run(tmp_path / f"ppo_s{seed}", seed)
    run = tmp_path / "eval"
    assert evaluate(run, f"ppo:{tmp_path}/ppo_s*,random,static") == 0
    episodes = read_jsonl(run / "episodes.jsonl", strict=True).records
    assert [(e["policy"], e["unit"]) for e in episodes[::3]] == [
        ("ppo", 0),
        ("ppo", 1),
        ("random", None),
        ("static", None),
    ]
    seeds = {
        p: [e["seed"] for e in episodes if (e["policy"], e["unit"]) == p]
        for p in {(e["policy"], e["unit"]) for e in episodes}
    }
    assert len({tuple(s) for s in seeds.values()}) == 1  # every unit played the same episode seeds
    for e in episodes:
        assert e["return"] == pytest.approx(sum(e["reward_parts"].values()))
        assert sum(e["action_counts"].values()) == e["epochs"] == 12
        assert sum(sum(c.values()) for c in e["actions_by_stage"].values()) == 12
    summary = json.loads((run / "summary.json").read_text())
    assert summary["policies"]["ppo"]["units"] == [0, 1]
    assert set(summary["paired"]) == {"ppo-random", "ppo-static"}
    assert set(summary["paired"]["ppo-random"]["return"]["per_unit"]) == {"0", "1"}
    assert "ppo_beats_random" in summary["verdicts"]
    indexed = {
        a["relative_path"]
        for a in json.loads((run / "run_record.json").read_text())["artifact_index"]
    }
    for name in (*LOGS, "summary.json", "results.md", "results.tex", "ppo_training.jsonl"):
        assert name in indexed
    for fig in ("return_ci", "action_histograms", "seed_timelines", "learning_curves"):
        assert f"figures/{fig}.png" in indexed
    for png in (run / "figures").glob("*.png"):
        png.unlink()
    assert esper("plot", "--run_dir", run) == 0  # redrawn from the saved JSONL alone
    assert len(list((run / "figures").glob("*.png"))) == 4
    assert evaluate(run, f"ppo:{tmp_path}/ppo_s*,random,static") == 4  # complete: refuse to redo


def test_pause_and_resume_give_identical_logs(tmp_path):
    assert evaluate(tmp_path / "whole", "heuristic,random") == 0
    run = tmp_path / "paused"
    assert evaluate(run, "heuristic,random", "--pause_at", 2) == 75
    assert len(read_jsonl(run / "episodes.jsonl").records) == 0  # assembled only at the end
    assert len(list((run / "parts").glob("*.json"))) == 2
    assert evaluate(run, "heuristic,random") == 0
    assert _bytes(run) == _bytes(tmp_path / "whole")


def test_json_prints_the_summary_instead_of_the_table(tmp_path, capsys):
    run = tmp_path / "eval"
    assert evaluate(run, "heuristic,random", "--json", episodes=2) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((run / "summary.json").read_text())
    assert set(printed["policies"]) == {"heuristic", "random"}


def test_pause_request_file_stops_at_an_episode_boundary(tmp_path):
    run = tmp_path / "run"
    assert evaluate(run, "static", "--pause_at", 1) == 75
    parts = sorted((run / "parts").glob("*.json"))
    assert len(parts) == 2  # the first chunk (2 episodes) finished before the pause took effect
    request_pause(run, "test")
    assert evaluate(run, "static") == 75
    assert sorted((run / "parts").glob("*.json")) == parts
    assert evaluate(run, "static") == 0
    assert len(read_jsonl(run / "episodes.jsonl").records) == 3


def test_a_worker_stops_before_its_next_episode_on_a_pause_request(tmp_path):
    cfg = load_eval_config(EVAL_CONFIG, CNN_TEST, "static")
    request_pause(tmp_path, "test")
    task = {"cfg": cfg, "unit": {"policy": "static"}, "episodes": [0, 1]}
    with pytest.raises(Paused, match="before episode 0"):
        run_chunk("static_0000", task, tmp_path)


@pytest.mark.parametrize(
    ("policies", "code", "where"),
    [
        ("heuristic,greedy", 2, "unknown policy"),
        ("ppo:{tmp}/nothing_here", 3, "policy.pt"),
        ("ppo:{tmp}/none_*", 3, "matches no"),
        ("random,random", 2, "twice"),
        ("ppo:{tmp}/other_task", 2, "another environment: optimizer.lr"),
        ("ppo:{tmp}/ppo_a,ppo:{tmp}/ppo_b", 2, "share a training seed"),
        ("ppo:{tmp}/not_a_policy", 2, "not a Tamiyo policy"),
    ],
)
def test_bad_input_fails_before_work_with_one_line(tmp_path, capsys, policies, code, where):
    (tmp_path / "nothing_here").mkdir()
    fake_ppo_run(tmp_path / "other_task", 0, "optimizer.lr=0.02")
    fake_ppo_run(tmp_path / "ppo_a", 3)
    fake_ppo_run(tmp_path / "ppo_b", 3)
    save_checkpoint(fake_ppo_run(tmp_path / "not_a_policy", 4) / "policy.pt", {"net": {}})
    run = tmp_path / "eval"
    assert evaluate(run, policies.format(tmp=tmp_path)) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and where in err[0]
    assert not run.exists()


def test_a_ppo_glob_expands_to_run_directories_only(tmp_path):
    for k in (1, 0):
        (tmp_path / f"ppo_s{k}").mkdir()
        (tmp_path / f"ppo_s{k}.log").write_text("log")
    assert expand_specs([f"ppo:{tmp_path}/ppo_s*", "static"]) == [
        f"ppo:{tmp_path}/ppo_s0",
        f"ppo:{tmp_path}/ppo_s1",
        "static",
    ]
    with pytest.raises(MissingInputError, match="matches no PPO run directory"):
        expand_specs([f"ppo:{tmp_path}/ppo_s*.log"])


def test_two_worker_processes_write_the_same_bytes_as_one(tmp_path):
    assert evaluate(tmp_path / "one", "random,static", episodes=2) == 0
    assert evaluate(tmp_path / "two", "random,static", episodes=2, workers=2) == 0
    assert _bytes(tmp_path / "two") == _bytes(tmp_path / "one")


def test_lm_evaluation_reports_perplexity(tmp_path, lm_overrides):
    run = tmp_path / "lm"
    code = esper(
        "evaluate",
        "--config",
        CONFIGS / "eval_tinystories_local.yaml",
        "--policies",
        "heuristic,static",
        "--run_dir",
        run,
        "--episodes",
        2,
        "--workers",
        1,
        *lm_overrides,
    )
    assert code == 0
    assert "perplexity" in (run / "results.md").read_text()
    assert all(e["val_perplexity"] > 1 for e in read_jsonl(run / "episodes.jsonl").records)


@pytest.mark.parametrize("name", ["cifar10_local", "tinystories_local", "cifar10", "tinystories"])
def test_eval_configs_mirror_the_ppo_environments(name):
    cfg = load_eval_config(CONFIGS / f"eval_{name}.yaml", [], "static")
    trained = load_esper_config(CONFIGS / f"ppo_{name}.yaml")
    for block in ENV_BLOCKS:
        assert cfg[block] == trained[block], block
    assert cfg["eval"]["episodes"] == 20
