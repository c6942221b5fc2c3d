"""The start every Esper command shares: threads, seeds, device, data, then its labkit run dir."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from esper.config import resolve_device, set_threads, task_config
from esper.utils.data import ImageData, TokenData, load_task_data
from labkit.determinism import seed_everything
from labkit.rundir import RunDir


def default_run_dir(*parts: str) -> Path:
    """runs/<parts joined by '-'>-<UTC stamp>."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / "-".join([*parts, stamp])


def open_run(
    cfg: dict[str, Any],
    run_dir: str | os.PathLike,
    phase: str,
    *,
    resume: bool,
    config_path: str | os.PathLike,
    check_task: bool = False,
) -> tuple[ImageData | TokenData, RunDir]:
    """Set threads and seeds, load the task data, then create or resume the run dir of `phase`.

    `check_task` builds the TaskConfig first, so a config it rejects leaves no run dir behind.
    """
    set_threads(cfg["threads"])
    flags = seed_everything(cfg["seed"])
    device = resolve_device(cfg["device"])
    data = load_task_data(cfg["task"]["task_type"], cfg["data"])
    if check_task:
        task_config(cfg, data)
    run = RunDir.create(
        run_dir,
        cfg,
        phase=phase,
        resume=resume,
        config_path=config_path,
        seeds={"seed": cfg["seed"]},
        determinism=flags,
        device=device,
    )
    return data, run


def add_resume_flag(parser: argparse.ArgumentParser) -> None:
    """`--resume` (default) / `--no-resume`, the same on every command that opens a run dir."""
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue an unfinished run in --run_dir (default); --no-resume refuses with exit 4",
    )
