"""The worker side of an evaluation: play a chunk of one unit's paired episodes through EsperEnv.

Each finished episode is written atomically to `parts/<unit>_<i>.json` (its episodes, steps and
events records), so a chunk cut short by a pause or a crash resumes at its first missing episode.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from esper.config import set_threads
from esper.evaluate.units import Unit
from esper.leyline import SeedStage, TrainingSignals
from esper.simic.env import EsperEnv
from esper.tamiyo import Policy, make_policy
from esper.tamiyo.ppo_policy import load_ppo_policy
from esper.utils.data import ImageData, TokenData, load_task_data
from labkit.atomic import atomic_write_json
from labkit.control import REQUEST
from labkit.determinism import derive_seed
from labkit.errors import Paused
from labkit.heartbeat import jsonable

PARTS = "parts"
EVENT_COUNTS = ("germinated", "fossilized", "culled", "governor_rollback")


def eval_episode_seed(seed: int, episode: int) -> int:
    """Evaluation episode `episode`'s seed: shared by every unit, disjoint from training episodes."""
    return derive_seed(seed, "eval-episode", episode)


def part_path(run_path: Path, unit: Unit, episode: int) -> Path:
    """Where one finished episode of `unit` is kept."""
    return run_path / PARTS / f"{unit.label}_{episode:04d}.json"


def build_policy(unit: Unit, cfg: Mapping[str, Any], env: EsperEnv) -> Policy:
    """The controller of `unit`: a loaded PPO Tamiyo or a baseline."""
    if unit.policy_path is not None:
        return load_ppo_policy(unit.policy_path)
    return make_policy(unit.policy, env.actions, env.task, cfg["heuristic"])


def play_episode(
    env: EsperEnv, policy: Policy, unit: Unit, episode: int, seed: int
) -> dict[str, Any]:
    """One whole episode; its episodes.jsonl record and its steps and events."""
    tag = {"policy": unit.policy, "unit": unit.unit, "episode": episode}
    obs, info = env.reset(seed=seed)
    policy.reset(seed)
    signals = TrainingSignals.from_record(info["signals"])
    first = signals
    steps = [{**tag, "action": None, "mask": None, "reward": None, **info["signals"]}]
    events: list[dict[str, Any]] = []
    ret, parts = 0.0, Counter()
    counts = dict.fromkeys((a.name for a in env.actions), 0)
    by_stage: dict[str, Counter[str]] = defaultdict(Counter)
    tally = dict.fromkeys(EVENT_COUNTS, 0)
    fossil_blueprints: list[str] = []
    done = False
    while not done:
        mask = env.action_masks()
        action = env.actions(policy.act(obs, mask, signals.policy))
        stage = SeedStage(signals.policy.seed_stage).name
        obs, reward, done, _, info = env.step(action)
        signals = TrainingSignals.from_record(info["signals"])
        ret += reward
        parts.update({k: v for k, v in info["reward_parts"].items() if k != "total"})
        counts[action.name] += 1
        by_stage[stage][action.name] += 1
        for event in info["events"]:
            tally[event["kind"]] = tally.get(event["kind"], 0) + 1
            if event["kind"] == "fossilized":
                fossil_blueprints.append(event["blueprint"])
            events.append({**tag, **event})
        steps.append(
            {
                **tag,
                "action": action.name,
                "mask": info["mask"],
                "reward": reward,
                "reward_parts": info["reward_parts"],
                **info["signals"],
            }
        )
    record = {
        **tag,
        "source": unit.source,
        "seed": seed,
        "return": ret,
        "reward_parts": dict(sorted(parts.items())),
        "epochs": signals.policy.epoch,
        "val_loss": signals.policy.val_loss,
        "best_val_loss": signals.policy.best_val_loss,
        "val_accuracy": signals.val_accuracy,
        "val_perplexity": signals.val_perplexity,
        "test_loss": signals.test_loss,
        "test_accuracy": signals.test_accuracy,
        "test_perplexity": signals.test_perplexity,
        "initial_val_loss": first.policy.val_loss,
        "params_added": signals.host_params - first.host_params,
        "germinations": tally["germinated"],
        "fossils": tally["fossilized"],
        "culls": tally["culled"],
        "rollbacks": tally["governor_rollback"],
        "fossil_blueprints": fossil_blueprints,
        "action_counts": counts,
        "actions_by_stage": {s: dict(c) for s, c in sorted(by_stage.items())},
    }
    return jsonable({"episode": record, "steps": steps, "events": events}, "episode")


def run_chunk(name: str, task: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Executor entry: play the episodes of one chunk that have no part yet; stop early on a pause."""
    cfg = task["cfg"]
    unit = Unit(**task["unit"])
    set_threads(cfg["threads"])
    data: ImageData | TokenData = load_task_data(cfg["task"]["task_type"], cfg["data"])
    env = EsperEnv(cfg, data)
    policy = build_policy(unit, cfg, env)
    played = 0
    for episode in task["episodes"]:
        path = part_path(run_dir, unit, episode)
        if path.exists():
            continue
        if (run_dir / REQUEST).exists():
            raise Paused(f"{name}: paused before episode {episode}")
        started = time.perf_counter()
        out = play_episode(env, policy, unit, episode, eval_episode_seed(cfg["seed"], episode))
        out["wall_s"] = round(time.perf_counter() - started, 3)
        atomic_write_json(path, out)
        played += 1
    return {"played": played}


def read_part(path: Path) -> dict[str, Any]:
    """One episode's saved records."""
    return json.loads(path.read_text(encoding="utf-8"))
