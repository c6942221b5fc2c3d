"""Executors compared: one small sweep run sequentially, in local processes and on Ray.

Run: `python labkit/bench/bench_executors.py` (from the repository root). The sweep is `--runs`
self-check trainings (`labkit.selfcheck:sweep_run`, `--steps` steps each, seeds 0..runs-1). It
runs in turn with LocalExecutor(1) (sequential, in this process), LocalExecutor(`--cpus`) (fresh
spawned processes) and RayExecutor on a local Ray cluster of `--cpus` CPUs started beforehand
(its start-up is reported, not counted: a cluster outlives many sweeps), once as by default (a
worker process serves several runs) and once with `fresh_worker: true` (a new process per run, like
LocalExecutor). Each arm is repeated
`--repeats` times, arms interleaved, and the median wall time is reported as runs per minute and
speed-up over sequential. Every process trains on one thread, so one run needs one core.

The ceiling arm runs the same runs in `--cpus` bare processes, timed from when all have imported
what they need: no executor, no process start, no imports. It is what these cores allow any
executor; on a shared virtual machine two training runs at once each run slower than one alone,
so the ceiling is below `--cpus`x, and Ray is reported as a share of it too.

The scheduling overhead is an empty run function's round trip: through both RayExecutor arms and
LocalExecutor (a fresh process per run), and a bare Ray task on a warm worker (Ray's own floor).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from labkit.executors import Executor, LocalExecutor
from labkit.sweep import SweepPlan, plan_sweep, run_sweep

# Every worker imports this module to find `empty_run`, so torch, ray and the self-check (which
# imports torch) are imported inside the functions that need them: an empty run stays empty.

EMPTY_ENTRY = "bench_executors:empty_run"


def empty_run(name: str, config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A run that does nothing: what is left of its wall time is the executor's overhead."""
    return {}


def make_plan(name: str, runs: int, steps: int, entry: str) -> SweepPlan:
    """`runs` self-check runs of `steps` steps (seeds 0..runs-1) with the given run function."""
    from labkit.selfcheck import DEFAULT_CONFIG

    return plan_sweep(
        {
            "sweep_name": name,
            "base_config": DEFAULT_CONFIG,
            "entry": entry,
            "runs": [
                {"name": f"seed{s}", "overrides": [f"seed={s}", f"train.steps={steps}"]}
                for s in range(runs)
            ],
        }
    )


def timed_sweep(plan: SweepPlan, executor: Executor, out_root: Path) -> float:
    """Wall seconds of one complete sweep into a fresh folder."""
    t0 = time.perf_counter()
    doc = run_sweep(plan, out_root, executor=executor, resume=False)
    wall = time.perf_counter() - t0
    if doc["status"] != "complete":
        raise RuntimeError(f"sweep {plan.name} ended {doc['status']}: {doc['counts']}")
    return wall


def _ceiling_worker(runs: list[Any], out: str, barrier: Any) -> None:
    """One bare process of the ceiling arm: import, wait for the others, then train its share."""
    # torch._dynamo (and torch with it): the first optimizer a run builds imports it, 1-2 s of
    # start-up that is not the run's.
    import torch._dynamo

    from labkit.selfcheck import sweep_run

    torch.set_num_threads(1)
    barrier.wait()
    for run in runs:
        sweep_run(run.name, run.config, Path(out) / run.name)


