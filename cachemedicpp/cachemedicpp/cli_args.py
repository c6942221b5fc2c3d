"""The command line shared by the train, eval and stability phases."""

from __future__ import annotations

import argparse


def phase_parser(phase: str, description: str, run_dir_help: str) -> argparse.ArgumentParser:
    """`python -m cachemedicpp.<phase> --config Y --run_dir D [--resume|--no-resume] [overrides...]`."""
    p = argparse.ArgumentParser(prog=f"cachemedicpp.{phase}", description=description)
    p.add_argument("--config", required=True, help="YAML run config, e.g. configs/mve_local.yaml")
    p.add_argument("--run_dir", required=True, help=run_dir_help)
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"continue an unfinished {phase} phase (default); --no-resume restarts it",
    )
    p.add_argument("overrides", nargs="*", help="dot-key overrides, e.g. train.steps=50")
    return p
