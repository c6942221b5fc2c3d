"""`train-host`: episodes of a host trained under a static, random or heuristic Tamiyo, into a run dir.

Per epoch: steps.jsonl (action, mask, losses, stage, alpha, params), events.jsonl (seed events),
a heartbeat, a checkpoint every `checkpoint_every` epochs, and a pause check; per episode a line in
episodes.jsonl. Resuming from the latest checkpoint reproduces the same bytes in all three logs.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from esper.config import resolve_device, task_config
from esper.kasmina import action_enum
from esper.leyline import TaskConfig, build_observation
from esper.tamiyo import Policy, make_policy
from esper.tolaria import Episode
from esper.utils.data import ImageData, TokenData
from esper.utils.plots import plot_run
from labkit.atomic import atomic_write_json
from labkit.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    log_sizes,
    replace_checkpoint,
    rewind_logs,
    rng_state,
    set_rng_state,
)
from labkit.control import PauseControl, request_pause
from labkit.determinism import derive_seed
from labkit.errors import Paused
from labkit.heartbeat import Heartbeat, jsonable
from labkit.jsonl import append_jsonl, read_jsonl
from labkit.rundir import RunDir
from labkit.stats import bootstrap_ci

PHASE = "train_host"
LOGS = ("steps.jsonl", "events.jsonl", "episodes.jsonl")
CKPT = "state_{:06d}.pt"


def episode_seed(seed: int, episode: int) -> int:
    """The seed of episode `episode`: the same for every policy, so episodes pair across policies."""
    return derive_seed(seed, "episode", episode)


class HostRun:
    """The state of a train-host run between epochs: which episode, its engine, policy and tallies."""

    def __init__(self, cfg: dict[str, Any], run: RunDir, data: ImageData | TokenData):
        self.cfg = cfg
        self.run = run
        self.data = data
        self.task: TaskConfig = task_config(cfg, data)
        self.device = resolve_device(cfg["device"])
        self.actions = action_enum(self.task.topology)
        self.policy: Policy = make_policy(cfg["policy"], self.actions, self.task, cfg["heuristic"])
        self.episode_idx = 0
        self.episode: Episode | None = None
        self.tally: dict[str, Any] = {}

    @property
    def total_epochs(self) -> int:
        """Epochs over all episodes."""
        return self.cfg["episodes"] * self.task.max_epochs

    @property
    def epochs_done(self) -> int:
        """Epochs trained so far over all episodes."""
        current = 0 if self.episode is None else self.episode.epoch
        return self.episode_idx * self.task.max_epochs + current

    def _log(self, name: str, record: dict[str, Any]) -> None:
        append_jsonl(self.run.path / name, jsonable(record))

    # -- episodes ------------------------------------------------------------------------------
    def start_episode(self) -> None:
        """A fresh host and policy memory for episode `episode_idx`; logs its epoch-0 state."""
        seed = episode_seed(self.cfg["seed"], self.episode_idx)
        self.episode = Episode(self.cfg, self.data, self.task, seed, self.device)
        self.policy.reset(seed)
        signals = self.episode.reset()
        self.tally = {
            "seed": seed,
            "initial_val_loss": signals.policy.val_loss,
            "initial_host_params": signals.host_params,
            "actions": dict.fromkeys((a.name for a in self.actions), 0),
            "events": dict.fromkeys(("germinated", "fossilized", "culled", "governor_rollback"), 0),
            "fossil_blueprints": [],
        }
        self._log(
            "steps.jsonl",
            {"episode": self.episode_idx, "action": None, "mask": None, **signals.to_record()},
        )

    def step(self) -> dict[str, Any]:
        """One decision and one epoch; returns the step record."""
        ep = self.episode
        signals = ep.signals
        obs = build_observation(signals.policy, self.task)
        mask = ep.action_mask()
        action = self.actions(self.policy.act(obs, mask, signals.policy))
        if not mask[action]:
            raise RuntimeError(f"policy {self.policy.name} chose masked action {action.name}")
        events = ep.apply(action)
        signals, more = ep.run_epoch()
        events += more
        self.tally["actions"][action.name] += 1
        for event in events:
            if event.kind in self.tally["events"]:
                self.tally["events"][event.kind] += 1
            if event.kind == "fossilized":
                self.tally["fossil_blueprints"].append(event.blueprint)
            self._log("events.jsonl", {"episode": self.episode_idx, **event.to_record()})
        record = {
            "episode": self.episode_idx,
            "action": action.name,
            "mask": [int(m) for m in mask],
            **signals.to_record(),
        }
        self._log("steps.jsonl", record)
        return record

    def finish_episode(self) -> dict[str, Any]:
        """Write the episode's line in episodes.jsonl and move on to the next episode."""
        s = self.episode.signals
        t = self.tally
        record = {
            "episode": self.episode_idx,
            "seed": t["seed"],
            "policy": self.policy.name,
            "task": self.task.name,
            "epochs": self.episode.epoch,
            "val_loss": s.policy.val_loss,
            "best_val_loss": s.policy.best_val_loss,
            "val_accuracy": s.val_accuracy,
            "val_perplexity": s.val_perplexity,
            "test_loss": s.test_loss,
            "test_accuracy": s.test_accuracy,
            "test_perplexity": s.test_perplexity,
            "train_loss": s.policy.train_loss,
            "initial_val_loss": t["initial_val_loss"],
            "host_params_initial": t["initial_host_params"],
            "host_params_final": s.host_params,
            "params_added": s.host_params - t["initial_host_params"],
            "germinations": t["events"]["germinated"],
            "fossils": t["events"]["fossilized"],
            "culls": t["events"]["culled"],
            "rollbacks": t["events"]["governor_rollback"],
            "fossil_blueprints": t["fossil_blueprints"],
            "action_counts": t["actions"],
        }
        self._log("episodes.jsonl", record)
        self.episode_idx += 1
        self.episode = None
        return record

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self) -> Path:
        """Save everything needed to continue from this epoch boundary; keep only the newest file."""
        ckpt_dir = self.run.path / "checkpoints"
        return replace_checkpoint(
            ckpt_dir / CKPT.format(self.epochs_done),
            {
                "episode_idx": self.episode_idx,
                "episode": None if self.episode is None else self.episode.state_dict(),
                "policy": self.policy.state_dict(),
                "tally": self.tally,
                "rng": rng_state(),
                "log_bytes": log_sizes(self.run.path, LOGS),
            },
            "state_*.pt",
        )

    def restore(self, path: Path) -> None:
        """Continue from checkpoint `path`; log lines written after it are dropped."""
        state = load_checkpoint(path)
        rewind_logs(self.run.path, state["log_bytes"])
        self.episode_idx = state["episode_idx"]
        self.tally = state["tally"]
        self.policy.load_state_dict(state["policy"])
        if state["episode"] is not None:
            seed = episode_seed(self.cfg["seed"], self.episode_idx)
            self.episode = Episode(self.cfg, self.data, self.task, seed, self.device)
            self.episode.load_state_dict(state["episode"])
        set_rng_state(state["rng"])


