"""The labkit run dir every phase (train, eval, stability) opens the same way."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labkit.errors import MissingInputError
from labkit.rundir import RunDir


def require_trained(run_dir: str | os.PathLike) -> None:
    """Refuse a phase that needs a trained run when `run_dir` holds none."""
    if not (Path(run_dir) / "run_record.json").is_file():
        raise MissingInputError(f"{run_dir} is not a trained run; run cachemedicpp.train first")


def open_phase_run(
    cfg: Mapping[str, Any],
    run_dir: str | os.PathLike,
    phase: str,
    determinism: Mapping[str, Any],
    *,
    resume: bool,
    config_path: str | os.PathLike | None,
) -> RunDir:
    """Create or resume `phase` in `run_dir`; `--no-resume` restarts the phase (force)."""
    return RunDir.create(
        run_dir,
        cfg,
        phase=phase,
        resume=resume,
        force=not resume,
        config_path=config_path,
        seeds={"seed": cfg["seed"]},
        determinism=determinism,
        device=cfg["device"],
    )
