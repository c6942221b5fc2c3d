"""`python -m esper train-host | calibrate | train-tamiyo | evaluate | plot | prefetch` (run from `esper/`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from esper.config import load_esper_config, task_config
from esper.evaluate.command import add_evaluate_parser
from esper.evaluate.figures import plot_evaluation
from esper.evaluate.harness import PHASE as EVALUATE_PHASE
from esper.rundirs import add_resume_flag, default_run_dir, open_run
from esper.simic.calibrate import PHASE as CALIBRATE_PHASE
from esper.simic.calibrate import calibrate
from esper.simic.figures import plot_training
from esper.simic.seeds import seed_list, train_seeds
from esper.simic.train import PHASE as TAMIYO_PHASE
from esper.simic.train import train_tamiyo
from esper.tamiyo import POLICIES
from esper.train_host import PHASE, train_host
from esper.utils.data import load_task_data
from esper.utils.plots import plot_run
from labkit.cli import add_executor_flags, bounded_int, run_cli
from labkit.errors import ConfigError, MissingInputError
from labkit.rundir import RunDir, check_creatable

PLOTTERS = {PHASE: plot_run, TAMIYO_PHASE: plot_training, EVALUATE_PHASE: plot_evaluation}


def cmd_train_host(args: argparse.Namespace) -> int:
    """Validate the config and data, create or resume the run, train, summarise, plot."""
    if args.pause_at is not None and args.pause_at < 1:
        raise ConfigError("--pause_at must be at least 1")
    extra = [*args.overrides]
    for key in ("policy", "episodes", "seed"):
        if getattr(args, key) is not None:
            extra.append(f"{key}={getattr(args, key)}")
    cfg = load_esper_config(args.config, extra)
    # Checked before the run dir exists, so a missing policy leaves nothing behind.
    if cfg["policy"].endswith(".pt") and not Path(cfg["policy"]).is_file():
        raise MissingInputError(f"checkpoint not found: {cfg['policy']}")
    run_dir = args.run_dir or default_run_dir("train-host", Path(args.config).stem, cfg["policy"])
    check_creatable(run_dir)  # before the data loads
    data, run = open_run(
        cfg, run_dir, PHASE, resume=args.resume, config_path=args.config, check_task=True
    )
    task = task_config(cfg, data)
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


def _policy_arg(value: str) -> str:
    if value in POLICIES or value.endswith(".pt"):
        return value
    raise argparse.ArgumentTypeError(
        f"{value!r}: choose {', '.join(POLICIES)} or a policy .pt file"
    )


def cmd_plot(args: argparse.Namespace) -> int:
    """Redraw a run's figures from its logs (the plotter of each phase the run has) and index them."""
    run = RunDir.open(args.run_dir)
    phases = [p for p in run.record.get("phases", {}) if p in PLOTTERS]
    if not phases:
        raise MissingInputError(f"{run.path} has no phase with figures ({', '.join(PLOTTERS)})")
    for phase in phases:
        for fig in PLOTTERS[phase](run.path):
            run.register_artifact(fig)
            print(fig)
    return 0


