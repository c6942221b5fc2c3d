"""Figures drawn only from a run's saved JSONL logs: learning curves with seed events, seed timelines."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from esper.leyline import SeedStage
from labkit.errors import MissingInputError
from labkit.jsonl import read_jsonl
from labkit.stamp import rehearsed, save_figure

MAX_TIMELINE_ROWS = 8
STAGE_COLOURS = {
    SeedStage.DORMANT: "#f2f2f2",
    SeedStage.GERMINATED: "#c6dbef",
    SeedStage.TRAINING: "#6baed6",
    SeedStage.BLENDING: "#fd8d3c",
    SeedStage.SHADOWING: "#9e9ac8",
    SeedStage.PROBATIONARY: "#74c476",
    SeedStage.CULLED: "#fb6a4a",
    SeedStage.EMBARGOED: "#fcbba1",
    SeedStage.RESETTING: "#fee0d2",
}
EVENT_MARKERS = {
    "germinated": ("^", "tab:blue"),
    "fossilized": ("*", "tab:green"),
    "culled": ("X", "tab:red"),
    "governor_rollback": ("v", "black"),
}


def _by_episode(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[r["episode"]].append(r)
    return dict(sorted(out.items()))


def _num(x: Any) -> float:
    # jsonable() wrote non-finite floats as strings ("inf", "nan").
    return float(x) if x is not None else float("nan")


def plot_learning_curves(
    steps: list[dict[str, Any]], events: list[dict[str, Any]], path: Path, *, rehearsal: bool
) -> Path:
    """Val (solid) and train (dashed) loss per episode with seed events marked; accuracy or perplexity below."""
    episodes = _by_episode(steps)
    events_by_ep = _by_episode(events)
    lm = any(r.get("val_perplexity") is not None for r in steps)
    fig = Figure(figsize=(8, 7))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for ep, rows in episodes.items():
        x = [r["epoch"] for r in rows]
        (line,) = top.plot(x, [_num(r["val_loss"]) for r in rows], label=f"episode {ep}", lw=1.4)
        top.plot(x, [_num(r["train_loss"]) for r in rows], ls="--", lw=0.8, color=line.get_color())
        key = "val_perplexity" if lm else "val_accuracy"
        bottom.plot(x, [_num(r[key]) for r in rows], color=line.get_color(), lw=1.4)
        loss_at = {r["epoch"]: _num(r["val_loss"]) for r in rows}
        for e in events_by_ep.get(ep, []):
            if e["kind"] in EVENT_MARKERS and e["epoch"] in loss_at:
                marker, colour = EVENT_MARKERS[e["kind"]]
                top.scatter(
                    e["epoch"], loss_at[e["epoch"]], marker=marker, color=colour, s=70, zorder=3
                )
    handles = [
        Line2D([], [], marker=m, color=c, ls="", label=k) for k, (m, c) in EVENT_MARKERS.items()
    ]
    top.legend(handles=top.get_legend_handles_labels()[0][:10] + handles, fontsize=7, ncol=2)
    top.set_ylabel("loss (val solid, train dashed)")
    bottom.set_ylabel("val perplexity" if lm else "val accuracy")
    if lm:
        bottom.set_yscale("log")
    bottom.set_xlabel("epoch")
    top.set_title("learning curves with seed events")
    fig.tight_layout()
    return save_figure(fig, path, rehearsal=rehearsal)


def plot_seed_timeline(steps: list[dict[str, Any]], path: Path, *, rehearsal: bool) -> Path:
    """Per episode: the seed stage in each epoch (colour), alpha (black) and val loss (grey, right axis)."""
    episodes = list(_by_episode(steps).items())[:MAX_TIMELINE_ROWS]
    fig = Figure(figsize=(8, 1.6 * len(episodes) + 0.8))
    axes = fig.subplots(len(episodes), 1, squeeze=False)
    for ax, (ep, rows) in zip(axes[:, 0], episodes, strict=True):
        trained = [r for r in rows if r["action"] is not None]
        for r in trained:
            colour = STAGE_COLOURS.get(SeedStage(r["seed_stage"]), "white")
            ax.axvspan(r["epoch"] - 1, r["epoch"], color=colour, lw=0)
        # alpha holds for a whole epoch: the step ending at epoch t is the alpha epoch t trained with.
        x, alpha = [r["epoch"] for r in rows], [r["seed_alpha"] for r in rows]
        ax.plot(x, alpha, color="black", lw=1.2, drawstyle="steps-pre")
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel(f"ep {ep}\nalpha", fontsize=8)
        twin = ax.twinx()
        twin.plot(
            [r["epoch"] for r in rows], [_num(r["val_loss"]) for r in rows], color="grey", lw=1
        )
        twin.set_ylabel("val loss", fontsize=8)
    axes[-1, 0].set_xlabel("epoch")
    patches = [Patch(color=c, label=s.name) for s, c in STAGE_COLOURS.items()]
    fig.legend(handles=patches, loc="upper center", ncol=5, fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return save_figure(fig, path, rehearsal=rehearsal)


def plot_run(run_dir: str | os.PathLike) -> list[Path]:
    """Draw every figure the run's logs support into `figures/`; returns the files written."""
    run_dir = Path(run_dir)
    steps = read_jsonl(run_dir / "steps.jsonl").records
    if not steps:
        raise MissingInputError(f"{run_dir} has no steps.jsonl records to plot")
    events = read_jsonl(run_dir / "events.jsonl").records
    out, stamp = run_dir / "figures", rehearsed(run_dir)
    return [
        plot_learning_curves(steps, events, out / "learning_curves.png", rehearsal=stamp),
        plot_seed_timeline(steps, out / "seed_timeline.png", rehearsal=stamp),
    ]
