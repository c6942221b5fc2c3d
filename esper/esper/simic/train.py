"""`train-tamiyo`: masked PPO over whole Esper episodes, checkpointed at every update, into a run dir.

Logs: ppo_updates.jsonl (one line per update), episodes.jsonl (one per training episode),
steps.jsonl (one per env step), heldout.jsonl (random before training and the greedy policy after
it, on the same held-out episode seeds). A pause stops at an update boundary (exit 75); rerunning
resumes from the checkpoint and the logs end byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.leyline import OBS_DIM
from esper.simic.figures import plot_training
from esper.simic.ppo import Batch, PPOConfig, gae, ppo_update
from esper.simic.rollout import Rollout
from esper.simic.workers import (
    Actor,
    EpisodeJob,
    GreedyActor,
    RandomActor,
    RolloutPool,
    SampledActor,
)
from esper.tamiyo.network import ActorCritic, log_probs
from esper.tamiyo.normaliser import EmaNormaliser
from esper.tamiyo.ppo_policy import load_ppo_policy, policy_payload
from esper.utils.data import ImageData, TokenData
from labkit.atomic import atomic_write_json
from labkit.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    log_sizes,
    replace_checkpoint,
    rewind_logs,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from labkit.control import PauseControl, request_pause
from labkit.determinism import derive_seed, generator
from labkit.errors import Paused
from labkit.heartbeat import Heartbeat, jsonable
from labkit.jsonl import append_jsonl, read_jsonl
from labkit.rundir import RunDir
from labkit.stats import bootstrap_ci, paired_delta_ci

PHASE = "train_tamiyo"
LOGS = ("ppo_updates.jsonl", "episodes.jsonl", "steps.jsonl", "heldout.jsonl")
CKPT = "update_{:06d}.pt"


def train_seed(seed: int, update: int, env: int) -> int:
    """Episode seed of env `env` in update `update` (disjoint from evaluation's episode_seed)."""
    return derive_seed(seed, "tamiyo-train", update, env)


def sample_seed(seed: int, update: int, env: int) -> int:
    """Seed of the action-sampling stream of env `env` in update `update` (one per episode)."""
    return derive_seed(seed, "tamiyo-sample", update, env)


def heldout_seed(seed: int, j: int) -> int:
    """Seed of held-out episode j, played by random before training and by the policy after."""
    return derive_seed(seed, "tamiyo-heldout", j)


class TamiyoTrainer:
    """The state of a train-tamiyo run between updates; `close()` stops its rollout workers."""

    def __init__(self, cfg: dict[str, Any], run: RunDir, data: ImageData | TokenData):
        self.cfg = cfg
        self.run = run
        self.pc = PPOConfig.from_config(cfg["ppo"])
        self.pool = RolloutPool(cfg, data, self.pc.workers)
        self.env = self.pool.env
        self.task = self.env.task
        torch.manual_seed(derive_seed(cfg["seed"], "tamiyo-net"))
        self.net = ActorCritic(OBS_DIM, len(self.env.actions), self.pc.hidden, self.pc.head_hidden)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.pc.lr, eps=1e-5)
        self.normaliser = EmaNormaliser(OBS_DIM, self.pc.obs_ema)
        self.gen = generator(cfg["seed"], "tamiyo-ppo")
        self.update = 0
        self.baseline_done = False

    def _log(self, name: str, record: dict[str, Any]) -> None:
        # Not fsynced line by line (~70 lines an update; ~2 s of a 24-episode run's wall on a busy
        # disk): `sync_logs` makes them durable once, before a checkpoint counts them.
        append_jsonl(self.run.path / name, jsonable(record), fsync=False)

    def sync_logs(self) -> None:
        """Flush the logs to disk (each line is already written; this makes them durable)."""
        for name in LOGS:
            with open(self.run.path / name, "rb") as fh:
                os.fsync(fh.fileno())

    def close(self) -> None:
        """Stop the rollout worker processes."""
        self.pool.close()

    # -- held-out random baseline ----------------------------------------------------------------
    def heldout(self, policy: str, actor: Actor) -> list[dict[str, Any]]:
        """Play the held-out seeds with `actor` (each episode's stream is its seed)."""
        seeds = [heldout_seed(self.cfg["seed"], j) for j in range(self.pc.baseline_episodes)]
        if not seeds:
            return []
        ro = self.pool.play([EpisodeJob(s, actor, s) for s in seeds])
        records = []
        for j, ep in enumerate(ro.episodes):
            record = {"policy": policy, "heldout": j, **ep}
            self._log("heldout.jsonl", record)
            records.append(record)
        return records

    def random_baseline(self) -> None:
        """The random policy on the held-out seeds, before any update."""
        self.heldout("random", RandomActor())
        self.baseline_done = True

    # -- one PPO update ------------------------------------------------------------------------
    def run_update(self) -> dict[str, Any]:
        """Collect num_envs whole episodes with the current policy, then one PPO update.

        The policy and its observation normaliser are frozen for the whole rollout (so the
        episodes can run in any process, in any order); the normaliser then folds in the
        rollout's observations epoch by epoch, as a lockstep rollout would have.
        """
        seed = self.cfg["seed"]
        actor = SampledActor.freeze(self.net, self.normaliser)
        jobs = [
            EpisodeJob(train_seed(seed, self.update, i), actor, sample_seed(seed, self.update, i))
            for i in range(self.pc.num_envs)
        ]
        ro = self.pool.play(jobs)
        t, n, d = ro.obs.shape
        normalised = actor.normaliser(ro.obs.reshape(t * n, d)).reshape(t, n, d)
        for obs in ro.obs:
            self.normaliser.update(obs)
        batch = self._batch(ro, normalised)
        stats = ppo_update(
            self.net, self.optimizer, batch, self.pc, self.pc.ent_coef_at(self.update), self.gen
        )
        for record in ro.steps:
            self._log("steps.jsonl", {"update": self.update, **record})
        returns = [ep["return"] for ep in ro.episodes]
        for i, ep in enumerate(ro.episodes):
            self._log("episodes.jsonl", {"update": self.update, "env": i, "policy": "ppo", **ep})
        wait = sum(ep["action_counts"]["WAIT"] for ep in ro.episodes) / ro.actions.size
        record = {
            "update": self.update,
            "episodes": (self.update + 1) * self.pc.num_envs,
            "mean_return": float(np.mean(returns)),
            "mean_val_loss": float(np.mean([ep["val_loss"] for ep in ro.episodes])),
            "wait_share": wait,
            **stats,
        }
        self._log("ppo_updates.jsonl", record)
        self.update += 1
        return record

    def _batch(self, ro: Rollout, obs: np.ndarray) -> Batch:
        t, n = ro.actions.shape
        flat_obs = torch.from_numpy(obs.reshape(t * n, -1))
        masks = torch.from_numpy(ro.masks.reshape(t * n, -1))
        actions = torch.from_numpy(ro.actions.reshape(-1))
        with torch.no_grad():
            logits, values = self.net(flat_obs, masks)
            logp = log_probs(logits).gather(1, actions[:, None]).squeeze(1)
        v = values.numpy().astype(np.float64).reshape(t, n)
        # Every rollout ends its episodes, so nothing is bootstrapped past the last step.
        adv, ret = gae(ro.rewards, v, ro.dones, np.zeros(n), self.pc.gamma, self.pc.gae_lambda)
        return Batch(
            obs=flat_obs,
            masks=masks,
            actions=actions,
            logp=logp,
            values=values,
            advantages=torch.from_numpy(adv.reshape(-1)).float(),
            returns=torch.from_numpy(ret.reshape(-1)).float(),
        )

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self) -> Path:
        """Save the learner, generators and log sizes; keep only the latest checkpoint."""
        self.sync_logs()
        ckpt_dir = self.run.path / "checkpoints"
        return replace_checkpoint(
            ckpt_dir / CKPT.format(self.update),
            {
                "update": self.update,
                "baseline_done": self.baseline_done,
                "net": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "normaliser": self.normaliser.state_dict(),
                "gen": self.gen.get_state(),
                "rng": rng_state(),
                "log_bytes": log_sizes(self.run.path, LOGS),
            },
            "update_*.pt",
        )

    def restore(self, path: Path) -> None:
        """Continue from checkpoint `path`; log lines written after it are dropped."""
        state = load_checkpoint(path)
        rewind_logs(self.run.path, state["log_bytes"])
        self.update = state["update"]
        self.baseline_done = state["baseline_done"]
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.normaliser.load_state_dict(state["normaliser"])
        self.gen.set_state(state["gen"])
        set_rng_state(state["rng"])

    def save_policy(self) -> Path:
        """policy.pt: the actor-critic and the frozen normaliser (see tamiyo.ppo_policy)."""
        payload = policy_payload(
            self.net,
            self.normaliser,
            topology=self.task.topology,
            actions=[a.name for a in self.env.actions],
            task=self.task.name,
        )
        return save_checkpoint(self.run.path / "policy.pt", payload)


