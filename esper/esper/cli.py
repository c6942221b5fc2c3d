"""`python -m esper train-host | plot | prefetch` (run from `esper/`)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from esper.config import load_esper_config, resolve_device, set_threads, task_config
from esper.tamiyo import POLICIES
from esper.train_host import PHASE, train_host
from esper.utils.data import load_task_data
from esper.utils.plots import plot_run
from labkit.cli import run_cli
from labkit.determinism import seed_everything
from labkit.errors import ConfigError
from labkit.rundir import RunDir


def _default_run_dir(config: str, policy: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"train-host-{Path(config).stem}-{policy}-{stamp}"


def cmd_train_host(args: argparse.Namespace) -> int:
    """Validate the config and data, create or resume the run, train, summarise, plot."""
    if args.pause_at is not None and args.pause_at < 1:
        raise ConfigError("--pause_at must be at least 1")
    extra = [*args.overrides]
    for key in ("policy", "episodes", "seed"):
        if getattr(args, key) is not None:
            extra.append(f"{key}={getattr(args, key)}")
    cfg = load_esper_config(args.config, extra)
    set_threads(cfg["threads"])
    flags = seed_everything(cfg["seed"])
    device = resolve_device(cfg["device"])
    data = load_task_data(cfg["task"]["task_type"], cfg["data"])
    task = task_config(cfg, data)
    run = RunDir.create(
        args.run_dir or _default_run_dir(args.config, cfg["policy"]),
        cfg,
        phase=PHASE,
        resume=args.resume,
        config_path=args.config,
        seeds={"seed": cfg["seed"]},
        determinism=flags,
        device=device,
    )
    with run.running():
        summary = train_host(cfg, run, data, pause_at=args.pause_at)
    print(
        f"train-host: {summary['episodes']} {task.name} episode(s), policy {cfg['policy']}, run {run.path}"
    )
    for key in ("val_loss", "val_accuracy", "val_perplexity", "params_added", "fossils"):
        if summary[key] is not None:
            print(f"  {key}: {_mean_ci(summary[key])}")
    print(f"  figures in {run.path / 'figures'}; summary {run.path / 'summary.json'}")
    return 0


def _mean_ci(ci: dict) -> str:
    if ci["low"] is None:
        return f"{ci['value']:.4g}"
    return f"{ci['value']:.4g} (95% CI {ci['low']:.4g} to {ci['high']:.4g}, n={ci['n']})"


def cmd_plot(args: argparse.Namespace) -> int:
    """Redraw a run's figures from its logs and index them."""
    run = RunDir.open(args.run_dir)
    for fig in plot_run(run.path):
        run.register_artifact(fig)
        print(fig)
    return 0


def cmd_prefetch(args: argparse.Namespace) -> int:
    """Fetch and prepare a config's data (and tokenizer) into the local caches."""
    cfg = load_esper_config(args.config, args.overrides)
    data = load_task_data(cfg["task"]["task_type"], cfg["data"])
    print(
        f"prefetch: {cfg['data']['dataset']} ready: {data.n_outputs} outputs, {data.steps_per_epoch()} steps/epoch"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `python -m esper` command line."""
    p = argparse.ArgumentParser(prog="esper", description="Esper: morphogenetic training.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train-host", help="train a host under a static, random or heuristic Tamiyo")
    t.add_argument("--config", required=True, help="YAML config, e.g. configs/cifar10_local.yaml")
    t.add_argument("--policy", choices=POLICIES, help="shorthand for policy=P")
    t.add_argument("--episodes", type=int, help="shorthand for episodes=N")
    t.add_argument("--seed", type=int, help="shorthand for seed=S")
    t.add_argument(
        "--run_dir", help="run directory (default runs/train-host-<config>-<policy>-<UTC>)"
    )
    t.add_argument("--pause_at", type=int, help="request a pause after K epochs in all (exit 75)")
    t.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue an unfinished run in --run_dir (default); --no-resume refuses with exit 4",
    )
    t.add_argument("overrides", nargs="*", help="dot-key overrides, e.g. optimizer.lr=0.05")
    t.set_defaults(func=cmd_train_host)

    pl = sub.add_parser("plot", help="redraw a run's figures from its saved logs")
    pl.add_argument("--run_dir", required=True)
    pl.set_defaults(func=cmd_plot)

    pf = sub.add_parser("prefetch", help="download and tokenise a config's data ahead of time")
    pf.add_argument("--config", required=True)
    pf.add_argument("overrides", nargs="*", help="dot-key overrides")
    pf.set_defaults(func=cmd_prefetch)
    return p


def main(argv: list[str] | None = None) -> None:
    """Parse and run one command (exit codes as in labkit/README.md)."""
    run_cli(build_parser(), lambda args: args.func(args), argv)
