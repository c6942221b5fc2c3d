"""Kernel self-check: a tiny deterministic training job run through RunDir, Heartbeat and PauseControl.

`python -m labkit.selfcheck --run_dir D` on a fresh run demonstrates the whole cycle in one go:
run, pause request at the middle step, paused (ack written), resume, complete. With `--pause_at K`
it pauses after step K and exits 75 instead; with `--pause_at 0` it is a plain job that pauses only
when `D/control/pause.request` appears. Rerunning the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from labkit.atomic import atomic_write_bytes, atomic_write_json
from labkit.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from labkit.cli import run_cli
from labkit.config import apply_overrides, load_config, validate
from labkit.control import PauseControl, request_pause
from labkit.determinism import generator, seed_everything
from labkit.errors import ConfigError, LabkitError, Paused
from labkit.heartbeat import Heartbeat
from labkit.jsonl import append_jsonl
from labkit.rundir import RECORD, RunDir

PHASE = "train"
SELF_REQUEST = "selfcheck --pause_at {step}"
DEFAULT_CONFIG: dict[str, Any] = {
    "seed": 0,
    "data": {"n_train": 512, "n_eval": 128, "features": 8, "noise": 0.05},
    "model": {"hidden": 32, "dropout": 0.1},
    "train": {"steps": 60, "batch_size": 32, "lr": 0.01, "checkpoint_every": 5},
}
_POS_INT = {
    "type": "integer",
    "minimum": 1,
    "maximum": 1_000_000,
}  # bounded: a huge value is exit 2
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["seed", "data", "model", "train"],
    "properties": {
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
        "data": {
            "type": "object",
            "additionalProperties": False,
            "required": ["n_train", "n_eval", "features", "noise"],
            "properties": {
                "n_train": _POS_INT,
                "n_eval": _POS_INT,
                "features": _POS_INT,
                "noise": {"type": "number", "minimum": 0, "maximum": 1_000},
            },
        },
        "model": {
            "type": "object",
            "additionalProperties": False,
            "required": ["hidden", "dropout"],
            "properties": {
                "hidden": _POS_INT,
                "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            },
        },
        "train": {
            "type": "object",
            "additionalProperties": False,
            "required": ["steps", "batch_size", "lr", "checkpoint_every"],
            "properties": {
                "steps": _POS_INT,
                "batch_size": _POS_INT,
                "lr": {"type": "number", "exclusiveMinimum": 0},
                "checkpoint_every": _POS_INT,
            },
        },
    },
}


def resolve_config(
    config_path: str | None, overrides: list[str], *, steps: int | None, seed: int | None
) -> dict[str, Any]:
    """The default (or given) config with overrides, `--steps` and `--seed` applied, validated."""
    extra = [*overrides]
    if steps is not None:
        extra.append(f"train.steps={steps}")
    if seed is not None:
        extra.append(f"seed={seed}")
    if config_path is None:
        cfg = apply_overrides(DEFAULT_CONFIG, extra)
        validate(cfg, SCHEMA, what="selfcheck config")
        return cfg
    return load_config(config_path, extra, schema=SCHEMA)


def make_data(cfg: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    """Seeded synthetic regression data: y = sin(x.w) + noise, split into train and eval."""
    d = cfg["data"]
    g = generator(cfg["seed"], "selfcheck-data")
    n = d["n_train"] + d["n_eval"]
    x = torch.randn(n, d["features"], generator=g)
    w = torch.randn(d["features"], 1, generator=g) / d["features"] ** 0.5
    y = torch.sin(x @ w) + d["noise"] * torch.randn(n, 1, generator=g)
    return x[: d["n_train"]], y[: d["n_train"]], x[d["n_train"] :], y[d["n_train"] :]


def make_model(cfg: dict[str, Any]) -> nn.Module:
    """A one-hidden-layer MLP; its dropout draws from the global torch RNG that checkpoints restore."""
    h = cfg["model"]["hidden"]
    return nn.Sequential(
        nn.Linear(cfg["data"]["features"], h),
        nn.Tanh(),
        nn.Dropout(cfg["model"]["dropout"]),
        nn.Linear(h, 1),
    )


def train(
    run: RunDir,
    cfg: dict[str, Any],
    *,
    pause_at: int | None = None,
    step_sleep: float = 0.0,
    heartbeat_s: float = 1.0,
) -> dict[str, Any]:
    """Train from the latest checkpoint (or from scratch) to the end; raise Paused on a pause request."""
    t = cfg["train"]
    x, y, x_eval, y_eval = make_data(cfg)
    model = make_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=t["lr"])
    order = generator(cfg["seed"], "selfcheck-batches")
    perm, offset, step = torch.randperm(len(x), generator=order), 0, 0
    ckpt_dir = run.path / "checkpoints"
    loss_log = run.file("logs", "loss.jsonl")
    log_bytes, last_loss = 0, None
    latest = latest_checkpoint(ckpt_dir, "state_step_*.pt")
    if latest is not None:
        state = load_checkpoint(latest)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        order.set_state(state["data"]["generator"])
        perm, offset, step = state["data"]["perm"], state["data"]["offset"], state["step"]
        set_rng_state(state["rng"])
        log_bytes, last_loss = state["loss_log_bytes"], state["last_loss"]
    # Steps after the checkpoint are redone, so their loss lines (if a kill left any) must go.
    if loss_log.exists():
        if loss_log.stat().st_size < log_bytes:
            raise LabkitError(f"{loss_log} is shorter than checkpoint {latest} recorded")
        os.truncate(loss_log, log_bytes)

    def checkpoint() -> Path:
        path = ckpt_dir / f"state_step_{step:06d}.pt"
        data = {"generator": order.get_state(), "perm": perm, "offset": offset}
        return save_checkpoint(
            path,
            {
                "step": step,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "data": data,
                "rng": rng_state(),
                "loss_log_bytes": loss_log.stat().st_size if loss_log.exists() else 0,
                "last_loss": last_loss,
            },
        )

    with Heartbeat(run.path, PHASE, t["steps"], step=step, min_interval_s=heartbeat_s) as hb:
        if latest is not None:
            hb.beat(step, checkpoint=latest)
        # Checked every step: the demo's own request must be seen at the step it was made.
        pause = PauseControl(run.path, PHASE, heartbeat=hb, min_interval_s=0)
        model.train()
        while step < t["steps"]:
            if offset + t["batch_size"] > len(perm):
                perm, offset = torch.randperm(len(x), generator=order), 0
            idx = perm[offset : offset + t["batch_size"]]
            offset += t["batch_size"]
            loss = nn.functional.mse_loss(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            time.sleep(step_sleep)
            step += 1
            last_loss = loss.item()
            append_jsonl(loss_log, {"step": step, "loss": last_loss})
            hb.beat(step, metrics={"loss": last_loss})
            if step == pause_at:
                request_pause(run.path, SELF_REQUEST.format(step=step))
            saved = checkpoint() if step % t["checkpoint_every"] == 0 else None
            if saved is not None:
                hb.beat(step, checkpoint=saved)
            # At the last step finishing is quicker than pausing; the request waits for the next phase.
            if step < t["steps"] and pause.requested():
                ack = pause.acknowledge(step, saved or checkpoint())
                raise Paused(f"paused after step {step}/{t['steps']} (ack {ack}); rerun to resume")
        return finish(run, cfg, model, x_eval, y_eval, last_loss, hb)


def finish(
    run: RunDir,
    cfg: dict[str, Any],
    model: nn.Module,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    train_loss: float,
    hb: Heartbeat,
) -> dict[str, Any]:
    """Write the final weights and metrics, register them with the loss log, return the metrics."""
    model.eval()
    with torch.no_grad():
        eval_loss = nn.functional.mse_loss(model(x_eval), y_eval).item()
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(run.file("weights.safetensors"), safetensors_bytes(weights))
    metrics = {
        "steps": cfg["train"]["steps"],
        "final_train_loss": train_loss,
        "eval_loss": eval_loss,
        "parameters": sum(v.numel() for v in weights.values()),
    }
    atomic_write_json(run.file("metrics.json"), metrics)
    for name in ("weights.safetensors", "metrics.json", "logs/loss.jsonl"):
        run.register_artifact(name)
    hb.beat(cfg["train"]["steps"], metrics={"train_loss": train_loss, "eval_loss": eval_loss})
    return metrics


def run_once(
    args: argparse.Namespace, cfg: dict[str, Any], *, pause_at: int | None, resume: bool
) -> RunDir:
    """Create or resume the run and train it to completion (or to a pause)."""
    flags = seed_everything(cfg["seed"])
    run = RunDir.create(
        args.run_dir,
        cfg,
        phase=PHASE,
        resume=resume,
        config_path=args.config,
        seeds={"seed": cfg["seed"]},
        determinism=flags,
    )
    with run.running():
        train(run, cfg, pause_at=pause_at, step_sleep=args.step_sleep, heartbeat_s=args.heartbeat_s)
    return run


def sweep_run(
    name: str, config: dict[str, Any], run_dir: Path, *, step_sleep: float = 0.0
) -> dict[str, Any]:
    """A sweep's run function (`labkit.selfcheck:sweep_run`): train `config` in `run_dir`, resuming it."""
    validate(config, SCHEMA, what=f"selfcheck sweep run {name}")
    flags = seed_everything(config["seed"])
    run = RunDir.create(
        run_dir, config, phase=PHASE, resume=True, seeds={"seed": config["seed"]}, determinism=flags
    )
    with run.running():
        return train(run, config, step_sleep=step_sleep)


