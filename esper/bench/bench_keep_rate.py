"""How often a uniform-random Tamiyo keeps (fossilises) a seed, with and without the optional gating.

    python bench/bench_keep_rate.py --config configs/ppo_cifar10_capacity_local.yaml
    python bench/bench_keep_rate.py --config configs/ppo_cifar10_capacity_local.yaml \
        --gating 5,3,10 --gating 2,0,8 --episodes 20000 --out keep.json

Each simulated episode runs the real lifecycle (MorphogeneticModel's masks, stages, dwell, blending
and embargo, then `gate_mask`) under the random baseline policy, without training: the lifecycle
does not depend on the weights. Gating's plateau rule does depend on the validation curve, so the
plateau counter comes from one real static episode of the config. That curve is exact until a seed
first blends (a seed that never blends leaves the host's curve bit-identical); after a cull the
re-germination gate uses the static curve as an approximation. Gating is given as
`min_epoch,min_plateau,min_cull_age`; the table gives P(an episode keeps a seed), P(a germinated
seed is kept), with Wilson 95 % intervals, and the mean germinations per episode.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.stats import binomtest

from esper.config import load_esper_config, set_threads, task_config
from esper.kasmina import MorphogeneticModel, build_host
from esper.leyline import Gating, gate_mask
from esper.tamiyo.policies import RandomPolicy
from esper.tolaria import Episode
from esper.train_host import episode_seed
from esper.utils.data import load_task_data
from labkit.atomic import atomic_write_json
from labkit.cli import run_cli
from labkit.determinism import derive_seed
from labkit.errors import ConfigError

DEFAULT_GATINGS = ("5,3,10",)


def static_plateaus(cfg: dict[str, Any]) -> list[int]:
    """Plateau counter before each decision of one real static episode (WAIT throughout)."""
    data = load_task_data(cfg["task"]["task_type"], cfg["data"])
    task = task_config(cfg, data)
    ep = Episode(cfg, data, task, episode_seed(cfg["seed"], 0))
    ep.reset()
    plateaus = [ep.track.plateau_epochs]
    while not ep.done:
        ep.apply(ep.model.actions.WAIT)
        ep.run_epoch()
        plateaus.append(ep.track.plateau_epochs)
    return plateaus[:-1]


def simulate(
    cfg: dict[str, Any], task: Any, gating: Gating, plateaus: list[int], episodes: int
) -> dict[str, Any]:
    """Random-policy episodes through the real lifecycle: episodes keeping a seed, seeds kept."""
    policy = RandomPolicy()
    kept_episodes = germinated = kept = 0
    for i in range(episodes):
        host = build_host(task.topology, cfg["host"], task.n_outputs, None)
        model = MorphogeneticModel(host, task, cfg["slots"]["enabled"])
        policy.reset(derive_seed(cfg["seed"], "keep-rate", i))
        fossils = 0
        for epoch in range(task.max_epochs):
            live = model.live_slot
            mask = gate_mask(
                model.action_mask(),
                model.actions,
                gating,
                epoch=epoch,
                plateau_epochs=plateaus[epoch],
                seed_age=None if live is None else epoch - live.state.germinated_epoch,
            )
            events = model.apply(policy.act(np.zeros(0), mask, None), epoch)
            events += model.step_epoch(epoch)
            germinated += sum(e.kind == "germinated" for e in events)
            fossils += sum(e.kind == "fossilized" for e in events)
        kept += fossils
        kept_episodes += fossils > 0
    return {
        "gating": gating.__dict__,
        "episodes": episodes,
        "episodes_keeping_a_seed": kept_episodes,
        "p_episode_keeps": _rate(kept_episodes, episodes),
        "germinations": germinated,
        "seeds_kept": kept,
        "p_seed_kept": _rate(kept, germinated),
        "germinations_per_episode": germinated / episodes,
    }


def _rate(k: int, n: int) -> dict[str, float | None]:
    if n == 0:
        return {"value": None, "low": None, "high": None}
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return {"value": k / n, "low": float(ci.low), "high": float(ci.high)}


def parse_gating(text: str) -> Gating:
    """`min_epoch,min_plateau,min_cull_age` -> Gating."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) < 0:
        raise ConfigError(f"--gating {text!r}: want three non-negative integers a,b,c")
    return Gating(*values)


def _fmt(rate: dict[str, float | None]) -> str:
    if rate["value"] is None:
        return "n/a"
    return f"{rate['value']:.4f} [{rate['low']:.4f}, {rate['high']:.4f}]"


def main(args: argparse.Namespace) -> int:
    """Simulate without gating and with each --gating; print the table, optionally save JSON."""
    if args.episodes < 1:
        raise ConfigError("--episodes must be at least 1")
    gatings = [Gating(), *(parse_gating(g) for g in (args.gating or DEFAULT_GATINGS))]
    cfg = load_esper_config(Path(args.config))
    set_threads(cfg["threads"])
    plateaus = static_plateaus(cfg)
    task = task_config(cfg, load_task_data(cfg["task"]["task_type"], cfg["data"]))
    rows = [simulate(cfg, task, g, plateaus, args.episodes) for g in gatings]
    table = Table(title=f"uniform policy, {args.episodes} episodes each, {Path(args.config).name}")
    for col in ("gating (epoch, plateau, cull age)", "P(episode keeps a seed)", "P(seed kept)"):
        table.add_column(col)
    table.add_column("germinations / episode")
    for r in rows:
        g = r["gating"]
        table.add_row(
            f"{g['min_epoch']}, {g['min_plateau']}, {g['min_cull_age']}",
            _fmt(r["p_episode_keeps"]),
            _fmt(r["p_seed_kept"]),
            f"{r['germinations_per_episode']:.2f}",
        )
    Console().print(table)
    if args.out:
        atomic_write_json(
            args.out, {"config": str(args.config), "static_plateaus": plateaus, "rows": rows}
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Command line of the benchmark."""
    p = argparse.ArgumentParser(prog="bench_keep_rate", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="a train-host or train-tamiyo config")
    p.add_argument("--episodes", type=int, default=5000, help="simulated episodes per gating")
    p.add_argument(
        "--gating",
        action="append",
        help="min_epoch,min_plateau,min_cull_age (repeatable; default: the design's 5,3,10)",
    )
    p.add_argument("--out", help="write the rows as JSON here")
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
