"""`python -m cachemedicpp.train --config Y --run_dir D [--resume|--no-resume] [key=value ...]`.

Trains R_phi on a frozen GPT-2 model by self-distillation. Before the first step it writes
`metrics/calibration.json` (eps* per type when `corruption.calibrate.enabled`, else the fixed grid).
A pause request (`D/control/pause.request`) checkpoints and exits 75; rerunning resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from cachemedicpp.calibration import calibrate
from cachemedicpp.cli_args import phase_parser
from cachemedicpp.config import load_run_config
from cachemedicpp.data import split_stream
from cachemedicpp.mixture import donor_cache, eps_grids, make_event, ood_split, train_mix
from cachemedicpp.modeling import load_model
from cachemedicpp.phase_run import check_same_model, model_identity, open_phase_run
from cachemedicpp.ppl import sliding_windows
from cachemedicpp.trainer import PHASE, Trainer
from labkit.atomic import atomic_write_json, atomic_write_text
from labkit.cli import run_cli
from labkit.config import canonical_yaml
from labkit.determinism import seed_everything
from labkit.rundir import RunDir, check_creatable


def donor_length(cfg: Mapping[str, Any], n_positions: int) -> int:
    """Positions the overwrite donor must cover: the end of every window it may be asked for."""
    ends = [cfg["corruption"]["params"]["overwrite_window"][1]]
    if cfg["corruption"]["axes"]["window"] is not None:
        ends.append(cfg["corruption"]["axes"]["window"][1])
    return min(max(ends), n_positions)


class CalibrationMissWarning(UserWarning):
    """A type's calibrated eps did not reach the target PPL increase within the tolerance."""


def warn_missed(result: Mapping[str, Any]) -> None:
    """Warn once per type whose calibration missed its target (its eps is a fallback, not eps*)."""
    target = result["target_ppl_increase"]
    for kind, r in result["types"].items():
        if not r["reached"]:
            warnings.warn(
                f"calibration of {kind} missed its target: +{100 * r['ppl_increase']:.1f} % PPL "
                f"at eps {r['eps_star']:.4g}, target +{100 * target:.0f} %; eval, tables and "
                "figures label this eps as a fallback (raise corruption.calibrate.eps_max or "
                "max_iter)",
                CalibrationMissWarning,
                stacklevel=2,
            )


def calibration_record(
    run: RunDir,
    cfg: Mapping[str, Any],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    donor: Mapping[int, tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, Any]:
    """The `metrics/calibration.json` record: eps* per type and the eps grids training samples from."""
    cal = cfg["corruption"]["calibrate"]
    # The OOD split's held-out type is evaluated whatever eval.corruption_eval lists: calibrate it too.
    split = ood_split(cfg)
    held_out = {split["test_type"]} if split is not None else set()
    types = sorted(set(train_mix(cfg)) | set(cfg["eval"]["corruption_eval"]) | held_out)
    settings = {**cal, "split": cfg["data"]["calibration_split"], "types": types}
    metrics: dict[str, Any] = {"enabled": cal["enabled"]}
    eps_star = None
    if cal["enabled"]:
        stream = split_stream(cfg, tokenizer, "calibration_split")
        stride = cal["stride"] or cal["window"]
        windows = sliding_windows(stream, cal["window"], stride, cal["n_windows"])
        settings["windows_used"] = len(windows)

        def event(kind: str, eps: float, i: int):
            key = (cfg["seed"], "calibrate", i)
            return make_event(
                cfg, kind, eps, key, max_len=cal["window"], donor=donor, persistence="transient"
            )

        result = calibrate(model, windows, types, event, cal)
        warn_missed(result)
        eps_star = {t: r["eps_star"] for t, r in result["types"].items()}
        metrics.update(result, eps_star=eps_star)
    metrics["grids"] = eps_grids(cfg, types, eps_star)
    return {
        "run_id": run.record["run_id"],
        "config_hash": run.record["config_hash"],
        "metrics": metrics,
        "settings": settings,
    }


def train_run(
    cfg: Mapping[str, Any],
    run_dir: str | os.PathLike,
    *,
    resume: bool = True,
    config_path: str | os.PathLike | None = None,
    pause_check_s: float = 0.5,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the train phase of a resolved config in `run_dir`; return its summary."""
    flags = seed_everything(cfg["seed"])
    model, tokenizer = load_model(cfg)
    stream = split_stream(cfg, tokenizer, "train_split")
    check_same_model(run_dir, model)
    run = open_phase_run(cfg, run_dir, PHASE, flags, resume=resume, config_path=config_path)
    run.update(model=model_identity(model))
    with run.running():
        mix = train_mix(cfg)
        split = ood_split(cfg)
        if split is not None:
            text = canonical_yaml({"split": cfg["eval"]["ood_protocol"], **split, "weights": mix})
            run.register_artifact(atomic_write_text(run.file("ood_train_mix.yaml"), text))
        donor = donor_cache(
            model,
            tokenizer,
            cfg["corruption"]["params"]["donor_prompt"],
            donor_length(cfg, model.config.max_position_embeddings),
        )
        cal_path = run.path / "metrics" / "calibration.json"
        if run.resumed and cal_path.is_file():
            record = json.loads(cal_path.read_text(encoding="utf-8"))
        else:
            record = calibration_record(run, cfg, model, tokenizer, donor)
            run.register_artifact(
                atomic_write_json(run.file("metrics", "calibration.json"), record)
            )
        grids = {t: record["metrics"]["grids"][t] for t in mix}
        trainer = Trainer(run, cfg, model, stream, mix, grids, donor, tokenizer)
        summary = trainer.fit(pause_check_s=pause_check_s, on_step=on_step)
    return {**summary, "run_dir": str(Path(run_dir).resolve())}


def main(args: argparse.Namespace) -> int:
    """Load and resolve the config, then train."""
    cfg = load_run_config(args.config, args.overrides)
    check_creatable(args.run_dir)  # before the model loads
    summary = train_run(cfg, args.run_dir, resume=args.resume, config_path=args.config)
    print(
        f"cachemedicpp.train: {summary['steps']} steps, R_phi {summary['repair_params']} parameters, "
        f"final checkpoint {Path(summary['run_dir']) / summary['checkpoint']}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m cachemedicpp.train`."""
    return phase_parser(
        "train",
        "Train R_phi by self-distillation on a frozen GPT-2, Llama, Qwen2 or Mistral model.",
        "run directory to create or resume",
    )


if __name__ == "__main__":
    run_cli(build_parser(), main)