def ceiling_wall(plan: SweepPlan, cpus: int, out_root: Path) -> float:
    """Wall seconds of the sweep's runs split over `cpus` bare processes, timed after their imports.

    No executor, no process start, no imports: only the runs themselves, `cpus` at a time. This
    is the most any executor can get from these cores, so it shows what the hardware allows
    (on a shared machine two runs at once each run slower than one alone).
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(cpus + 1)
    shares = [list(plan.runs[i::cpus]) for i in range(cpus)]
    procs = [
        ctx.Process(target=_ceiling_worker, args=(share, str(out_root / plan.name), barrier))
        for share in shares
    ]
    for proc in procs:
        proc.start()
    barrier.wait()
    t0 = time.perf_counter()
    for proc in procs:
        proc.join()
    wall = time.perf_counter() - t0
    if any(proc.exitcode for proc in procs):
        raise RuntimeError(f"a ceiling process failed: exit codes {[p.exitcode for p in procs]}")
    return wall


def bare_ray_round_trip(n: int) -> float:
    """Mean seconds of `ray.get(f.remote())` for an empty task on a warm worker."""
    import ray

    noop = ray.remote(num_cpus=1)(lambda: None)
    ray.get(noop.remote())  # start a worker
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(noop.remote())
    return (time.perf_counter() - t0) / n


def main() -> None:
    """Run the three arms and the overhead probes; print a table and optionally write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=6, help="runs in the sweep")
    p.add_argument("--steps", type=int, default=1500, help="training steps of each run")
    p.add_argument("--cpus", type=int, default=2, help="local processes and Ray CPUs")
    p.add_argument("--repeats", type=int, default=2, help="times each arm runs (median kept)")
    p.add_argument("--empty_runs", type=int, default=8, help="empty runs for the overhead probe")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args()
    import ray
    import torch

    from labkit.executors import RayExecutor

    # One thread per run, here and in every worker (spawned processes and the Ray cluster
    # started below inherit the environment).
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    # The empty run function is imported by name in worker processes: this folder must be on the path.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, configure_logging=False)
    ray_start = time.perf_counter() - t0
    arms: dict[str, Any] = {
        "sequential": lambda: LocalExecutor(1),
        f"local processes ({args.cpus})": lambda: LocalExecutor(args.cpus),
        f"ray ({args.cpus} CPUs)": lambda: RayExecutor(resources_per_run={"CPU": 1}),
        "ray, fresh worker per run": lambda: RayExecutor(fresh_worker=True),
    }
    ceiling = f"ceiling ({args.cpus} bare processes)"
    walls: dict[str, list[float]] = {arm: [] for arm in [*arms, ceiling]}
    empty: dict[str, list[float]] = {arm: [] for arm in list(arms)[1:]}
    with tempfile.TemporaryDirectory(prefix="bench_executors_") as tmp:
        for r in range(args.repeats):
            for i, (arm, make) in enumerate(arms.items()):
                plan = make_plan(f"a{i}", args.runs, args.steps, "labkit.selfcheck:sweep_run")
                walls[arm].append(timed_sweep(plan, make(), Path(tmp) / f"r{r}"))
                if arm in empty:
                    plan = make_plan(f"e{i}", args.empty_runs, 1, EMPTY_ENTRY)
                    wall = timed_sweep(plan, make(), Path(tmp) / f"r{r}")
                    # Runs go `cpus` at a time: the per-run round trip is the wall of one wave.
                    empty[arm].append(wall * args.cpus / args.empty_runs)
            plan = make_plan("ceiling", args.runs, args.steps, "labkit.selfcheck:sweep_run")
            walls[ceiling].append(ceiling_wall(plan, args.cpus, Path(tmp) / f"r{r}"))
        bare = bare_ray_round_trip(200)
    ray.shutdown()
    seq = statistics.median(walls["sequential"])
    figures: dict[str, Any] = {
        "runs": args.runs,
        "steps": args.steps,
        "cpus": args.cpus,
        "repeats": args.repeats,
        "load_avg_1m_at_end": os.getloadavg()[0],
        "ray_cluster_start_s": round(ray_start, 2),
        "bare_ray_task_round_trip_ms": round(bare * 1e3, 2),
        "arms": {},
    }
    print(f"sweep: {args.runs} self-check runs x {args.steps} steps; median of {args.repeats}")
    print(f"{'arm':<27}{'wall s':>9}{'runs/min':>10}{'speed-up':>10}{'empty run s':>13}")
    for arm, values in walls.items():
        wall = statistics.median(values)
        row = {
            "wall_s": [round(v, 2) for v in values],
            "median_wall_s": round(wall, 2),
            "runs_per_min": round(args.runs / wall * 60, 2),
            "speedup_vs_sequential": round(seq / wall, 3),
        }
        if arm in empty:
            row["empty_run_round_trip_s"] = round(statistics.median(empty[arm]), 3)
        figures["arms"][arm] = row
        overhead = f"{row['empty_run_round_trip_s']:.3f}" if arm in empty else "-"
        print(
            f"{arm:<27}{wall:>9.1f}{row['runs_per_min']:>10.2f}"
            f"{row['speedup_vs_sequential']:>10.2f}{overhead:>13}"
        )
    ray_arm, local_arm = figures["arms"][list(arms)[2]], figures["arms"][list(arms)[1]]
    # The goal is stated for the default Ray executor (workers serve several runs).
    figures["ray_vs_local_processes"] = round(
        local_arm["median_wall_s"] / ray_arm["median_wall_s"], 3
    )
    figures["ray_share_of_ceiling"] = round(
        figures["arms"][ceiling]["median_wall_s"] / ray_arm["median_wall_s"], 3
    )
    print(f"ray vs local processes: {figures['ray_vs_local_processes']:.2f}x")
    print(
        f"ray's speed-up as a share of the ceiling's: {figures['ray_share_of_ceiling']:.2f} "
        f"(the ceiling: {figures['arms'][ceiling]['speedup_vs_sequential']:.2f}x on these cores)"
    )
    print(f"bare Ray task round trip (warm worker): {figures['bare_ray_task_round_trip_ms']} ms")
    print(
        f"Ray cluster start (not counted): {ray_start:.1f} s; load average now {os.getloadavg()[0]:.1f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
