"""Evaluation figures drawn only from a run's saved JSONL: return CIs, action histograms by stage,
paired seed timelines, and PPO learning curves against the random and heuristic bands."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from esper.evaluate.summary import LEARNED, paired_deltas, policy_order, unit_values
from esper.leyline import SeedStage
from esper.utils.plots import STAGE_COLOURS
from labkit.errors import MissingInputError
from labkit.jsonl import read_jsonl
from labkit.stamp import rehearsed, save_figure
from labkit.stats import bootstrap_ci

TIMELINE_EPISODES = 3
POLICY_COLOURS = {
    "ppo": "tab:blue",
    "heuristic": "tab:green",
    "random": "tab:orange",
    "static": "tab:grey",
}
SMOOTH = 10  # episodes in the moving average of a training curve


def _label(record: dict[str, Any]) -> str:
    return record["policy"] if record["unit"] is None else f"{record['policy']} s{record['unit']}"


def _dots_and_ci(ax: Any, x: int, values: np.ndarray, colour: str) -> None:
    jitter = np.linspace(-0.15, 0.15, values.size) if values.size > 1 else np.zeros(values.size)
    ax.scatter(x + jitter, values, color=colour, alpha=0.5, s=14)
    ci = bootstrap_ci(values, seed=0)
    if ci.low is not None:
        err = [[ci.value - ci.low], [ci.high - ci.value]]
        ax.errorbar(x, ci.value, yerr=err, fmt="o", color="black", capsize=6, lw=1.5)


def plot_return_ci(episodes: list[dict[str, Any]], path: Path, *, rehearsal: bool) -> Path:
    """Left: mean return per policy with its 95 % BCa CI over the units (dots). Right: the paired
    return delta PPO - baseline per training seed (dots) with its CI, the evidence of design §8."""
    names = policy_order(episodes)
    bases = [b for b in names if b != LEARNED] if LEARNED in names else []
    fig = Figure(figsize=(10 if bases else 6, 4))
    axes = fig.subplots(1, 2 if bases else 1, squeeze=False)[0]
    for x, policy in enumerate(names):
        _dots_and_ci(axes[0], x, unit_values(episodes, policy, "return"), POLICY_COLOURS[policy])
    axes[0].set_xticks(range(len(names)), names)
    axes[0].set_ylabel("episode return")
    axes[0].set_title("return: mean, 95% BCa CI (dots: PPO seeds / baseline episodes)", fontsize=9)
    if bases:
        for x, base in enumerate(bases):
            deltas = np.asarray(list(paired_deltas(episodes, base, "return").values()))
            _dots_and_ci(axes[1], x, deltas, POLICY_COLOURS[base])
        axes[1].axhline(0, color="grey", lw=0.8)
        axes[1].set_xticks(range(len(bases)), [f"PPO - {b}" for b in bases])
        axes[1].set_ylabel("paired return difference")
        axes[1].set_title("paired by episode seed; dots: training seeds", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, rehearsal=rehearsal)


def plot_action_histograms(episodes: list[dict[str, Any]], path: Path, *, rehearsal: bool) -> Path:
    """Per policy: how often each action was taken, stacked by the seed stage it was taken in."""
    policies = policy_order(episodes)
    fig = Figure(figsize=(4 * len(policies), 3.6))
    axes = fig.subplots(1, len(policies), squeeze=False)[0]
    actions = list(episodes[0]["action_counts"])
    stages_seen: set[str] = set()
    for ax, policy in zip(axes, policies, strict=True):
        by_stage: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(actions)))
        for e in episodes:
            if e["policy"] == policy:
                for stage, counts in e["actions_by_stage"].items():
                    by_stage[stage] += [counts.get(a, 0) for a in actions]
        total = sum(v.sum() for v in by_stage.values()) or 1
        bottom = np.zeros(len(actions))
        for stage in SeedStage:
            if stage.name in by_stage:
                share = by_stage[stage.name] / total
                ax.bar(
                    range(len(actions)),
                    share,
                    bottom=bottom,
                    color=STAGE_COLOURS.get(stage, "white"),
                    edgecolor="black",
                    lw=0.3,
                )
                bottom += share
                stages_seen.add(stage.name)
        ax.set_xticks(
            range(len(actions)),
            [a.replace("GERMINATE_", "G_") for a in actions],
            rotation=60,
            fontsize=7,
        )
        ax.set_title(policy, fontsize=9)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("share of epochs")
    patches = [
        Patch(color=STAGE_COLOURS.get(s, "white"), label=s.name)
        for s in SeedStage
        if s.name in stages_seen
    ]
    fig.legend(handles=patches, loc="upper center", ncol=len(patches), fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    return save_figure(fig, path, rehearsal=rehearsal)


def plot_seed_timelines(steps: list[dict[str, Any]], path: Path, *, rehearsal: bool) -> Path:
    """The first paired episodes (rows) under each policy (columns; PPO's lowest seed): stage, alpha, loss."""
    runs: dict[tuple[str, Any, int], list[dict[str, Any]]] = defaultdict(list)
    for r in steps:
        runs[(r["policy"], r["unit"], r["episode"])].append(r)
    policies = policy_order(steps)
    first_unit = min((u for p, u, _ in runs if p == LEARNED), default=None)
    shown_eps = sorted({ep for _, _, ep in runs})[:TIMELINE_EPISODES]
    fig = Figure(figsize=(3.4 * len(policies), 1.7 * len(shown_eps) + 0.9))
    axes = fig.subplots(len(shown_eps), len(policies), squeeze=False, sharey=True)
    for col, policy in enumerate(policies):
        unit = first_unit if policy == LEARNED else None
        for row, ep in enumerate(shown_eps):
            ax, rows = axes[row, col], runs.get((policy, unit, ep), [])
            for r in rows:
                if r["action"] is not None:
                    colour = STAGE_COLOURS.get(SeedStage(r["seed_stage"]), "white")
                    ax.axvspan(r["epoch"] - 1, r["epoch"], color=colour, lw=0)
            ax.plot(
                [r["epoch"] for r in rows],
                [r["seed_alpha"] for r in rows],
                color="black",
                lw=1,
                drawstyle="steps-pre",
            )
            ax.set_ylim(-0.05, 1.05)
            twin = ax.twinx()
            twin.plot(
                [r["epoch"] for r in rows], [float(r["val_loss"]) for r in rows], color="grey", lw=1
            )
            twin.tick_params(labelsize=6)
            if row == 0:
                ax.set_title(policy if unit is None else f"{policy} s{unit}", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"episode {ep}\nalpha", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    patches = [Patch(color=c, label=s.name) for s, c in STAGE_COLOURS.items()]
    fig.legend(handles=patches, loc="upper center", ncol=5, fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    return save_figure(fig, path, rehearsal=rehearsal)


def plot_learning_curves(
    training: list[dict[str, Any]], episodes: list[dict[str, Any]], path: Path, *, rehearsal: bool
) -> Path:
    """PPO training return per episode (thin: each seed; thick: their mean, smoothed), with the
    evaluation's random and heuristic mean-return CIs as bands."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    by_unit: dict[int, list[float]] = defaultdict(list)
    for r in training:
        by_unit[r["unit"]].append(float(r["return"]))
    for unit, returns in sorted(by_unit.items()):
        ax.plot(
            range(1, len(returns) + 1),
            returns,
            lw=0.6,
            alpha=0.35,
            color=POLICY_COLOURS["ppo"],
            label=f"PPO s{unit}",
        )
    shortest = min(len(v) for v in by_unit.values())
    mean = np.mean([v[:shortest] for v in by_unit.values()], axis=0)
    k = min(SMOOTH, shortest)
    smooth = np.convolve(mean, np.ones(k) / k, mode="valid")
    ax.plot(
        range(k, shortest + 1),
        smooth,
        lw=2.2,
        color=POLICY_COLOURS["ppo"],
        label=f"PPO mean ({k}-episode average)",
    )
    for base in ("random", "heuristic", "static"):
        ci = bootstrap_ci(unit_values(episodes, base, "return"), seed=0)
        if ci.low is not None:
            ax.axhspan(
                ci.low, ci.high, color=POLICY_COLOURS[base], alpha=0.25, label=f"{base} (eval CI)"
            )
    ax.set_xlabel("training episode")
    ax.set_ylabel("return")
    ax.set_title("PPO training returns (sampled actions) vs baseline evaluation CIs", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path, rehearsal=rehearsal)


def plot_evaluation(run_path: str | os.PathLike) -> list[Path]:
    """Draw every evaluation figure from the run's JSONL into `figures/`; returns the files written."""
    run_path = Path(run_path)
    episodes = read_jsonl(run_path / "episodes.jsonl").records
    steps = read_jsonl(run_path / "steps.jsonl").records
    if not episodes or not steps:
        raise MissingInputError(f"{run_path} has no evaluation episodes to plot")
    out, stamp = run_path / "figures", rehearsed(run_path)
    figures = [
        plot_return_ci(episodes, out / "return_ci.png", rehearsal=stamp),
        plot_action_histograms(episodes, out / "action_histograms.png", rehearsal=stamp),
        plot_seed_timelines(steps, out / "seed_timelines.png", rehearsal=stamp),
    ]
    training = read_jsonl(run_path / "ppo_training.jsonl").records
    if training:
        figures.append(
            plot_learning_curves(training, episodes, out / "learning_curves.png", rehearsal=stamp)
        )
    return figures
