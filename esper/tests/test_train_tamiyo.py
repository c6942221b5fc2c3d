"""train-tamiyo end to end (CLI smoke, determinism, pause/resume, policy files, plot, calibrate) and
the behavioural test: PPO learns a toy Esper task better than random."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from esper.cli import main
from esper.config import load_esper_config
from esper.simic import env as env_module
from esper.simic.train import LOGS, TamiyoTrainer
from esper.simic.workers import EpisodeJob, GreedyActor, RandomActor
from esper.tamiyo.ppo_policy import PPOPolicy, policy_payload
from esper.tolaria import Episode, ValResult
from labkit.jsonl import read_jsonl
from labkit.rundir import RunDir
from labkit.stats import paired_delta_ci

from .conftest import CNN_CONFIG, CNN_TEST, CONFIGS

PPO_CONFIG = CONFIGS / "ppo_cifar10_local.yaml"
SMALL = [
    *CNN_TEST,
    "task.max_epochs=4",
    "ppo.episodes=4",
    "ppo.num_envs=2",
    "ppo.baseline_episodes=2",
    "ppo.minibatch_size=4",
    "ppo.update_epochs=2",
]


def esper(*argv: object) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code


def tamiyo(run_dir: Path, *extra: object) -> int:
    return esper("train-tamiyo", "--config", PPO_CONFIG, "--run_dir", run_dir, *extra, *SMALL)


def test_no_heldout_episodes_is_a_clean_run(tmp_path):
    run = tmp_path / "t0"
    over = [*SMALL, "ppo.episodes=2", "ppo.baseline_episodes=0"]
    assert esper("train-tamiyo", "--config", PPO_CONFIG, "--run_dir", run, *over) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["heldout_ppo_minus_random"] is None and (run / "policy.pt").is_file()


def test_cli_smoke_two_updates_then_train_host_and_plot(tmp_path):
    run = tmp_path / "t1"
    assert tamiyo(run) == 0
    updates = read_jsonl(run / "ppo_updates.jsonl", strict=True).records
    assert [u["update"] for u in updates] == [0, 1]
    assert len(read_jsonl(run / "episodes.jsonl", strict=True).records) == 4
    assert len(read_jsonl(run / "steps.jsonl", strict=True).records) == 4 * 4
    held = read_jsonl(run / "heldout.jsonl", strict=True).records
    assert [h["policy"] for h in held] == ["random", "random", "ppo", "ppo"]
    record = json.loads((run / "run_record.json").read_text())
    assert record["status"] == "complete"
    indexed = {a["relative_path"] for a in record["artifact_index"]}
    figures = {"figures/ppo_returns.png", "figures/ppo_diagnostics.png"}
    assert {*LOGS, "policy.pt", "summary.json", *figures} <= indexed
    summary = json.loads((run / "summary.json").read_text())
    assert summary["updates"] == 2 and summary["heldout_ppo_minus_random"]["n"] == 2
    assert esper("plot", "--run_dir", run) == 0
    host = tmp_path / "h1"
    args = ["train-host", "--config", CNN_CONFIG, "--run_dir", host, "--policy", run / "policy.pt"]
    assert esper(*args, *CNN_TEST, "task.max_epochs=4") == 0
    (episode,) = read_jsonl(host / "episodes.jsonl", strict=True).records
    assert episode["policy"] == "ppo" and episode["epochs"] == 4


def test_same_seed_same_bytes_and_pause_resume_identical(tmp_path):
    assert tamiyo(tmp_path / "a") == 0
    assert tamiyo(tmp_path / "b") == 0
    paused = tmp_path / "p"
    assert tamiyo(paused, "--pause_at", 1) == 75
    ack = json.loads((paused / "control" / "pause_ack_train_tamiyo.json").read_text())
    assert ack["step"] == 1
    assert len(read_jsonl(paused / "ppo_updates.jsonl", strict=True).records) == 1
    assert tamiyo(paused) == 0
    for name in (*LOGS, "policy.pt"):
        straight = (tmp_path / "a" / name).read_bytes()
        assert straight == (tmp_path / "b" / name).read_bytes(), name
        assert straight == (paused / name).read_bytes(), name
    assert tamiyo(tmp_path / "c", "seed=1") == 0
    assert (tmp_path / "c" / "steps.jsonl").read_bytes() != (
        tmp_path / "a" / "steps.jsonl"
    ).read_bytes()


def test_worker_count_does_not_change_a_byte(tmp_path):
    # 3 envs per update on 2 worker processes: the episodes split unevenly and finish out of order.
    over = [*SMALL, "ppo.num_envs=3", "ppo.episodes=6", "ppo.baseline_episodes=3"]
    for run, workers in (("w1", 1), ("w2", 2)):
        argv = ["--config", PPO_CONFIG, "--run_dir", tmp_path / run, "--workers", workers]
        assert esper("train-tamiyo", *argv, *over) == 0
    for name in (*LOGS, "policy.pt"):
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes(), name
    assert len(read_jsonl(tmp_path / "w2" / "episodes.jsonl", strict=True).records) == 6


def test_bad_input_exit_codes(tmp_path):
    assert (
        esper("train-tamiyo", "--config", CNN_CONFIG, "--run_dir", tmp_path / "x", *CNN_TEST) == 2
    )
    assert tamiyo(tmp_path / "y", "ppo.backend=sb3") == 2
    assert tamiyo(tmp_path / "z", "ppo.lr=-1") == 2
    assert tamiyo(tmp_path / "v", "--workers", 0) == 2
    assert not any((tmp_path / d).exists() for d in "xyzv")
    bad = ["train-host", "--config", CNN_CONFIG, "--policy", tmp_path / "none.pt", *CNN_TEST]
    assert esper(*bad, "--run_dir", tmp_path / "w") == 3


def test_calibrate_writes_a_config_readable_calibration(tmp_path):
    run = tmp_path / "c"
    args = ["calibrate", "--config", PPO_CONFIG, "--run_dir", run, *CNN_TEST, "task.max_epochs=5"]
    assert esper(*args, "task.target_loss=calibrated") == 0
    cal = json.loads((run / "calibration.json").read_text())
    assert len(cal["seeds"]) == 3 and cal["deltas_used"] == 3 * 4
    assert cal["target_loss"] == pytest.approx(0.8 * np.mean(cal["best_val_losses"]))
    assert cal["loss_delta_std"] > 0
    over = [*CNN_TEST, "task.target_loss=calibrated", "task.loss_delta_std=calibrated"]
    cfg = load_esper_config(PPO_CONFIG, [*over, f"task.calibration={run / 'calibration.json'}"])
    env = env_module.EsperEnv(cfg)
    assert env.task.target_loss == pytest.approx(cal["target_loss"])
    assert env.task.loss_delta_std == pytest.approx(cal["loss_delta_std"])
    assert esper("train-tamiyo", "--config", PPO_CONFIG, "--run_dir", tmp_path / "n", *over) == 2


# -- behavioural: a toy Esper task --------------------------------------------------------------
# The real lifecycle, masks, signals, observation and reward, on a 1-channel host that trains on a
# single 8x8 image; the validation loss is synthetic: a decaying host curve plus the blended effect
# of each seed, so some blueprints help (norm, depthwise) and some hurt (attention, conv_enhance).
EFFECT = {"norm": -0.25, "attention": 0.3, "depthwise": -0.1, "conv_enhance": 0.4}


class ToyEpisode(Episode):
    def _validate(self, split: str = "val") -> ValResult:
        model = self.model
        loss = 1.0 + np.exp(-self.epoch / 3) + sum(EFFECT[b] for _, b in model.fossils)
        slot = model.live_slot
        if slot is not None and not slot.host_only:
            alpha = 1.0 if slot.full_probe else slot.state.alpha
            loss += alpha * EFFECT[slot.state.blueprint]
        return ValResult(loss=float(loss), accuracy=0.0, perplexity=None)

    def _probe_loss(self) -> float:
        return self._validate().loss


class OneImage:
    n_outputs = 10
    block_size = None

    def steps_per_epoch(self) -> int:
        return 1

    def train_batches(self, g: torch.Generator):
        yield torch.zeros(1, 3, 8, 8), torch.zeros(1, dtype=torch.long)


def test_ppo_beats_random_on_a_toy_task(tmp_path, monkeypatch):
    monkeypatch.setattr(env_module, "Episode", ToyEpisode)
    over = ["host.widths=[1,1,1]", "task.max_epochs=12", "task.target_loss=0.5"]
    over += ["task.loss_delta_std=0.05", "ppo.episodes=240", "ppo.num_envs=8", "ppo.lr=1e-3"]
    cfg = load_esper_config(PPO_CONFIG, over)
    run = RunDir.create(tmp_path / "toy", cfg, phase="train_tamiyo")
    tr = TamiyoTrainer(cfg, run, OneImage())
    while tr.update < tr.pc.updates:
        tr.run_update()
    policy = PPOPolicy(
        policy_payload(tr.net, tr.normaliser, topology="cnn", actions=[], task="toy")
        | {"actions": [a.name for a in tr.env.actions]}
    )
    seeds = [10_000 + i for i in range(16)]
    returns = {
        name: np.array(
            [e["return"] for e in tr.pool.play([EpisodeJob(s, actor, s) for s in seeds]).episodes]
        )
        for name, actor in (("ppo", GreedyActor(policy)), ("random", RandomActor()))
    }
    ci = paired_delta_ci(returns["random"], returns["ppo"], seed=0)
    assert ci.low > 0, (returns["ppo"].mean(), returns["random"].mean(), ci)
