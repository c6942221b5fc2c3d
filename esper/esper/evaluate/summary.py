"""summary.json from episodes.jsonl: the headline paired test-loss comparison, per-policy means, verdicts.

Headline: the final TEST loss (and accuracy or perplexity), paired on shared episode seeds, against
static, heuristic and random. Its CI is a hierarchical bootstrap (labkit.hierarchical): training
seeds are resampled, then the episodes within them, so neither the seeds nor the episodes are held
fixed; every seed plays the same episode seeds, so one episode draw serves all drawn seeds of a
resample (crossed). A baseline has one group (its episodes). Verdicts are judged on it, with the heuristic margin
stated in nats. Return is secondary: paired return deltas with BCa CIs over training seeds (and over
episode seeds as a check). Per-policy means: a PPO unit is one training seed (the mean over its
episodes); a baseline's unit is an episode.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from labkit.hierarchical import hierarchical_bootstrap_ci
from labkit.stats import bootstrap_ci

METRICS = (
    "test_loss",
    "test_accuracy",
    "test_perplexity",
    "return",
    "val_loss",
    "val_accuracy",
    "val_perplexity",
    "params_added",
    "fossils",
    "culls",
)
PAIRED_METRICS = ("return", "val_loss", "val_accuracy", "val_perplexity")
HEADLINE_METRICS = ("test_loss", "test_accuracy", "test_perplexity")
LEARNED = "ppo"
BASELINES = ("random", "heuristic", "static")
WAIT_FLAG = 0.9  # a policy that WAITs in more than 90 % of epochs has collapsed (design §8)


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


def paired_groups(
    episodes: list[dict[str, Any]], policy: str, baseline: str, metric: str
) -> list[np.ndarray]:
    """`policy` - `baseline` per episode seed, one group per PPO training seed (a baseline policy is
    one group), on the episode seeds where every group and the baseline have a finite value, in
    episode-seed order: the groups are aligned (crossed), since every unit plays the same episodes."""
    base = {e["seed"]: _value(e[metric]) for e in episodes if e["policy"] == baseline}
    by_group: dict[int, dict[int, float]] = defaultdict(dict)
    for e in episodes:
        if e["policy"] == policy and e["seed"] in base:
            by_group[e["unit"] if policy == LEARNED else 0][e["seed"]] = (
                _value(e[metric]) - base[e["seed"]]
            )
    shared = sorted(
        s
        for s in base
        if by_group and all(math.isfinite(g.get(s, math.nan)) for g in by_group.values())
    )
    if not shared:
        return []
    return [np.array([g[s] for s in shared]) for _, g in sorted(by_group.items())]


def headline(episodes: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """Paired final-test deltas with hierarchical CIs: every policy - static, PPO - each baseline."""
    policies = policy_order(episodes)
    pairs = [(p, "static") for p in policies if p != "static" and "static" in policies]
    if LEARNED in policies:
        pairs += [(LEARNED, b) for b in ("heuristic", "random") if b in policies]
    out: dict[str, Any] = {}
    for policy, base in pairs:
        entry = {}
        for metric in HEADLINE_METRICS:
            groups = paired_groups(episodes, policy, base, metric)
            entry[metric] = (
                hierarchical_bootstrap_ci(groups, seed=seed, crossed=True).to_dict()
                if groups
                else None
            )
        out[f"{policy}-{base}"] = entry
    return out


def _verdict_lower(ci: dict[str, Any] | None, other: str, margin: float = 0.0) -> dict[str, Any]:
    """PPO's final test loss below `other`'s (by more than -margin nats): the CI's high end < margin."""
    claim = f"PPO < {other}" if margin == 0 else f"PPO <= {other} + {margin:g} nats"
    if ci is None or ci["low"] is None or ci["n"] < 2:
        # One training seed says nothing about the next: the seed level needs at least two.
        return {
            "holds": None,
            "margin_nats": margin,
            "text": "undetermined: fewer than 2 PPO training seeds with pairs",
        }
    span = f"test-loss delta {ci['value']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]"
    if ci["high"] < margin:
        return {"holds": True, "margin_nats": margin, "text": f"{claim} on final test loss: {span}"}
    if margin == 0 and ci["low"] > 0:
        return {
            "holds": False,
            "margin_nats": margin,
            "text": f"PPO > {other} on final test loss (worse): {span}",
        }
    return {"holds": False, "margin_nats": margin, "text": f"not shown ({claim}): {span}"}


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


def summarise_episodes(
    episodes: list[dict[str, Any]], seed: int, heuristic_margin_nats: float
) -> dict[str, Any]:
    """The evaluation summary of `episodes` (CIs seeded by `seed`)."""
    policies = policy_order(episodes)
    out: dict[str, Any] = {
        "headline": headline(episodes, seed),
        "policies": {},
        "paired": {},
        "verdicts": {},
    }
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
    head = out["headline"]
    for base, key, margin in (
        ("static", "ppo_beats_static", 0.0),
        ("heuristic", "ppo_at_least_heuristic", heuristic_margin_nats),
        ("random", "ppo_beats_random", 0.0),
    ):
        if f"ppo-{base}" in head:
            out["verdicts"][key] = _verdict_lower(head[f"ppo-{base}"]["test_loss"], base, margin)
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
