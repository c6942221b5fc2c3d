"""`python -m avalanche_llm <subcommand>`: common and phase-specific arguments, exit codes 0/2/3/4."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from avalanche_llm import canon
from avalanche_llm.config import resolve_config
from avalanche_llm.phases import SUBCOMMANDS, load_phase, needs
from avalanche_llm.run_id import MODES
from labkit.cli import add_executor_flags, bounded_int, run_cli
from labkit.rehearsal import with_profile


def _common(p: argparse.ArgumentParser, with_deps: bool) -> None:
    enum = canon.registry()["ENUM"]
    p.add_argument("--config", default=canon.lookup("CANON.PATH.CONFIG_PIPELINE"))
    p.add_argument("--device", choices=enum["DEVICE"], help="default: the config's runtime.device")
    p.add_argument("--dtype", choices=enum["DTYPE"], help="default: the config's runtime.dtype")
    p.add_argument("--run_id_mode", choices=MODES, default="content_hash")
    p.add_argument("--model_role", choices=enum["MODEL_ROLE"], default="INSTRUCT")
    p.add_argument(
        "--allow_resume",
        action="store_true",
        help="continue an incomplete run of this stage (a complete run is never reopened)",
    )
    p.add_argument(
        "--dry_run", action="store_true", help="resolve and validate only; no run directory"
    )
    p.add_argument("--out_root", default=canon.lookup("CANON.PATH.RUNS_DIR"))
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a resolved config key (dotted path), e.g. pipeline.gain_grid=[0.5,1.0,1.5]",
    )
    p.add_argument(
        "--workers",
        type=bounded_int(1, 256),
        default=1,
        help="local processes for the phase's independent tasks (phases 2-4: one per gain); "
        "1 (default) runs them in this process; the outputs are the same bytes for any N",
    )
    add_executor_flags(p)
    if with_deps:
        p.add_argument(
            "--dep", action="append", default=[], metavar="RUN_ID", help="upstream run to use"
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per phase (modules are imported only when run)."""
    cli = canon.registry()["CLI"]
    parser = argparse.ArgumentParser(
        prog="python -m avalanche_llm",
        description="AvalancheLLM phases 0-8: avalanche and criticality signatures under MLP gain.",
    )
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    for name in SUBCOMMANDS:
        p = sub.add_parser(name, help=cli["HELP"][name], description=cli["HELP"][name])
        _common(p, with_deps=bool(needs(name)))
        for flag, key in cli["OPTIONS"].get(name, {}).items():
            p.add_argument(flag, help=f"sets {key} (default: the config's value)")
    return parser


def main(args: argparse.Namespace) -> int:
    """Resolve the config for this phase and execute it."""
    from avalanche_llm.runs import execute

    options = []
    for flag, key in canon.registry()["CLI"]["OPTIONS"].get(args.subcommand, {}).items():
        value = getattr(args, flag.lstrip("-"))
        if value is not None:
            options.append(f"{key}={json.dumps(value)}")

    def resolved(overrides: list[str]):
        # A rehearsal's size caps (configs/rehearsal_profile.yaml) come first; the command's win.
        return resolve_config(
            args.config,
            model_role=args.model_role,
            device=args.device,
            dtype=args.dtype,
            overrides=with_profile(args.config, overrides),
        )

    config = resolved([*args.set, *options])
    # Phase-specific flags are part of this run's hash but not of its upstream runs'.
    upstream = resolved(list(args.set)).sha256 if options else None
    return execute(args.subcommand, load_phase(args.subcommand), config, args, upstream)


def cli(argv: Sequence[str] | None = None) -> None:
    """Entry point: parse `argv` and exit with the documented code."""
    run_cli(build_parser(), main, argv)
