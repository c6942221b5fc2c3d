"""`python -m cachemedicpp.eval --config Y --run_dir D [--resume|--no-resume] [key=value ...]`.

Scores every (task, corruption type, eps, defense) cell of §7 on a trained run, one resumable unit
at a time (`metrics/eval_progress.json`), then writes `metrics/task_metrics.json` with per-cell
metrics, BCa CIs over examples, AUC over eps and clean regression. eps 0 is one cell per defense.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from cachemedicpp.cli_args import phase_parser
from cachemedicpp.config import load_run_config
from cachemedicpp.eval_metrics import CLEAN, cell_scores, summarize, unit_key
from cachemedicpp.heuristics import HEURISTICS, build_heuristic, clean_median_rms
from cachemedicpp.intervention import Defense, intervene
from cachemedicpp.memory import PeakMemory
from cachemedicpp.mixture import donor_cache, make_event, ood_split
from cachemedicpp.modeling import load_model
from cachemedicpp.phase_run import open_phase_run, require_trained
from cachemedicpp.repair import RepairOperator
from cachemedicpp.rescore import prepare_from_run
from cachemedicpp.task_auc import Axis
from cachemedicpp.tasks import (
    LABELS,
    Example,
    clean_reference,
    needle_examples,
    ppl_examples,
    score_needle,
    score_ppl,
    score_sst2,
    sst2_examples,
)
from cachemedicpp.train import donor_length
from labkit.atomic import atomic_write_json, atomic_write_text
from labkit.checkpoint import latest_checkpoint, load_checkpoint
from labkit.cli import run_cli
from labkit.control import PauseControl
from labkit.determinism import seed_everything
from labkit.errors import ConfigError, MissingInputError, Paused
from labkit.heartbeat import Heartbeat
from labkit.jsonl import append_jsonl
from labkit.rundir import RunDir, utc_now

PHASE = "eval"


def load_repair(run_dir: str | os.PathLike, device: torch.device) -> RepairOperator:
    """R_phi from the newest `repair_step_*.pt` of a run (exit 3 when the run has none)."""
    path = latest_checkpoint(Path(run_dir) / "checkpoints", "repair_step_*.pt")
    if path is None:
        raise MissingInputError(f"no checkpoints/repair_step_*.pt in {run_dir}; train it first")
    return RepairOperator.from_checkpoint(load_checkpoint(path)).to(device).eval()


def eval_types(cfg: Mapping[str, Any]) -> list[str]:
    """Types to evaluate: the OOD split's held-out type only, under an OOD protocol."""
    split = ood_split(cfg)
    return [split["test_type"]] if split is not None else list(cfg["eval"]["corruption_eval"])


def eval_grids(run: RunDir, cfg: Mapping[str, Any]) -> dict[str, list[float]]:
    """eps grid per evaluated type: calibrated (eps*×multipliers) when available and asked for."""
    types = eval_types(cfg)
    path = run.path / "metrics" / "calibration.json"
    if cfg["eval"]["use_calibrated_grid"] and cfg["corruption"]["calibrate"]["enabled"]:
        if not path.is_file():
            raise MissingInputError(f"{path} is missing; run cachemedicpp.train first")
        grids = json.loads(path.read_text(encoding="utf-8"))["metrics"]["grids"]
        missing = [t for t in types if t not in grids]
        if missing:
            raise ConfigError(
                f"{path} has no calibrated grid for {missing}; retrain or set "
                "eval.use_calibrated_grid=false"
            )
        return {t: [float(e) for e in grids[t]] for t in types}
    return {t: [float(e) for e in cfg["eval"]["eps"]] for t in types}


