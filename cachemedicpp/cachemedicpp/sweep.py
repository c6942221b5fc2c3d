"""`python -m cachemedicpp.sweep --sweep_config S --out_root O [--resume|--no-resume]`.

A base config plus per-run dot-key overrides (labkit.sweep), each run taken through train → eval →
stability → plots in `<out_root>/<sweep_name>/<run>/`. A relative `eval.no_contr_run_dir` names a
sibling run of the same sweep (list it earlier). After the runs, paired contr − no_contr deltas
over seeds get BCa CIs in `<out_root>/<sweep_name>/ablation_summary.json`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cachemedicpp.config import resolve, schema
from cachemedicpp.eval import eval_run
from cachemedicpp.plots import make_plots
from cachemedicpp.stability import stability_run
from cachemedicpp.train import train_run
from labkit.atomic import atomic_write_json
from labkit.cli import run_cli
from labkit.config import load_yaml, validate
from labkit.determinism import derive_seed
from labkit.stats import bootstrap_ci
from labkit.sweep import SweepPlan, plan_sweep, run_sweep

ENTRY = "cachemedicpp.sweep:run_one"


def run_one(name: str, config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """One sweep run, all phases (each resumes where it stopped); returns its headline numbers."""
    config = json.loads(json.dumps(config))
    pair = config.get("eval", {}).get("no_contr_run_dir")
    if pair is not None and not Path(pair).is_absolute():
        config["eval"]["no_contr_run_dir"] = str((Path(run_dir).parent / pair).resolve())
    cfg = resolve(config, what=f"sweep run {name}")
    done = _phases_done(run_dir)
    if "train" not in done:
        train_run(cfg, run_dir)
    if "eval" not in done:
        eval_run(cfg, run_dir)
    if "stability" not in done:
        stability_run(cfg, run_dir)
    make_plots(run_dir)
    return headline(run_dir)


def _phases_done(run_dir: Path) -> set[str]:
    path = Path(run_dir) / "run_record.json"
    if not path.is_file():
        return set()
    phases = json.loads(path.read_text(encoding="utf-8")).get("phases", {})
    return {p for p, s in phases.items() if s["status"] == "complete"}


def headline(run_dir: Path) -> dict[str, Any]:
    """Per run: seed, mean AUC per defense, clean regression, Sens at the largest δn."""
    task = json.loads((Path(run_dir) / "metrics" / "task_metrics.json").read_text("utf-8"))
    stab = json.loads((Path(run_dir) / "metrics" / "stability_metrics.json").read_text("utf-8"))
    cfg = load_yaml(Path(run_dir) / "config_resolved.yaml")
    m = task["metrics"]
    top = stab["metrics"]["stability"]["logit_sensitivity"][-1]
    return {
        "seed": cfg["seed"],
        "lambda_contr": cfg["loss"]["lambda_contr"],
        "mean_auc": m["mean_auc"],
        "clean_regression": m["clean_regression"],
        "needle_gate": m["needle_gate"],
        "sensitivity_at_max_delta": top,
    }


def ablation(results: Mapping[str, Mapping[str, Any]], seed: int) -> dict[str, Any]:
    """Per-seed contr − no_contr AUC gain and Sens ratio (runs evaluated with their pair), BCa CIs."""
    paired = [
        r
        for r in results.values()
        if r and "cachemedic_no_contr" in r["mean_auc"] and "cachemedic" in r["mean_auc"]
    ]
    gains = [r["mean_auc"]["cachemedic"] - r["mean_auc"]["cachemedic_no_contr"] for r in paired]
    ratios = [
        r["sensitivity_at_max_delta"]["cachemedic"]
        / r["sensitivity_at_max_delta"]["cachemedic_no_contr"]
        for r in paired
    ]
    out: dict[str, Any] = {"seeds": [r["seed"] for r in paired]}
    for key, values, null in (("auc_gain", gains, 0.0), ("sens_ratio", ratios, 1.0)):
        ci = bootstrap_ci(np.asarray(values), seed=derive_seed(seed, key)).to_dict()
        excludes = ci["low"] is not None and not (ci["low"] <= null <= ci["high"])
        out[key] = {"values": values, "ci": ci, "null": null, "effect_claimed": excludes}
    return out


def load_plan(path: str | Path) -> SweepPlan:
    """A sweep file expanded and every run's config resolved (exit 2 on any bad run, before work).

    The base config is resolved first (schema defaults filled), so a run may override any key
    the schema knows, not only those its YAML spells out.
    """
    path = Path(path)
    doc = load_yaml(path)
    validate(doc, schema("sweep"), what=str(path))
    base = resolve(load_yaml(path.parent / doc["base_config"]), what=doc["base_config"])
    return plan_sweep(
        {**doc, "base_config": base},
        base_dir=path.parent,
        source=str(path),
        config_schema=lambda cfg: resolve(cfg),
    )


def main(args: argparse.Namespace) -> int:
    """Plan (validated before any run starts), run, summarise."""
    plan = load_plan(args.sweep_config)
    summary = run_sweep(plan, args.out_root, run_fn=ENTRY, resume=args.resume, force=False)
    results = {r["name"]: r["result"] for r in summary["runs"]}
    base = resolve(plan.runs[0].config)
    out = Path(args.out_root) / plan.name / "ablation_summary.json"
    atomic_write_json(out, ablation(results, base["seed"]))
    print(
        f"cachemedicpp.sweep: {len(plan.runs)} runs; summary {args.out_root}/{plan.name}_summary.json"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m cachemedicpp.sweep`."""
    p = argparse.ArgumentParser(
        prog="cachemedicpp.sweep",
        description="Run a sweep of CacheMedic++ runs (train, eval, stability, plots each).",
    )
    p.add_argument(
        "--sweep_config", required=True, help="sweep YAML, e.g. configs/seedrep_local.yaml"
    )
    p.add_argument("--out_root", required=True, help="folder that receives <sweep_name>/")
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip complete runs and resume the rest (default); --no-resume refuses an existing sweep",
    )
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
