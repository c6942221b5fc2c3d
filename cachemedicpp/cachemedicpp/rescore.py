"""`eval --from_run TRAIN_RUN`: a new run that scores a trained R_phi under another eval config.

The new run directory gets a copy of the train run's newest `repair_step_*.pt` and its
`metrics/calibration.json`, and a record whose `from_run` names the train run, its config hash,
the digest of the model weights it trained on and the digest of the copied checkpoint; eval and
stability then run on it as on any trained run, without retraining. Only the sections that made
the operator must match: `model`, `corruption` and `repair`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labkit.checkpoint import latest_checkpoint
from labkit.config import load_yaml
from labkit.errors import ConfigError, MissingInputError, RunExistsError
from labkit.rundir import RunDir, sha256_file

PHASE = "from_run"
SAME_SECTIONS = ("model", "corruption", "repair")  # what made the operator and its eps grids


def _trained_record(train_dir: Path) -> dict[str, Any]:
    path = train_dir / "run_record.json"
    if not path.is_file():
        raise MissingInputError(f"--from_run {train_dir} is not a run directory (no {path.name})")
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("phases", {}).get("train", {}).get("status") != "complete":
        raise MissingInputError(f"--from_run {train_dir} has no complete train phase")
    return record


def check_sections(cfg: Mapping[str, Any], trained: Mapping[str, Any], train_dir: Path) -> None:
    """Refuse a config whose model, corruption or repair section differs from the train run's."""
    differ = [s for s in SAME_SECTIONS if cfg[s] != trained[s]]
    if differ:
        raise ConfigError(
            f"the config's {', '.join(differ)} differ from those {train_dir} was trained with; "
            "only eval, stability (and unused train settings) may change: retrain instead"
        )


def from_run_identity(train_dir: Path, record: Mapping[str, Any], ckpt: Path) -> dict[str, Any]:
    """What the new run's record says about the run its operator comes from."""
    return {
        "run_dir": str(train_dir),
        "run_id": record["run_id"],
        "config_hash": record["config_hash"],
        "weights_sha256": record["model"]["weights_sha256"],
        "repair_checkpoint": ckpt.name,
        "repair_sha256": sha256_file(ckpt),
    }


def prepare_from_run(
    cfg: Mapping[str, Any],
    train_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    config_path: str | os.PathLike | None = None,
) -> RunDir:
    """Create (or find, on a rerun) the new run of `train_dir`'s operator under `cfg`."""
    train_dir, run_dir = Path(train_dir).resolve(), Path(run_dir).resolve()
    if train_dir == run_dir:
        raise ConfigError("--run_dir must be a new directory, not the --from_run train run")
    record = _trained_record(train_dir)
    check_sections(cfg, load_yaml(train_dir / "config_resolved.yaml"), train_dir)
    ckpt = latest_checkpoint(train_dir / "checkpoints", "repair_step_*.pt")
    if ckpt is None:
        raise MissingInputError(f"no checkpoints/repair_step_*.pt in {train_dir}")
    identity = from_run_identity(train_dir, record, ckpt)
    if (run_dir / "run_record.json").is_file():
        run = RunDir.open(run_dir, phase=PHASE)
        if run.record.get("from_run") != identity:
            raise RunExistsError(
                f"{run_dir} was not made from the current {ckpt} of {train_dir}; use a new --run_dir"
            )
        return run
    run = RunDir.create(
        run_dir,
        cfg,
        phase=PHASE,
        config_path=config_path,
        seeds={"seed": cfg["seed"]},
        device=cfg["device"],
    )
    with run.running():
        run.update(model=record["model"], from_run=identity)
        for src, rel in (
            (ckpt, Path("checkpoints") / ckpt.name),
            (train_dir / "metrics" / "calibration.json", Path("metrics") / "calibration.json"),
        ):
            target = run.file(*rel.parts)
            shutil.copyfile(src, target)
            run.register_artifact(target)
    return run
