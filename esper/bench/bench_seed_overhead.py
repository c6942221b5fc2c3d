"""Host epoch time with a live seed vs without, per blueprint, as ratios measured in one run.

    python bench/bench_seed_overhead.py                       # both local configs
    python bench/bench_seed_overhead.py --config configs/cifar10_local.yaml --repeats 9 --out r.json

For each blueprint the bare host and the host with that seed train the same pre-drawn batches in
alternation (so machine load hits both alike); the ratio is median(seeded) / median(bare), with
the seed in TRAINING (incubator: seed forward + backward + its own optimiser) and in BLENDING.
Ratios of process CPU time are the headline (other jobs on a shared machine inflate wall time
but not the CPU time this process spends); wall-time ratios are reported beside them.
Goal: <= 1.10x for the small blueprints.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from esper.config import load_esper_config, set_threads, task_config
from esper.kasmina import BlueprintRegistry
from esper.tolaria import Episode, train_epoch
from esper.utils.data import load_task_data
from labkit.atomic import atomic_write_json
from labkit.cli import run_cli
from labkit.determinism import seed_everything

HERE = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = [
    HERE / "configs" / "cifar10_local.yaml",
    HERE / "configs" / "tinystories_local.yaml",
]


def _episode(cfg: dict[str, Any], data: Any, blueprint: str | None, stage: str) -> Episode:
    ep = Episode(cfg, data, task_config(cfg, data), seed=0)
    ep.reset()
    if blueprint is not None:
        ep.apply(ep.model.actions[f"GERMINATE_{blueprint.upper()}"])
        ep.model.step_epoch(0)  # -> TRAINING
        if stage == "BLENDING":
            ep.model.step_epoch(1)
            ep.apply(ep.model.actions.ADVANCE)
            ep.model.step_epoch(2)  # alpha 0.18
    return ep


def _epoch_seconds(
    ep: Episode, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one training epoch."""
    optimizers = [ep.host_opt] + ([ep.seed_opt] if ep.seed_opt is not None else [])
    cpu, wall = time.process_time(), time.perf_counter()
    train_epoch(ep.model, batches, optimizers)
    return time.process_time() - cpu, time.perf_counter() - wall


def bench_config(path: Path, repeats: int) -> list[dict[str, Any]]:
    """Ratios for every blueprint of the config's topology, in TRAINING and BLENDING."""
    cfg = load_esper_config(path)
    set_threads(cfg["threads"])
    seed_everything(cfg["seed"])
    data = load_task_data(cfg["task"]["task_type"], cfg["data"])
    batches = list(data.train_batches(torch.Generator().manual_seed(0)))
    bare = _episode(cfg, data, None, "")
    _epoch_seconds(bare, batches)  # warm-up: first-call allocations and kernel choice
    rows = []
    for spec in BlueprintRegistry.list_for_topology(cfg["task"]["topology"]):
        for stage in ("TRAINING", "BLENDING"):
            seeded = _episode(cfg, data, spec.name, stage)
            _epoch_seconds(seeded, batches)
            host, seeded_t = [], []
            for _ in range(repeats):
                host.append(_epoch_seconds(bare, batches))
                seeded_t.append(_epoch_seconds(seeded, batches))
            row = {
                "config": path.name,
                "blueprint": spec.name,
                "stage": stage,
                "seed_params": seeded.model.seed_params(),
                "host_params": seeded.model.host_params(),
            }
            for i, clock in enumerate(("cpu", "wall")):
                h = statistics.median(t[i] for t in host)
                s = statistics.median(t[i] for t in seeded_t)
                row |= {
                    f"host_epoch_{clock}_s": h,
                    f"seeded_epoch_{clock}_s": s,
                    f"ratio_{clock}": s / h,
                }
            rows.append(row)
    return rows


def main(args: argparse.Namespace) -> int:
    """Run the benchmark over the configs, print the table, optionally save JSON."""
    rows = [
        r
        for path in (args.config or DEFAULT_CONFIGS)
        for r in bench_config(Path(path), args.repeats)
    ]
    table = Table(title=f"epoch time with a live seed / without (median of {args.repeats})")
    columns = (
        "config",
        "blueprint",
        "stage",
        "seed params",
        "host epoch CPU s",
        "ratio CPU",
        "ratio wall",
    )
    for col in columns:
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["config"],
            r["blueprint"],
            r["stage"],
            f"{r['seed_params']:,}",
            f"{r['host_epoch_cpu_s']:.3f}",
            f"{r['ratio_cpu']:.3f}x",
            f"{r['ratio_wall']:.3f}x",
        )
    Console().print(table)
    if args.out:
        atomic_write_json(
            args.out, {"repeats": args.repeats, "threads": torch.get_num_threads(), "rows": rows}
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Command line of the benchmark."""
    p = argparse.ArgumentParser(prog="bench_seed_overhead", description=__doc__.splitlines()[0])
    p.add_argument(
        "--config", action="append", help="config(s) to bench (default: both local configs)"
    )
    p.add_argument(
        "--repeats", type=int, default=5, help="alternating timed epochs per blueprint and stage"
    )
    p.add_argument("--out", help="write the rows as JSON here")
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
