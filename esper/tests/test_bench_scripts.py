"""The keep-rate benchmark and the seed-evidence report, on small known cases."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from esper.config import load_esper_config, task_config
from esper.leyline import Gating
from esper.utils.data import load_task_data
from labkit.errors import ConfigError

from .conftest import CNN_CONFIG, CNN_TEST, CONFIGS

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gating_raises_the_uniform_policys_keep_rate():
    keep = _load("bench_keep_rate")
    cfg = load_esper_config(CNN_CONFIG, [*CNN_TEST, "task.max_epochs=16"])
    task = task_config(cfg, load_task_data("classification", cfg["data"]))
    flat = [0] * task.max_epochs
    free = keep.simulate(cfg, task, Gating(), flat, 80)
    gated = keep.simulate(cfg, task, Gating(min_epoch=2, min_cull_age=8), flat, 80)
    assert free["germinations"] > 0 and gated["germinations"] > 0
    assert gated["p_episode_keeps"]["low"] > free["p_episode_keeps"]["high"]
    never = keep.simulate(cfg, task, Gating(min_plateau=1), flat, 20)  # the curve never plateaus
    assert never["germinations"] == 0 and never["p_seed_kept"]["value"] is None
    assert keep.parse_gating("5,3,10") == Gating(5, 3, 10)
    with pytest.raises(ConfigError, match="three"):
        keep.parse_gating("5,3")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_seed_evidence_counts_kept_seeds_and_their_quality(tmp_path):
    report = _load("seed_evidence")
    base = {"policy": "ppo", "unit": 0}
    episodes = [
        base | {"episode": i, "fossils": f, "germinations": 1, "culls": 1 - f, "test_loss": 1.0}
        for i, f in enumerate((1, 0))
    ]
    for e, blueprints in zip(episodes, (["conv_enhance"], []), strict=True):
        e["fossil_blueprints"] = blueprints
        e["actions_by_stage"] = {"DORMANT": {"WAIT": 3, "GERMINATE_NORM": 1}}
    steps = [
        base | {"episode": 0, "seed_stage": 3, "has_active_seed": True, "seed_counterfactual": c}
        for c in (0.01, 0.03)
    ]
    events = [base | {"episode": 0, "kind": "fossilized", "contribution": 0.05}]
    for name, rows in (("episodes", episodes), ("steps", steps), ("events", events)):
        _jsonl(tmp_path / f"{name}.jsonl", rows)
    (row,) = report.evidence(tmp_path)["rows"]
    assert row["kept_rate"] == 0.5 and row["kept_blueprints"] == {"conv_enhance": 1}
    assert row["kept_counterfactual_mean"] == 0.03  # the last TRAINING value before keeping
    assert row["kept_contribution_mean"] == 0.05
    assert row["action_shares"] == {"GERMINATE_NORM": 0.25, "WAIT": 0.75}


def test_rollout_bench_times_both_runs_and_checks_their_bytes():
    bench = _load("bench_rollout")
    tiny = [*CNN_TEST, "task.max_epochs=3", "ppo.num_envs=2", "ppo.minibatch_size=4"]
    result = bench.measure(CONFIGS / "ppo_cifar10_local.yaml", 2, 2, 1, tiny)
    (pair,) = result["pairs"]
    assert pair["lockstep"]["workers"] == 1 and pair["parallel"]["workers"] == 2
    assert pair["ratio"] == round(pair["lockstep"]["wall_s"] / pair["parallel"]["wall_s"], 3)
    assert result["all_same_bytes"] and result["median_ratio"] == pair["ratio"]


def test_readme_regenerator_replaces_only_the_marked_block():
    readme = _load("readme_results")
    cnn, lm = readme.markers("cnn"), readme.markers("lm")
    text = f"intro\n{cnn[0]}\nold cnn\n{cnn[1]}\nmid\n{lm[0]}\nold lm\n{lm[1]}\noutro\n"
    new = readme.replace_block(text, "lm", "new lm\n")
    assert new == f"intro\n{cnn[0]}\nold cnn\n{cnn[1]}\nmid\n{lm[0]}\nnew lm\n{lm[1]}\noutro\n"
    with pytest.raises(ConfigError, match="exactly one"):
        readme.replace_block("no markers here", "cnn", "x")
    with pytest.raises(ConfigError, match="exactly one"):
        readme.replace_block(text + text, "cnn", "x")
    assert readme.parse_run("Default reward=runs/e") == ("Default reward", Path("runs/e"))
    with pytest.raises(ConfigError, match="LABEL=RUN_DIR"):
        readme.parse_run("runs/e")


def test_counterfactual_trace_follows_one_seed_from_training_to_fossil():
    trace = _load("counterfactual_trace")
    cfg = load_esper_config(CNN_CONFIG, [*CNN_TEST, "task.max_epochs=10"])
    row = trace.trace(cfg, "conv_enhance", start=1, hold=2, seed=0)
    assert len(row["counterfactual"]) == 2  # one reading per TRAINING epoch
    assert row["counterfactual"][-1] != 0.0  # the seed has learned something by then
    assert len(row["contribution"]) >= 5  # blending (5 steps), shadowing, probation
    with pytest.raises(ConfigError, match="no blueprint"):
        trace.main(trace.build_parser().parse_args(["--blueprint", "lora"]))
