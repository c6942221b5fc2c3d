"""The labkit run dir every phase (train, eval, stability) opens the same way."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from labkit.errors import MissingInputError, RunExistsError
from labkit.rundir import RunDir
from labkit.zoo import weights_digest


def model_identity(model: PreTrainedModel) -> dict[str, str]:
    """The loaded weights' directory and digest, as the run record keeps them."""
    return {"path": str(model.name_or_path), "weights_sha256": weights_digest(model.name_or_path)}


def check_same_model(run_dir: str | os.PathLike, model: PreTrainedModel) -> None:
    """Refuse to continue a run with other weights than it was trained on (a zoo rebuild, say)."""
    record_path = Path(run_dir) / "run_record.json"
    if not record_path.is_file():
        return
    trained = json.loads(record_path.read_text(encoding="utf-8")).get("model")
    now = model_identity(model)
    if trained is not None and trained["weights_sha256"] != now["weights_sha256"]:
        raise RunExistsError(
            f"{run_dir} was trained on weights {trained['weights_sha256'][:12]} "
            f"({trained['path']}); the config now loads {now['weights_sha256'][:12]} "
            f"({now['path']}); use a new --run_dir"
        )


def require_trained(
    cfg: Mapping[str, Any], run_dir: str | os.PathLike, model: PreTrainedModel
) -> None:
    """Refuse a phase when `run_dir` (or its paired no_contr run) is untrained or on other weights."""
    paired = cfg["eval"]["no_contr_run_dir"]
    for path in [run_dir] if paired is None else [run_dir, paired]:
        if not (Path(path) / "run_record.json").is_file():
            raise MissingInputError(f"{path} is not a trained run; run cachemedicpp.train first")
        check_same_model(path, model)


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
