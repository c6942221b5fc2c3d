"""Tamiyo training throughput: rollouts on N worker processes vs the lockstep single process.

    python bench/bench_rollout.py                                  # 2 workers, 24 episodes, 2 repeats
    python bench/bench_rollout.py --workers 2 --episodes 24 --repeats 3 --out rollout.json

Each measurement is a whole `python -m esper train-tamiyo` run (start-up, data, worker start,
every update and checkpoint; no held-out episodes) on the capacity-limited CNN config, once with
`--workers 1` (the episodes one after another in one process) and once with `--workers N`. The
two orders alternate between repeats, so a change in machine load hits both alike. Reported:
episodes per hour of each, the ratio lockstep wall / parallel wall per repeat and its median (the
issue's goal is >= 1.7x with 2 workers on 2 cores), the load average around each run (other jobs
on a shared machine take cores from the workers, so only an idle machine gives the real figure),
and whether both runs wrote the same bytes (they must: the worker count changes no log).
~2.5 min on 2 idle cores at the defaults (each run pays ~2 s of worker start-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from labkit.atomic import atomic_write_json
from labkit.cli import run_cli
from labkit.errors import ConfigError

HERE = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = HERE / "configs" / "ppo_cifar10_capacity_local.yaml"
COMPARED = ("episodes.jsonl", "steps.jsonl", "ppo_updates.jsonl", "policy.pt")


def timed_run(config: Path, run_dir: Path, workers: int, episodes: int, extra: list[str]) -> dict:
    """One train-tamiyo run in a fresh interpreter: wall seconds and the 1-minute load around it."""
    argv = [sys.executable, "-m", "esper", "train-tamiyo", "--config", str(config)]
    argv += ["--run_dir", str(run_dir), "--workers", str(workers)]
    argv += [f"ppo.episodes={episodes}", "ppo.baseline_episodes=0", *extra]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=HERE, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(
            f"train-tamiyo --workers {workers} exited {done.returncode}: {done.stderr}"
        )
    return {
        "workers": workers,
        "wall_s": round(wall, 3),
        "episodes_per_hour": round(episodes * 3600 / wall, 1),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def same_bytes(a: Path, b: Path) -> bool:
    """Whether two runs wrote identical logs and policy."""
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in COMPARED)


def measure(
    config: Path, workers: int, episodes: int, repeats: int, extra: list[str]
) -> dict[str, Any]:
    """`repeats` pairs of runs (lockstep, parallel; order alternating) and their wall ratios."""
    pairs = []
    with tempfile.TemporaryDirectory(prefix="bench_rollout_") as tmp:
        for r in range(repeats):
            order = (1, workers) if r % 2 == 0 else (workers, 1)
            runs = {
                w: timed_run(config, Path(tmp) / f"r{r}_w{w}", w, episodes, extra) for w in order
            }
            pairs.append(
                {
                    "lockstep": runs[1],
                    "parallel": runs[workers],
                    "ratio": round(runs[1]["wall_s"] / runs[workers]["wall_s"], 3),
                    "same_bytes": same_bytes(
                        Path(tmp) / f"r{r}_w1", Path(tmp) / f"r{r}_w{workers}"
                    ),
                }
            )
    return {
        "config": str(config),
        "workers": workers,
        "episodes": episodes,
        "overrides": extra,
        "cpu_count": os.cpu_count(),
        "pairs": pairs,
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
        "all_same_bytes": all(p["same_bytes"] for p in pairs),
    }


def main(args: argparse.Namespace) -> int:
    """Measure, print the table and the ratio line, optionally write JSON."""
    if args.workers < 2 or args.episodes < 1 or args.repeats < 1:
        raise ConfigError("--workers must be >= 2, --episodes and --repeats >= 1")
    result = measure(Path(args.config), args.workers, args.episodes, args.repeats, args.overrides)
    table = Table(title=f"train-tamiyo, {args.episodes} episodes per run ({result['config']})")
    for col in ("repeat", "lockstep wall s", "parallel wall s", "ratio", "load (1 min)", "bytes"):
        table.add_column(col)
    for r, p in enumerate(result["pairs"]):
        loads = [p[k][e] for k in ("lockstep", "parallel") for e in ("load_before", "load_after")]
        table.add_row(
            str(r),
            f"{p['lockstep']['wall_s']:.1f}",
            f"{p['parallel']['wall_s']:.1f}",
            f"{p['ratio']:.2f}x",
            f"{min(loads):.1f}-{max(loads):.1f}",
            "same" if p["same_bytes"] else "DIFFER",
        )
    Console().print(table)
    print(
        f"parallel/lockstep throughput ratio ({args.workers} workers): "
        f"{result['median_ratio']:.2f}x (median of {args.repeats}; goal >= 1.7x on 2 idle cores)"
    )
    if args.out:
        atomic_write_json(Path(args.out), result)
    return 0 if result["all_same_bytes"] else 1


def build_parser() -> argparse.ArgumentParser:
    """Command line of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="a ppo_*.yaml config")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the parallel run")
    p.add_argument("--episodes", type=int, default=24, help="training episodes per run")
    p.add_argument("--repeats", type=int, default=2, help="pairs of runs")
    p.add_argument("--out", help="write the result as JSON here")
    p.add_argument("overrides", nargs="*", help="dot-key overrides for both runs")
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
