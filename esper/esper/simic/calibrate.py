"""`calibrate`: the bare host on 3 seeds -> σ (std of epoch-to-epoch val deltas after the first 20 %
of epochs, pooled) and target (0.8 × the mean of the seeds' best val losses), as calibration.json."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from esper.config import CALIBRATED, resolve_device, task_config
from esper.tolaria import Episode
from esper.train_host import episode_seed
from esper.utils.data import ImageData, TokenData
from labkit.atomic import atomic_write_json
from labkit.errors import ConfigError
from labkit.rundir import RunDir

PHASE = "calibrate"
SEEDS = 3
WARMUP = 0.2
TARGET_FRACTION = 0.8


def bare_host_losses(cfg: dict[str, Any], data: ImageData | TokenData, seed: int) -> list[float]:
    """Val losses of one static episode (no seed ever germinates), epoch 0 included."""
    task_cfg = copy.deepcopy(cfg)
    # Target and σ only scale what Tamiyo sees; a bare host trains the same whatever they are.
    for key, stand_in in (("target_loss", 0.0), ("loss_delta_std", 1.0)):
        if task_cfg["task"][key] == CALIBRATED:
            task_cfg["task"][key] = stand_in
    task = task_config(task_cfg, data)
    ep = Episode(task_cfg, data, task, seed, resolve_device(cfg["device"]))
    losses = [ep.reset().policy.val_loss]
    while not ep.done:
        signals, _ = ep.run_epoch()
        losses.append(signals.policy.val_loss)
    return losses


def calibration(curves: list[list[float]]) -> dict[str, Any]:
    """σ and target from the bare-host val-loss curves (epoch 0 first)."""
    epochs = len(curves[0]) - 1
    skip = math.ceil(WARMUP * epochs)
    deltas = np.concatenate([np.diff(c)[skip:] for c in curves])
    best = [min(c) for c in curves]
    if deltas.size < 2 or not np.all(np.isfinite(deltas)):
        raise ConfigError(f"calibrate needs >= 2 finite val-loss deltas after epoch {skip}")
    return {
        "loss_delta_std": float(np.std(deltas, ddof=1)),
        "target_loss": TARGET_FRACTION * float(np.mean(best)),
        "best_val_losses": best,
        "deltas_used": int(deltas.size),
        "warmup_epochs_skipped": skip,
        "curves": curves,
    }


def calibrate(cfg: dict[str, Any], run: RunDir, data: ImageData | TokenData) -> dict[str, Any]:
    """Train the bare host on 3 paired episode seeds and write calibration.json into `run`."""
    seeds = [episode_seed(cfg["seed"], i) for i in range(SEEDS)]
    result = calibration([bare_host_losses(cfg, data, s) for s in seeds])
    result |= {"task": cfg["task"]["name"], "seeds": seeds}
    atomic_write_json(run.path / "calibration.json", result)
    run.register_artifact("calibration.json")
    return result