def train_tamiyo(
    cfg: dict[str, Any],
    run: RunDir,
    data: ImageData | TokenData,
    *,
    pause_at: int | None = None,
    heartbeat_s: float = 5.0,
) -> dict[str, Any]:
    """Run (or continue) every update of `run`; then policy.pt, the held-out check, summary, figures.

    `pause_at=K` requests a pause after update K (as `touch control/pause.request` would).
    """
    tr = TamiyoTrainer(cfg, run, data)
    try:
        return _train(tr, pause_at, heartbeat_s)
    finally:
        tr.close()


def _train(tr: TamiyoTrainer, pause_at: int | None, heartbeat_s: float) -> dict[str, Any]:
    run, cfg = tr.run, tr.cfg
    latest = latest_checkpoint(run.path / "checkpoints", "update_*.pt")
    if latest is not None:
        tr.restore(latest)
    else:
        for name in LOGS:  # a first attempt that died before its first checkpoint left partial logs
            (run.path / name).unlink(missing_ok=True)
    for name in LOGS:
        (run.path / name).touch()
    total = tr.pc.updates
    started = time.perf_counter()
    with Heartbeat(run.path, PHASE, total, step=tr.update, min_interval_s=heartbeat_s) as hb:
        pause = PauseControl(run.path, PHASE, heartbeat=hb, min_interval_s=0)
        if not tr.baseline_done:
            tr.random_baseline()
            hb.beat(0, checkpoint=tr.checkpoint())
        while tr.update < total:
            record = tr.run_update()
            saved = tr.checkpoint()
            keys = ("mean_return", "mean_val_loss", "entropy", "approx_kl", "wait_share")
            hb.beat(tr.update, metrics=jsonable({k: record[k] for k in keys}), checkpoint=saved)
            if tr.update == pause_at:
                request_pause(run.path, f"train-tamiyo --pause_at {pause_at}")
            if tr.update < total and pause.requested():
                ack = pause.acknowledge(tr.update, saved)
                raise Paused(
                    f"paused after update {tr.update}/{total} (ack {ack}); rerun to resume"
                )
        tr.heldout("ppo", GreedyActor(load_ppo_policy(tr.save_policy())))
        tr.sync_logs()
        summary = summarise(run, cfg, time.perf_counter() - started)
        for name in (*LOGS, "policy.pt"):
            run.register_artifact(name)
        for fig in plot_training(run.path):
            run.register_artifact(fig)
        hb.beat(total, metrics=jsonable({"heldout_delta": summary["heldout_ppo_minus_random"]}))
    return summary