def _start(args: argparse.Namespace, phase: str, command: str) -> tuple[dict, object, RunDir]:
    """Config, data and run dir of a calibrate or train-tamiyo command."""
    cfg = load_esper_config(args.config, args.overrides)
    run_dir = args.run_dir or default_run_dir(command, Path(args.config).stem)
    data, run = open_run(cfg, run_dir, phase, resume=args.resume, config_path=args.config)
    return cfg, data, run


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Train the bare host on 3 seeds; write sigma and target to calibration.json."""
    cfg, data, run = _start(args, CALIBRATE_PHASE, "calibrate")
    with run.running():
        result = calibrate(cfg, run, data)
    print(
        f"calibrate: {cfg['task']['name']} loss_delta_std {result['loss_delta_std']:.4g}, "
        f"target_loss {result['target_loss']:.4g} (best val losses {result['best_val_losses']})"
    )
    print(
        f"  use: task.target_loss=calibrated task.loss_delta_std=calibrated "
        f"task.calibration={run.path / 'calibration.json'} (ppo_* configs have the key)"
    )
    return 0


def cmd_train_tamiyo(args: argparse.Namespace) -> int:
    """Train Tamiyo by masked PPO; policy.pt, logs, summary and figures in the run dir."""
    if args.pause_at is not None and args.pause_at < 1:
        raise ConfigError("--pause_at must be at least 1")
    if args.workers is not None:
        args.overrides = [*args.overrides, f"ppo.workers={args.workers}"]
    seeds = [f"seed={args.seeds[0]}"] if args.seeds else []
    cfg = load_esper_config(args.config, [*args.overrides, *seeds])
    if "ppo" not in cfg:
        raise ConfigError(f"{args.config} has no ppo block; use a ppo_*.yaml config")
    if cfg["ppo"]["backend"] != "cleanrl":
        raise ConfigError(
            "train-tamiyo trains the cleanrl backend; the sb3 MaskablePPO cross-check is "
            "bench/crosscheck_sb3.py (no labkit pause/resume there)"
        )
    if args.seeds:
        if args.pause_at is not None:
            raise ConfigError(
                "--pause_at is for one seed; pause --seeds runs with control/pause.request"
            )
        args.run_dir = args.run_dir or default_run_dir("train-tamiyo", Path(args.config).stem)
        return train_seeds(args)
    if args.executor is not None or args.ray_address is not None or args.seed_workers != 1:
        raise ConfigError(
            "--executor, --ray_address and --seed_workers run several --seeds; give --seeds"
        )
    cfg, data, run = _start(args, TAMIYO_PHASE, "train-tamiyo")
    with run.running():
        summary = train_tamiyo(cfg, run, data, pause_at=args.pause_at)
    delta = summary["heldout_ppo_minus_random"]
    print(
        f"train-tamiyo: {summary['updates']} updates, {summary['training_episodes']} episodes, run {run.path}"
    )
    if delta is not None:  # ppo.baseline_episodes: 0 plays no held-out episodes
        print(f"  held-out return, greedy PPO - random: {_mean_ci(delta)}")
        print(f"  WAIT share (greedy, held out): {summary['heldout_ppo_wait_share']:.2f}")
    print(f"  policy {run.path / 'policy.pt'}; figures in {run.path / 'figures'}")
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
    t.add_argument(
        "--policy", type=_policy_arg, help="shorthand for policy=P (a baseline or a policy.pt)"
    )
    t.add_argument("--episodes", type=int, help="shorthand for episodes=N")
    t.add_argument("--seed", type=int, help="shorthand for seed=S")
    t.add_argument(
        "--run_dir", help="run directory (default runs/train-host-<config>-<policy>-<UTC>)"
    )
    t.add_argument("--pause_at", type=int, help="request a pause after K epochs in all (exit 75)")
    add_resume_flag(t)
    t.add_argument("overrides", nargs="*", help="dot-key overrides, e.g. optimizer.lr=0.05")
    t.set_defaults(func=cmd_train_host)

    for name, func, what in (
        ("calibrate", cmd_calibrate, "train the bare host on 3 seeds; write calibration.json"),
        ("train-tamiyo", cmd_train_tamiyo, "train Tamiyo by masked PPO (ppo_*.yaml configs)"),
    ):
        c = sub.add_parser(name, help=what)
        c.add_argument("--config", required=True)
        c.add_argument("--run_dir", help=f"run directory (default runs/{name}-<config>-<UTC>)")
        add_resume_flag(c)
        if name == "train-tamiyo":
            c.add_argument("--pause_at", type=int, help="request a pause after update K (exit 75)")
            c.add_argument(
                "--workers",
                type=int,
                help="shorthand for ppo.workers=N: rollout worker processes (same logs for any N)",
            )
            c.add_argument(
                "--seeds",
                type=seed_list,
                help="train one Tamiyo per seed (e.g. 0,1,2), each in <run_dir>/seeds/seed<S>/, "
                "with <run_dir>/seeds_summary.json; the runs go to --executor",
            )
            c.add_argument(
                "--seed_workers",
                type=bounded_int(1, 256),
                default=1,
                help="with --seeds and the local executor: seeds trained at once in local processes",
            )
            add_executor_flags(c)
        c.add_argument("overrides", nargs="*", help="dot-key overrides, e.g. ppo.episodes=8")
        c.set_defaults(func=func)
    add_evaluate_parser(sub)

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
