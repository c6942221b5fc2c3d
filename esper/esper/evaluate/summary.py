"""summary.json from episodes.jsonl: per-policy means with BCa CIs, paired deltas, the §8 verdicts.

Units: a PPO unit is one training seed (the mean over its episodes); a baseline's unit is an
episode. A paired delta PPO - baseline is, per training seed, the mean over the episode seeds both
ran of (PPO return - baseline return); its CI is over the training seeds.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from labkit.stats import bootstrap_ci

METRICS = (
    "return",
    "val_loss",
    "val_accuracy",
    "val_perplexity",
    "params_added",
    "fossils",
    "culls",
)
PAIRED_METRICS = ("return", "val_loss", "val_accuracy", "val_perplexity")
LEARNED = "ppo"
BASELINES = ("random", "heuristic", "static")
WAIT_FLAG = 0.9  # a policy that WAITs in more than 90 % of epochs has collapsed (design §8)
HEURISTIC_MARGIN = 0.05  # PPO >= heuristic: CI low > -5 % of |heuristic mean| (design §8)


def _value(x: Any) -> float:
    # jsonable() wrote non-finite floats as strings ("inf", "nan"); None means "not measured".
    return math.nan if x is None else float(x)


def _finite(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    return arr[np.isfinite(arr)]


def policy_order(episodes: list[dict[str, Any]]) -> list[str]:
    """Policies present, PPO first then the baselines in a fixed order."""
    present = {e["policy"] for e in episodes}
    return [p for p in (LEARNED, *BASELINES) if p in present]


def unit_values(episodes: list[dict[str, Any]], policy: str, metric: str) -> np.ndarray:
    """One value per unit: the per-seed mean for PPO, each episode for a baseline (finite only)."""
    rows = [e for e in episodes if e["policy"] == policy]
    if policy != LEARNED:
        return _finite(_value(e[metric]) for e in rows)
    by_unit: dict[int, list[float]] = defaultdict(list)
    for e in rows:
        by_unit[e["unit"]].append(_value(e[metric]))
    means = [
        np.mean(_finite(v)) if len(_finite(v)) else math.nan for _, v in sorted(by_unit.items())
    ]
    return _finite(means)


def paired_deltas(
    episodes: list[dict[str, Any]], baseline: str, metric: str, *, by: str = "unit"
) -> dict[int, float]:
    """PPO - baseline on shared episode seeds (finite pairs only), averaged per `by`.

    `by="unit"`: one value per PPO training seed (the unit of the CIs); `by="seed"`: one per
    held-out episode seed, averaged over training seeds (the episode-level check).
    """
    base = {e["seed"]: _value(e[metric]) for e in episodes if e["policy"] == baseline}
    diffs: dict[int, list[float]] = defaultdict(list)
    for e in episodes:
        if e["policy"] == LEARNED and e["seed"] in base:
            d = _value(e[metric]) - base[e["seed"]]
            if math.isfinite(d):
                diffs[e[by]].append(d)
    return {key: float(np.mean(d)) for key, d in sorted(diffs.items()) if d}


def _ci(values: np.ndarray, seed: int) -> dict[str, Any] | None:
    return bootstrap_ci(values, seed=seed).to_dict() if values.size else None


def action_shares(episodes: list[dict[str, Any]], policy: str) -> dict[str, Any]:
    """Share of each action over all epochs of `policy`, overall and by the stage it was taken in."""
    rows = [e for e in episodes if e["policy"] == policy]
    total: Counter[str] = Counter()
    by_stage: dict[str, Counter[str]] = defaultdict(Counter)
    for e in rows:
        for stage, counts in e["actions_by_stage"].items():
            by_stage[stage].update(counts)
            total.update(counts)
    n = sum(total.values())  # every episode has at least one epoch
    wait = total["WAIT"] / n
    return {
        "epochs": n,
        "shares": {a: c / n for a, c in sorted(total.items())},
        "by_stage": {s: dict(sorted(c.items())) for s, c in sorted(by_stage.items())},
        "wait_share": wait,
        "wait_collapse": wait > WAIT_FLAG,
    }


def _verdict_random(ci: dict[str, Any] | None, episode_ci: dict[str, Any] | None) -> dict[str, Any]:
    if ci is None or ci["low"] is None:
        return {"holds": None, "text": "undetermined: fewer than 2 PPO training seeds with pairs"}
    if ci["low"] > 0:
        robust = episode_ci is not None and episode_ci["low"] is not None and episode_ci["low"] > 0
        caveat = (
            "; the episode-level CI is above 0 too"
            if robust
            else "; but the episode-level CI includes 0: the gain rests on these episode seeds"
        )
        return {
            "holds": True,
            "robust_to_episodes": robust,
            "text": f"PPO > random: the paired return CI lies above 0{caveat}",
        }
    if ci["high"] < 0:
        return {"holds": False, "text": "PPO < random: the paired return CI lies below 0"}
    return {"holds": False, "text": "not shown: the paired return CI includes 0"}


def _verdict_heuristic(ci: dict[str, Any] | None, heuristic_mean: float) -> dict[str, Any]:
    margin = -HEURISTIC_MARGIN * abs(heuristic_mean)
    if ci is None or ci["low"] is None:
        return {
            "holds": None,
            "margin": margin,
            "text": "undetermined: fewer than 2 PPO training seeds with pairs",
        }
    if ci["low"] > margin:
        return {
            "holds": True,
            "margin": margin,
            "text": f"PPO >= heuristic: paired CI low {ci['low']:.4g} > margin {margin:.4g}",
        }
    return {
        "holds": False,
        "margin": margin,
        "text": f"not shown: paired CI low {ci['low']:.4g} <= margin {margin:.4g}",
    }


def summarise_episodes(episodes: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """The evaluation summary of `episodes` (CIs seeded by `seed`)."""
    policies = policy_order(episodes)
    out: dict[str, Any] = {"policies": {}, "paired": {}, "verdicts": {}}
    for p in policies:
        rows = [e for e in episodes if e["policy"] == p]
        units = sorted({e["unit"] for e in rows}) if p == LEARNED else None
        entry: dict[str, Any] = {
            "episodes": len(rows),
            "units": units,
            "unit": "training seed" if p == LEARNED else "episode",
        }
        for metric in METRICS:
            entry[metric] = _ci(unit_values(episodes, p, metric), seed)
        entry["actions"] = action_shares(episodes, p)
        if p == LEARNED:  # a collapse of one training seed hides in the pooled share
            entry["actions"]["wait_share_by_unit"] = {
                str(u): action_shares([e for e in rows if e["unit"] == u], p)["wait_share"]
                for u in units
            }
            entry["actions"]["collapsed_units"] = [
                u for u in units if entry["actions"]["wait_share_by_unit"][str(u)] > WAIT_FLAG
            ]
        out["policies"][p] = entry
    if LEARNED not in policies:
        return out
    for base in (b for b in BASELINES if b in policies):
        out["paired"][f"ppo-{base}"] = {
            metric: _paired(episodes, base, metric, seed) for metric in PAIRED_METRICS
        }
    if "random" in policies:
        ret = out["paired"]["ppo-random"]["return"]
        out["verdicts"]["ppo_beats_random"] = _verdict_random(ret["ci"], ret["episode_level_ci"])
    heuristic = out["policies"].get("heuristic", {}).get("return")
    if heuristic is not None and heuristic["value"] is not None:
        out["verdicts"]["ppo_at_least_heuristic"] = _verdict_heuristic(
            out["paired"]["ppo-heuristic"]["return"]["ci"], heuristic["value"]
        )
    return out


def _paired(episodes: list[dict[str, Any]], base: str, metric: str, seed: int) -> dict[str, Any]:
    deltas = paired_deltas(episodes, base, metric)
    by_episode = list(paired_deltas(episodes, base, metric, by="seed").values())
    return {
        "per_unit": {str(u): d for u, d in deltas.items()},
        "ci": _ci(np.asarray(list(deltas.values()), dtype=float), seed),
        # Every seed plays the same episodes, so the seed-level CI is conditional on them; this
        # CI over episode seeds (each the mean over training seeds) shows how much they matter.
        "episode_level_ci": _ci(np.asarray(by_episode, dtype=float), seed),
    }