def summarise(run: RunDir, cfg: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """summary.json: return curve ends, the held-out greedy-vs-random paired delta, action shares."""
    updates = read_jsonl(run.path / "ppo_updates.jsonl", strict=True).records
    episodes = read_jsonl(run.path / "episodes.jsonl", strict=True).records
    held = read_jsonl(run.path / "heldout.jsonl", strict=True).records
    by = {
        p: sorted((r for r in held if r["policy"] == p), key=lambda r: r["heldout"])
        for p in ("random", "ppo")
    }
    rnd = np.array([r["return"] for r in by["random"]])
    ppo = np.array([r["return"] for r in by["ppo"]])
    seed = cfg["seed"]
    tail = episodes[-max(1, len(episodes) // 4) :]
    counts: dict[str, int] = {}
    for ep in by["ppo"]:
        for name, c in ep["action_counts"].items():
            counts[name] = counts.get(name, 0) + c
    steps = sum(counts.values())
    summary = {
        "task": cfg["task"]["name"],
        "seed": seed,
        "updates": len(updates),
        "training_episodes": len(episodes),
        "first_update_return": updates[0]["mean_return"],
        "last_quarter_return": bootstrap_ci([e["return"] for e in tail], seed=seed).to_dict(),
        "heldout_random_return": bootstrap_ci(rnd, seed=seed).to_dict() if rnd.size else None,
        "heldout_ppo_return": bootstrap_ci(ppo, seed=seed).to_dict() if ppo.size else None,
        "heldout_ppo_minus_random": paired_delta_ci(rnd, ppo, seed=seed).to_dict()
        if rnd.size
        else None,
        "heldout_ppo_action_counts": counts,
        "heldout_ppo_wait_share": counts.get("WAIT", 0) / steps if steps else None,
        "wall_s_this_attempt": round(wall_s, 3),
    }
    atomic_write_json(run.path / "summary.json", summary)
    run.register_artifact("summary.json")
    return summary