def train_host(
    cfg: dict[str, Any],
    run: RunDir,
    data: ImageData | TokenData,
    *,
    pause_at: int | None = None,
    heartbeat_s: float = 5.0,
) -> dict[str, Any]:
    """Run (or continue) every episode of `run`, then write summary.json and the figures.

    `pause_at=K` requests a pause after K epochs in all (as `touch control/pause.request` would).
    """
    hr = HostRun(cfg, run, data)
    latest = latest_checkpoint(run.path / "checkpoints", "state_*.pt")
    if latest is not None:
        hr.restore(latest)
    else:
        for name in LOGS:  # a first attempt that died before its first checkpoint left partial logs
            (run.path / name).unlink(missing_ok=True)
    for name in LOGS:
        (run.path / name).touch()
    total = hr.total_epochs
    started = time.perf_counter()
    # The heartbeat also draws the progress bar (labkit.progress).
    with Heartbeat(run.path, PHASE, total, step=hr.epochs_done, min_interval_s=heartbeat_s) as hb:
        # An epoch is long next to one stat() call, so the request file is checked every epoch.
        pause = PauseControl(run.path, PHASE, heartbeat=hb, min_interval_s=0)
        while hr.epochs_done < total:
            if hr.episode is None:
                hr.start_episode()
            record = hr.step()
            if hr.episode.done:
                hr.finish_episode()
            done = hr.epochs_done
            saved = hr.checkpoint() if done % cfg["checkpoint_every"] == 0 else None
            hb.beat(done, metrics=jsonable({k: record[k] for k in BEAT_KEYS}), checkpoint=saved)
            if done == pause_at:
                request_pause(run.path, f"train-host --pause_at {pause_at}")
            if done < total and pause.requested():
                ack = pause.acknowledge(done, saved or hr.checkpoint())
                raise Paused(f"paused after epoch {done}/{total} (ack {ack}); rerun to resume")
        summary = summarise(run, cfg, time.perf_counter() - started)
        for name in LOGS:
            run.register_artifact(name)
        for fig in plot_run(run.path):
            run.register_artifact(fig)
        hb.beat(total, metrics=jsonable({"mean_val_loss": summary["val_loss"]["value"]}))
    return summary


BEAT_KEYS = ("episode", "epoch", "val_loss", "val_accuracy", "seed_stage", "action")


def summarise(run: RunDir, cfg: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """summary.json: per-metric means over episodes with bootstrap CIs, from episodes.jsonl."""
    episodes = read_jsonl(run.path / "episodes.jsonl", strict=True).records
    summary: dict[str, Any] = {
        "policy": cfg["policy"],
        "task": cfg["task"]["name"],
        "episodes": len(episodes),
    }
    for key in (
        "val_loss",
        "best_val_loss",
        "val_accuracy",
        "val_perplexity",
        "params_added",
        "fossils",
        "culls",
    ):
        values = [
            e[key] for e in episodes if isinstance(e[key], (int, float)) and math.isfinite(e[key])
        ]
        summary[key] = (
            bootstrap_ci(np.asarray(values, dtype=float), seed=cfg["seed"]).to_dict()
            if values
            else None
        )
    actions = Counter()
    for e in episodes:
        actions.update(e["action_counts"])
    summary["action_counts"] = dict(actions)
    summary["fossil_blueprints"] = dict(
        Counter(b for e in episodes for b in e["fossil_blueprints"])
    )
    summary["wall_s_this_attempt"] = round(wall_s, 3)
    atomic_write_json(run.path / "summary.json", summary)
    run.register_artifact("summary.json")
    return summary
