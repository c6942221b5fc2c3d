"""`python -m cachemedicpp.watch --run_dir D [--follow] [--stop_on_terminal]`.

The live view of a run's phase heartbeats (train, eval, stability, sweep) is labkit's dashboard.
"""

from __future__ import annotations

import argparse

from labkit import watch
from labkit.cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    """labkit.watch's command line under this package's name."""
    p = watch.build_parser()
    p.prog = "cachemedicpp.watch"
    return p


if __name__ == "__main__":
    run_cli(build_parser(), watch.main)