def calibration_status(run: RunDir, cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """Per evaluated type: eps*, whether calibration reached its target, and the PPL rise found."""
    path = run.path / "metrics" / "calibration.json"
    if not (cfg["corruption"]["calibrate"]["enabled"] and path.is_file()):
        return None
    found = json.loads(path.read_text(encoding="utf-8"))["metrics"]["types"]
    keep = ("eps_star", "reached", "ppl_increase")
    return {t: {k: found[t][k] for k in keep} for t in eval_types(cfg) if t in found}


def damage_axis(
    cfg: Mapping[str, Any], grids: Mapping[str, list[float]], calibration: Mapping | None
) -> Axis:
    """x = eps/eps* per type on a calibrated grid; else eps over the grid's largest eps."""
    calibrated = calibration is not None and cfg["eval"]["use_calibrated_grid"]
    reference = {t: calibration[t]["eps_star"] if calibrated else max(grids[t]) for t in grids}
    return Axis(grids=grids, reference=reference, calibrated=calibrated)


def plan_units(
    cfg: Mapping[str, Any], grids: Mapping[str, list[float]], defenses: list[str]
) -> list[tuple[str, str, float, str]]:
    """Every (task, type, eps, defense) unit in a fixed order; eps 0 once per (task, defense)."""
    units = []
    for task in cfg["eval"]["tasks"]:
        for defense in defenses:
            units.append((task, CLEAN, 0.0, defense))
        for kind in eval_types(cfg):
            for eps in grids[kind]:
                if eps > 0:
                    units.extend((task, kind, eps, d) for d in defenses)
    return units


class Evaluator:
    """Model, examples, defenses and events of one eval phase."""

    def __init__(self, run: RunDir, cfg: Mapping[str, Any], model: PreTrainedModel, tok: Any):
        self.run, self.cfg, self.model, self.tok = run, cfg, model, tok
        ev = cfg["eval"]
        self.examples: dict[str, list[Example]] = {}
        if "wikitext2_ppl" in ev["tasks"]:
            self.examples["wikitext2_ppl"] = ppl_examples(tok, ev["wikitext2_ppl"])
        if "sst2_prompted" in ev["tasks"]:
            self.examples["sst2_prompted"] = sst2_examples(tok, ev["sst2_prompted"])
            self.label_ids = tuple(torch.tensor(tok(lab).input_ids) for lab in LABELS)
        if "needle_long_context" in ev["tasks"]:
            self.examples["needle_long_context"] = needle_examples(
                tok,
                ev["needle_long_context"],
                model.config.max_position_embeddings,
                ev["wikitext2_ppl"],
            )
        self._clean: dict[tuple[str, int], torch.Tensor] = {}
        self._clean_bytes = 0
        self.donor = donor_cache(
            model,
            tok,
            cfg["corruption"]["params"]["donor_prompt"],
            donor_length(cfg, model.config.max_position_embeddings),
        )
        self.defenses = self._defenses()

    def _defenses(self) -> dict[str, Defense | None]:
        cfg, out = self.cfg, {}
        names = list(cfg["eval"]["defenses"])
        if cfg["eval"]["no_contr_run_dir"] is not None and "cachemedic_no_contr" not in names:
            names.append("cachemedic_no_contr")
        for name in names:
            if name == "no_defense":
                out[name] = None
            elif name in HEURISTICS:
                out[name] = build_heuristic(name, cfg, self._clean_rms())
            elif name == "cachemedic":
                out[name] = load_repair(self.run.path, self.model.device)
            else:
                other = cfg["eval"]["no_contr_run_dir"]
                if other is None:
                    raise MissingInputError(
                        "defense cachemedic_no_contr needs eval.no_contr_run_dir (the paired run)"
                    )
                out[name] = load_repair(other, self.model.device)
        return out

    @torch.no_grad()
    def _clean_rms(self) -> float:
        """Median clean K/V RMS over the protected layers of the first example (target_rms auto)."""
        first = next(iter(self.examples.values()))[0]
        layers = self.cfg["repair"]["protect_layers"]
        with intervene(self.model, record=layers) as iv:
            self.model(first.ids.to(self.model.device))
        return clean_median_rms(iv.records)

    def event_for(self, task: str, kind: str, eps: float, i: int, length: int):
        """The seeded event example i reads (identical across defenses: paired comparisons)."""
        if kind == CLEAN:
            return None
        persistence = "persistent" if task == "needle_long_context" else "transient"
        key = (self.cfg["seed"], "eval", task, kind, eps, i)
        return make_event(
            self.cfg, kind, eps, key, max_len=length, donor=self.donor, persistence=persistence
        )

    def clean_reference(self, task: str, i: int) -> torch.Tensor | None:
        """Example i's clean logits (see tasks.clean_reference), kept for every later cell while
        the `eval.clean_cache_mb` budget lasts; beyond it they are recomputed on each use."""
        key = (task, i)
        if key in self._clean:
            return self._clean[key]
        logits = clean_reference(self.model, task, self.examples[task][i])
        if logits is not None:
            size = logits.numel() * logits.element_size()
            if self._clean_bytes + size <= self.cfg["eval"]["clean_cache_mb"] * 2**20:
                self._clean[key], self._clean_bytes = logits, self._clean_bytes + size
        return logits

    def run_unit(self, unit: tuple[str, str, float, str]) -> dict[str, Any]:
        """Per-example results of one unit, the seconds and peak memory of its defended reads,
        and the tokens they processed (the clean references are computed outside the timing)."""
        task, kind, eps, name = unit
        defense, model = self.defenses[name], self.model
        rows, tokens, seconds = [], 0, 0.0
        memory = PeakMemory(model.device)
        for i, ex in enumerate(self.examples[task]):
            clean = self.clean_reference(task, i)
            length = ex.ids.shape[1]
            t0 = time.perf_counter()
            if task == "wikitext2_ppl":
                event = self.event_for(task, kind, eps, i, length)
                rows.append(score_ppl(model, ex, event, defense, clean))
                tokens += length
            elif task == "sst2_prompted":
                extra = max(lab.numel() for lab in self.label_ids)
                event = self.event_for(task, kind, eps, i, length + extra)
                rows.append(score_sst2(model, ex, event, defense, self.label_ids, clean))
                tokens += length
            else:
                answer = torch.tensor(self.tok(ex.answer).input_ids)
                event = self.event_for(task, kind, eps, i, length + answer.numel())
                rows.append(score_needle(model, ex, event, defense, answer, self.tok.eos_token_id))
                tokens += answer.numel()
            seconds += time.perf_counter() - t0
        return {"rows": rows, "seconds": seconds, "tokens": tokens, **memory.read()}


def eval_run(
    cfg: Mapping[str, Any],
    run_dir: str | os.PathLike,
    *,
    resume: bool = True,
    config_path: str | os.PathLike | None = None,
    pause_check_s: float = 0.5,
) -> dict[str, Any]:
    """Run (or resume) the eval phase of a trained run; return the task metrics record."""
    flags = seed_everything(cfg["seed"])
    model, tok = load_model(cfg)
    require_trained(cfg, run_dir, model)
    run = open_phase_run(cfg, run_dir, PHASE, flags, resume=resume, config_path=config_path)
    progress_path = run.path / "metrics" / "eval_progress.json"
    log_path = run.path / "logs" / "eval.jsonl"
    with run.running():
        done: dict[str, Any] = {}
        if run.resumed and progress_path.is_file():
            done = json.loads(progress_path.read_text(encoding="utf-8"))["units"]
        else:
            log_path.unlink(missing_ok=True)
        grids = eval_grids(run, cfg)
        evaluator = Evaluator(run, cfg, model, tok)
        units = plan_units(cfg, grids, list(evaluator.defenses))
        hb = Heartbeat(run.path, PHASE, len(units), step=len(done))
        pause = PauseControl(run.path, PHASE, heartbeat=hb, min_interval_s=pause_check_s)
        try:
            for n, unit in enumerate(units, start=1):
                key = unit_key(unit)
                if key in done:
                    continue
                done[key] = evaluator.run_unit(unit)
                state = {"config_hash": run.record["config_hash"], "units": done}
                # Compact, so the C encoder writes it: indented, rewriting every finished unit's
                # rows after each unit took about a minute of a 450-unit demo eval (shared machine).
                atomic_write_text(progress_path, json.dumps(state, allow_nan=False) + "\n")
                append_jsonl(log_path, _log_record(run, n, unit, done[key]))
                hb.beat(len(done), metrics={"unit": key})
                if len(done) < len(units) and pause.requested():
                    ack = pause.acknowledge(len(done), progress_path)
                    raise Paused(
                        f"paused after {len(done)}/{len(units)} eval units (ack {ack}); "
                        "rerun to resume"
                    )
        except Paused:
            raise
        except BaseException as exc:
            hb.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        calibration = calibration_status(run, cfg)
        record = {
            "run_id": run.record["run_id"],
            "config_hash": run.record["config_hash"],
            "metrics": summarize(cfg, units, done, damage_axis(cfg, grids, calibration)),
            "settings": {
                "grids": grids,
                "defenses": list(evaluator.defenses),
                "tasks": list(cfg["eval"]["tasks"]),
                "examples": {t: len(x) for t, x in evaluator.examples.items()},
                "bootstrap": cfg["eval"]["bootstrap"],
                "calibration": calibration,
            },
        }
        atomic_write_json(run.file("metrics", "task_metrics.json"), record)
        hb.set_status("complete", step=len(done))
        for name in (
            "metrics/task_metrics.json",
            "metrics/eval_progress.json",
            "logs/eval.jsonl",
            "logs/eval_heartbeat.json",
            "logs/eval_heartbeat.jsonl",
        ):
            run.register_artifact(name)
    return record


def _log_record(
    run: RunDir, step: int, unit: tuple[str, str, float, str], result: Mapping[str, Any]
) -> dict[str, Any]:
    task, kind, eps, defense = unit
    rows = result["rows"]
    return {
        "run_id": run.record["run_id"],
        "phase": PHASE,
        "timestamp_utc": utc_now(),
        "step": step,
        "task": task,
        "defense": defense,
        "corruption": {
            "type": None if kind == CLEAN else kind,
            "epsilon": eps,
            "eps_realized": float(np.mean([r["eps_realized"] for r in rows])),
        },
        "examples": len(rows),
        "seconds": result["seconds"],
        "scores": cell_scores(task, rows),
    }


def main(args: argparse.Namespace) -> int:
    """Load and resolve the config (with --from_run: make the new run of that operator), evaluate."""
    cfg = load_run_config(args.config, args.overrides)
    if args.from_run is not None:
        prepare_from_run(cfg, args.from_run, args.run_dir, config_path=args.config)
    record = eval_run(cfg, args.run_dir, resume=args.resume, config_path=args.config)
    n = len(record["metrics"]["cells"])
    print(f"cachemedicpp.eval: {n} cells -> {Path(args.run_dir) / 'metrics/task_metrics.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m cachemedicpp.eval`."""
    p = phase_parser(
        "eval",
        "Evaluate defenses over the corruption grid on a trained CacheMedic++ run.",
        "the trained run directory (with --from_run: a new one)",
    )
    p.add_argument(
        "--from_run",
        default=None,
        help="score this trained run's R_phi under --config in the new --run_dir (no retraining);"
        " the model, corruption and repair sections must match the train run's",
    )
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
