"""The tracking switch: `--track mlflow[:URI]` or `MLFLOW_TRACKING_URI` mirrors this command's runs to MLflow.

Commands note the runs they open (`note`); `run_cli` mirrors them once the command has ended (`finish`),
from the files in their run directories. Nothing here imports mlflow: without the switch a command never
loads it and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Literal

ENV = "MLFLOW_TRACKING_URI"
# labkit/labkit/tracking/__init__.py -> the repository root, where `--track mlflow` keeps its store.
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_URI = f"sqlite:///{REPO_ROOT / 'mlruns.db'}"

Kind = Literal["labkit", "avalanche", "dream", "sweep"]
# What each kind's noted path is: a RunDir folder, an AvalancheLLM stage folder, a D-REAM manifest
# (artifacts/manifests/<run_id>.json) or a sweep summary (<out_root>/<sweep>_summary.json).
_noted: dict[Path, Kind] = {}


def parse_track(text: str) -> str:
    """An argparse `type` for `--track`: `mlflow` (the repository's SQLite store) or `mlflow:URI`."""
    backend, sep, uri = text.partition(":")
    if backend != "mlflow":
        raise argparse.ArgumentTypeError(f"{text!r}: expected mlflow or mlflow:URI")
    if sep and not uri:
        raise argparse.ArgumentTypeError(f"{text!r}: give a URI after 'mlflow:'")
    return uri or DEFAULT_URI


def add_track_flag(parser: argparse.ArgumentParser, default: object = None) -> None:
    """Add `--track mlflow[:URI]` to `parser` and its subcommands (the parsed value is the URI)."""
    if not any(a.dest == "track" for a in parser._actions):
        parser.add_argument(
            "--track",
            type=parse_track,
            default=default,
            metavar="mlflow[:URI]",
            help=f"mirror this command's runs to MLflow (= {ENV}=URI; default store "
            "sqlite:///mlruns.db at the repository root)",
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                # SUPPRESS: a subcommand that was not given the flag keeps the value given before it.
                add_track_flag(sub, argparse.SUPPRESS)


def enable(uri: str) -> None:
    """Track to `uri` in this process and the processes it starts."""
    os.environ[ENV] = uri


def tracking_uri() -> str | None:
    """The MLflow tracking URI in effect, or None when tracking is off."""
    return os.environ.get(ENV) or None


def note(path: str | os.PathLike, kind: Kind) -> None:
    """Remember that this command opened the run at `path`, to mirror it when the command ends."""
    if tracking_uri() is not None:
        _noted[Path(path).absolute()] = kind


def finish(system: str) -> None:
    """Mirror every run this command noted; a tracking failure is recorded and printed, never raised."""
    uri = tracking_uri()
    if uri is None or not _noted:
        return
    noted = dict(_noted)
    _noted.clear()
    try:
        from labkit.tracking.mirror import mirror_runs

        failures = mirror_runs(uri, system, noted)
    except Exception as exc:  # an import or store failure must not change the command's outcome
        failures = [f"{type(exc).__name__}: {exc}"]
    for reason in failures:
        print(f"tracking: MLflow mirror failed, the run is unaffected: {reason}", file=sys.stderr)
