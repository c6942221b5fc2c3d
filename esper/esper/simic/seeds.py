"""`esper train-tamiyo --seeds 0,1,2`: one training run per seed, run as a labkit sweep on any
executor (in this process, local processes, or a Ray cluster), each in its own run directory
`<run_dir>/seeds/seed<S>/`, with the sweep summary `<run_dir>/seeds_summary.json`.

Each seed's run is what `esper train-tamiyo --config C [overrides] seed=S` does: the same config
loading, run directory and training, so it writes the same bytes as that single-seed run. The
sweep brings resume (rerun the command: complete seeds are skipped, the others continue from
their checkpoints), a sweep-level pause (`touch <run_dir>/seeds/control/pause.request`) and one
live line per seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from esper.config import load_esper_config
from esper.rundirs import open_run
from esper.simic.train import PHASE, train_tamiyo
from labkit.executors import executor_spec, make_executor
from labkit.sweep import plan_sweep, run_sweep, summary_path
from labkit.sweep_view import live_sweep

SWEEP = "seeds"
ENTRY = "esper.simic.seeds:train_seed"
# What each seed's line in the sweep summary keeps of its run's summary.json.
KEPT = (
    "seed",
    "updates",
    "training_episodes",
    "heldout_ppo_minus_random",
    "heldout_ppo_wait_share",
)


def seed_list(text: str) -> list[int]:
    """argparse type of `--seeds`: distinct integers in [0, 2**32 - 1], comma-separated."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds) or not all(0 <= s < 2**32 for s in seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct seeds in [0, 2^32 - 1]")
    return seeds


def train_seed(name: str, config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The sweep's run function: `train-tamiyo` of config['config_path'] with this run's seed."""
    cfg = load_esper_config(config["config_path"], [*config["overrides"], f"seed={config['seed']}"])
    data, run = open_run(cfg, run_dir, PHASE, resume=True, config_path=config["config_path"])
    with run.running():
        summary = train_tamiyo(cfg, run, data)
    return {k: summary[k] for k in KEPT}


def train_seeds(args: argparse.Namespace) -> int:
    """Train one Tamiyo per seed of `args.seeds` into `args.run_dir`; 1 if any seed failed."""
    plan = plan_sweep(
        {
            "sweep_name": SWEEP,
            "base_config": {
                # Absolute: a worker process or Ray node may start elsewhere.
                "config_path": str(Path(args.config).resolve()),
                "overrides": list(args.overrides),
                "seed": args.seeds[0],
            },
            "runs": [{"name": f"seed{s}", "overrides": [f"seed={s}"]} for s in args.seeds],
        }
    )
    executor = make_executor(executor_spec(args), args.seed_workers)
    where = summary_path(args.run_dir, SWEEP)
    with live_sweep(where):
        doc = run_sweep(plan, args.run_dir, run_fn=ENTRY, executor=executor, resume=args.resume)
    counts = doc["counts"]
    print(f"train-tamiyo: {counts['complete']} of {len(args.seeds)} seeds complete -> {where}")
    for run in doc["runs"]:
        delta = (run.get("result") or {}).get("heldout_ppo_minus_random")
        shown = "-" if delta is None else f"{delta['value']:.4g} [{delta['low']}, {delta['high']}]"
        print(f"  {run['name']}: {run['status']}; held-out PPO - random {shown}")
    if counts["failed"]:
        print(f"esper: error: {counts['failed']} seed runs failed; see {where}", file=sys.stderr)
        return 1
    return 0