def main(args: argparse.Namespace) -> int:
    """Run the self-check job (the full pause/resume demo on a fresh run without --pause_at)."""
    if min(args.pause_at or 0, args.step_sleep, args.heartbeat_s) < 0:
        raise ConfigError("--pause_at, --step_sleep and --heartbeat_s must not be negative")
    cfg = resolve_config(args.config, args.overrides, steps=args.steps, seed=args.seed)
    demo = args.pause_at is None and not (Path(args.run_dir) / RECORD).exists()
    pause_at = (cfg["train"]["steps"] // 2 if demo else args.pause_at) or None
    try:
        run = run_once(args, cfg, pause_at=pause_at, resume=args.resume)
    except Paused as exc:
        ack_path = Path(args.run_dir) / "control" / f"pause_ack_{PHASE}.json"
        ack = json.loads(ack_path.read_text(encoding="utf-8"))
        if not demo or ack["reason"] != SELF_REQUEST.format(step=pause_at):
            raise
        print(f"selfcheck: {exc}")
        print(f"selfcheck: ack {ack_path} (checkpoint {ack['checkpoint']}); resuming")
        run = run_once(args, cfg, pause_at=None, resume=True)
    print(summary(run))
    return 0


def summary(run: RunDir) -> str:
    """Where the run lies and what it produced, in a few lines."""
    metrics = json.loads((run.path / "metrics.json").read_text(encoding="utf-8"))
    phase = run.record["phases"][PHASE]
    return "\n".join(
        [
            f"selfcheck: run {run.record['status']} at {run.path.resolve()}",
            f"  steps {metrics['steps']}, final train loss {metrics['final_train_loss']:.6f}, "
            f"eval loss {metrics['eval_loss']:.6f}, attempts {phase['attempts']}",
            f"  artifacts {len(run.record['artifact_index'])} indexed in {run.path / RECORD}",
            f"  heartbeat {run.path / 'logs' / f'{PHASE}_heartbeat.json'}",
            f"  watch it: python -m labkit.watch --run_dir {run.path}",
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m labkit.selfcheck`."""
    p = argparse.ArgumentParser(prog="labkit.selfcheck", description=__doc__.splitlines()[0])
    p.add_argument("--run_dir", required=True, help="run directory to create or resume")
    p.add_argument("--config", help="YAML config (default: the built-in one)")
    p.add_argument("--steps", type=int, help="shorthand for train.steps=N")
    p.add_argument("--seed", type=int, help="shorthand for seed=S")
    p.add_argument(
        "--pause_at",
        type=int,
        help="request a pause after step K and exit 75 (0: never; default: the demo cycle on a fresh run)",
    )
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue an unfinished run in --run_dir (default); --no-resume refuses with exit 4",
    )
    p.add_argument(
        "--step_sleep",
        type=float,
        default=0.0,
        help="seconds each step waits between its update and its bookkeeping (to watch or interrupt it)",
    )
    p.add_argument(
        "--heartbeat_s", type=float, default=1.0, help="minimum seconds between heartbeat writes"
    )
    p.add_argument("overrides", nargs="*", help="dot-key overrides, e.g. train.lr=0.005")
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
