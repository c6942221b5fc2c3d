"""train-tamiyo figures, drawn only from the run's saved logs: the return curve and PPO diagnostics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from labkit.errors import MissingInputError
from labkit.jsonl import read_jsonl
from labkit.stamp import rehearsed, save_figure

DIAGNOSTICS = (
    ("entropy", "entropy / log #legal"),
    ("approx_kl", "approx KL"),
    ("clip_fraction", "clip fraction"),
    ("explained_variance", "explained variance"),
    ("value_loss", "value loss"),
    ("wait_share", "WAIT share"),
)


def _records(run: Path, name: str) -> list[dict[str, Any]]:
    path = run / name
    if not path.is_file():
        raise MissingInputError(f"{path} not found: is {run} a train-tamiyo run?")
    return read_jsonl(path).records


def plot_returns(
    updates: list[dict], episodes: list[dict], held: list[dict], path: Path, *, rehearsal: bool
) -> Path:
    """Training episode returns (dots), their per-update mean, and held-out random / greedy PPO bands."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(
        [e["update"] for e in episodes],
        [e["return"] for e in episodes],
        s=6,
        alpha=0.35,
        label="training episode",
    )
    ax.plot(
        [u["update"] for u in updates],
        [u["mean_return"] for u in updates],
        lw=2,
        label="update mean",
    )
    last = max((u["update"] for u in updates), default=0)
    for policy, colour in (("random", "tab:red"), ("ppo", "tab:green")):
        r = np.array([h["return"] for h in held if h["policy"] == policy], dtype=float)
        if r.size:
            m, s = r.mean(), r.std()
            label = "random (held out)" if policy == "random" else "greedy PPO (held out)"
            ax.axhline(m, color=colour, ls="--", label=f"{label}: {m:.2f}")
            ax.fill_between([0, last], m - s, m + s, color=colour, alpha=0.12)
    ax.set_xlabel("PPO update")
    ax.set_ylabel("episode return")
    ax.legend(fontsize=8)
    return save_figure(fig, path, rehearsal=rehearsal)


def plot_diagnostics(updates: list[dict], path: Path, *, rehearsal: bool) -> Path:
    """Entropy, KL, clip fraction, explained variance, value loss and WAIT share per update."""
    fig = Figure(figsize=(9, 5), layout="constrained")
    x = [u["update"] for u in updates]
    for i, (key, title) in enumerate(DIAGNOSTICS):
        ax = fig.add_subplot(2, 3, i + 1)
        ax.plot(x, [float(u[key]) for u in updates], marker=".")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("update", fontsize=8)
    return save_figure(fig, path, rehearsal=rehearsal)


def plot_training(run_dir: str | os.PathLike) -> list[Path]:
    """Both train-tamiyo figures into `figures/`; the paths written."""
    run = Path(run_dir)
    updates = _records(run, "ppo_updates.jsonl")
    episodes = _records(run, "episodes.jsonl")
    held = _records(run, "heldout.jsonl")
    out = run / "figures"
    out.mkdir(exist_ok=True)
    return [
        plot_returns(updates, episodes, held, out / "ppo_returns.png", rehearsal=rehearsed(run)),
        plot_diagnostics(updates, out / "ppo_diagnostics.png", rehearsal=rehearsed(run)),
    ]
