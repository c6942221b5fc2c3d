"""`python -m cachemedicpp.sweep --sweep_config S --out_root O [--resume|--no-resume]`.

A base config plus per-run dot-key overrides (labkit.sweep), each run taken through train → eval →
stability → plots in `<out_root>/<sweep_name>/<run>/`. A relative `eval.no_contr_run_dir` names a
sibling run of the same sweep, which then runs first on any executor (`--executor local|ray`).
After the runs, paired contr − no_contr deltas over seeds get BCa CIs in
`<out_root>/<sweep_name>/ablation_summary.json`.

`--no-resume` restarts every unfinished phase from scratch (and the sweep's ledger) and is refused
(exit 4) when any run has a complete phase, which is never overwritten; a sweep-level pause
request is relayed into the run in flight, whose phase pauses at its next unit (exit 75); an
optional `budget` (max_runs, max_wall_hours) stops launching runs once spent (exit 1). Any failed
run makes the sweep exit 1 after the summaries are written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from cachemedicpp.config import resolve, schema
from cachemedicpp.eval import eval_run
from cachemedicpp.plots import make_plots
from cachemedicpp.stability import stability_run
from cachemedicpp.train import train_run
from labkit.atomic import atomic_write_json
from labkit.cli import add_executor_flags, bounded_int, run_cli
from labkit.config import apply_overrides, load_yaml, validate
from labkit.control import PauseControl
from labkit.determinism import derive_seed
from labkit.errors import LabkitError, Paused, RunExistsError
from labkit.executors import (
    Executor,
    OrderedExecutor,
    RunOutcome,
    RunTask,
    executor_spec,
    make_executor,
)
from labkit.pause_relay import relay_pause
from labkit.rehearsal import profile_overrides, with_profile
from labkit.stats import bootstrap_ci
from labkit.sweep import SweepPlan, plan_sweep, run_sweep, summary_path
from labkit.sweep_view import live_sweep
from labkit.tables import add_json_flag, print_json, table_console

ENTRY = "cachemedicpp.sweep:run_one"
# Entry of `--no-resume`: every phase of a run restarts from scratch.
FRESH_ENTRY = "cachemedicpp.sweep:run_one_fresh"
RELAY_INTERVAL_S = 0.5  # how often a run looks for the sweep's pause request
MIN_SEEDS = 5  # fewest seeds behind an effect claim (see paired_claim)


def run_one(name: str, config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """One sweep run, all phases (each resumes where it stopped); returns its headline numbers."""
    return _run_phases(name, config, run_dir, resume=True)


def run_one_fresh(name: str, config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """One sweep run with every phase restarted (`--no-resume`); returns its headline numbers."""
    return _run_phases(name, config, run_dir, resume=False)


def _run_phases(name: str, config: dict[str, Any], run_dir: Path, *, resume: bool) -> dict:
    config = json.loads(json.dumps(config))
    pair = config.get("eval", {}).get("no_contr_run_dir")
    if pair is not None and not Path(pair).is_absolute():
        config["eval"]["no_contr_run_dir"] = str((Path(run_dir).parent / pair).resolve())
    cfg = resolve(config, what=f"sweep run {name}")
    done = _phases_done(run_dir) if resume else set()
    # A pause request of the sweep pauses the phase in flight, not only the next launch.
    with relay_pause(Path(run_dir).parent, run_dir, interval_s=RELAY_INTERVAL_S):
        for phase, fn in (("train", train_run), ("eval", eval_run), ("stability", stability_run)):
            if phase not in done:
                fn(cfg, run_dir, resume=resume)
        make_plots(run_dir)
    return headline(run_dir)


@dataclass(frozen=True)
class Budget:
    """Budget hints of a sweep, counted over every invocation; None: no limit."""

    max_runs: int | None = None  # runs finished (complete or failed)
    max_wall_hours: float | None = None  # summed wall time of finished runs (run-hours)

    def spent(self, runs: int, wall_s: float) -> str | None:
        """Why no further run may start after `runs` runs and `wall_s` seconds, or None."""
        if self.max_runs is not None and runs >= self.max_runs:
            return f"budget.max_runs {self.max_runs} reached ({runs} runs finished)"
        if self.max_wall_hours is not None and wall_s >= 3600 * self.max_wall_hours:
            return (
                f"budget.max_wall_hours {self.max_wall_hours:g} reached "
                f"({wall_s / 3600:.3f} run-hours)"
            )
        return None


class BudgetedExecutor:
    """An executor that also stops launching once the sweep's budget is spent."""

    def __init__(self, inner: Executor, budget: Budget, runs: int, wall_s: float):
        self.inner, self.budget = inner, budget
        self.runs, self.wall_s = runs, wall_s
        self.reason: str | None = None

    def run(
        self,
        tasks: Sequence[RunTask],
        *,
        should_stop: Callable[[], bool],
        on_start: Callable[[RunTask], None],
        on_done: Callable[[RunOutcome], None],
    ) -> None:
        """Run `tasks` through the wrapped executor, counting what each finished run used."""

        def stop() -> bool:
            if should_stop():
                return True
            self.reason = self.budget.spent(self.runs, self.wall_s)
            return self.reason is not None

        def done(outcome: RunOutcome) -> None:
            self.wall_s += outcome.wall_s
            self.runs += outcome.status in ("complete", "failed")
            on_done(outcome)

        self.inner.run(tasks, should_stop=stop, on_start=on_start, on_done=done)


def budget_used(summary: Mapping[str, Any] | None) -> tuple[int, float]:
    """(finished runs, their summed wall seconds) recorded by earlier invocations of a sweep."""
    runs = [] if summary is None else summary["runs"]
    finished = [r for r in runs if r["status"] in ("complete", "failed")]
    return len(finished), float(sum(r["wall_s"] or 0.0 for r in finished))


def _phases_done(run_dir: Path) -> set[str]:
    path = Path(run_dir) / "run_record.json"
    if not path.is_file():
        return set()
    phases = json.loads(path.read_text(encoding="utf-8")).get("phases", {})
    return {p for p, s in phases.items() if s["status"] == "complete"}


def headline(run_dir: Path) -> dict[str, Any]:
    """Per run: seed, AUC per task and defense (never averaged across tasks), clean regression,
    Sens at the largest δn."""
    task = json.loads((Path(run_dir) / "metrics" / "task_metrics.json").read_text("utf-8"))
    stab = json.loads((Path(run_dir) / "metrics" / "stability_metrics.json").read_text("utf-8"))
    cfg = load_yaml(Path(run_dir) / "config_resolved.yaml")
    m = task["metrics"]
    top = stab["metrics"]["stability"]["logit_sensitivity"][-1]
    return {
        "seed": cfg["seed"],
        "lambda_contr": cfg["loss"]["lambda_contr"],
        "task_auc": {t: m["task_auc"][t] for t in m["aggregated_tasks"]},
        "clean_regression": m["clean_regression"],
        "needle_gate": m["needle_gate"],
        "sensitivity_at_max_delta": top,
    }


def paired_claim(
    a: Sequence[float],
    b: Sequence[float],
    *,
    null: float,
    ratio: bool,
    cfg: Mapping[str, Any],
    key: str,
) -> dict[str, Any]:
    """Per-seed a − b (or a / b) with a BCa CI over seeds and a paired t-test of a against b.

    An effect is claimed only with at least MIN_SEEDS seeds, p below 1 − confidence, and a CI
    that excludes the null: with three seeds "all agree in sign" happens by chance a quarter of
    the time, and with five a two-sided sign or Wilcoxon test cannot reach p < 0.05 at all.
    """
    # A seed whose curve is undefined (no PPL damage above 1 %) has no pair to compare.
    kept = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    pairs = np.asarray(kept, dtype=float).reshape(-1, 2)
    a_arr, b_arr = pairs[:, 0], pairs[:, 1]
    values = a_arr / b_arr if ratio else a_arr - b_arr
    confidence = cfg["eval"]["bootstrap"]["confidence"]
    ci = bootstrap_ci(values, seed=derive_seed(cfg["seed"], key), confidence=confidence).to_dict()
    p = None
    if values.size >= 2 and np.ptp(values) > 0:
        p = float(scipy.stats.ttest_rel(a_arr, b_arr).pvalue)
    excludes = ci["low"] is not None and not (ci["low"] <= null <= ci["high"])
    claimed = values.size >= MIN_SEEDS and p is not None and p < 1 - confidence and excludes
    return {
        "values": values.tolist(),
        "ci": ci,
        "null": null,
        "test": "paired t-test over seeds (scipy.stats.ttest_rel)",
        "p_value": p,
        "n_seeds": int(values.size),
        "min_seeds": MIN_SEEDS,
        "effect_claimed": bool(claimed),
    }


def ablation(results: Mapping[str, Mapping[str, Any]], cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Per task, contr − no_contr AUC gain over the seeds (each contr run scored with its seed's
    no_contr R_phi), and the Sens ratio; BCa CIs and paired t-tests."""
    paired = [
        r
        for r in results.values()
        if r
        and all({"cachemedic", "cachemedic_no_contr"} <= set(v) for v in r["task_auc"].values())
    ]
    out: dict[str, Any] = {"seeds": [r["seed"] for r in paired], "auc_gain": {}}
    tasks = sorted(set.intersection(*(set(r["task_auc"]) for r in paired))) if paired else []
    for t in tasks:
        out["auc_gain"][t] = paired_claim(
            [r["task_auc"][t]["cachemedic"] for r in paired],
            [r["task_auc"][t]["cachemedic_no_contr"] for r in paired],
            null=0.0,
            ratio=False,
            cfg=cfg,
            key=f"auc_gain/{t}",
        )
    out["sens_ratio"] = paired_claim(
        [r["sensitivity_at_max_delta"]["cachemedic"] for r in paired],
        [r["sensitivity_at_max_delta"]["cachemedic_no_contr"] for r in paired],
        null=1.0,
        ratio=True,
        cfg=cfg,
        key="sens_ratio",
    )
    return out


def load_plan(path: str | Path, overrides: Sequence[str] = ()) -> SweepPlan:
    """A sweep file expanded and every run's config resolved (exit 2 on any bad run, before work).

    The base config is resolved first (schema defaults filled) with `overrides` (e.g. device=cpu),
    so a run may override any key the schema knows, not only those its YAML spells out.
    Rehearsing, the rehearsal profile caps the sweep file (e.g. to one run) and its base config.
    """
    path = Path(path)
    doc = apply_overrides(load_yaml(path), profile_overrides(path))
    validate(doc, schema("sweep"), what=str(path))
    doc.pop("budget", None)  # this package's key, read by load_budget; labkit's schema is closed
    base_path = path.parent / doc["base_config"]
    base = resolve(
        load_yaml(base_path), with_profile(base_path, overrides), what=doc["base_config"]
    )
    return plan_sweep(
        {**doc, "base_config": base},
        base_dir=path.parent,
        source=str(path),
        config_schema=lambda cfg: resolve(cfg),
    )


def pair_needs(plan: SweepPlan) -> dict[str, set[str]]:
    """Run name -> the sibling run whose R_phi it scores as no_contr (a relative
    `eval.no_contr_run_dir`), which must be complete before the run starts."""
    names = {r.name for r in plan.runs}
    needs = {}
    for run in plan.runs:
        pair = run.config.get("eval", {}).get("no_contr_run_dir")
        if pair is not None and not Path(pair).is_absolute():
            sibling = os.path.normpath(pair)
            if sibling in names:
                needs[run.name] = {sibling}
    return needs


def load_budget(path: str | Path) -> Budget:
    """The sweep file's `budget` hints (validated with the file by load_plan)."""
    return Budget(**load_yaml(Path(path)).get("budget", {}))


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None  # run_sweep refuses it with one line


def _record_budget(path: Path, budget: Budget, executor: BudgetedExecutor) -> dict[str, Any]:
    """Add the budget, what was used of it and why it stopped the sweep to the summary."""
    summary = json.loads(path.read_text(encoding="utf-8"))
    summary["budget"] = {
        "max_runs": budget.max_runs,
        "max_wall_hours": budget.max_wall_hours,
        "runs_used": executor.runs,
        "wall_hours_used": executor.wall_s / 3600,
        "stopped_by": executor.reason,
    }
    atomic_write_json(path, summary)
    return summary


def _acknowledge_relayed(sweep_dir: Path, summary: Mapping[str, Any], path: Path) -> None:
    """Retire a sweep request that paused the last run: labkit checks it only before launches."""
    pause = PauseControl(sweep_dir, "sweep", min_interval_s=0)
    if pause.requested():
        pending = [r["name"] for r in summary["runs"] if r["status"] != "complete"]
        pause.acknowledge(summary["counts"]["complete"], path, pending=pending)


def main(args: argparse.Namespace) -> int:
    """Plan (validated before any run starts), run, summarise; exit 1 if any run failed."""
    plan = load_plan(args.sweep_config, args.overrides)
    budget = load_budget(args.sweep_config)
    plan = replace(plan, executor=executor_spec(args, plan.executor))
    if args.workers is not None:
        plan = replace(plan, workers=args.workers)
    summary_file = summary_path(args.out_root, plan.name)
    if not args.resume:
        # A complete phase is never overwritten, so a restart is refused before anything changes.
        done = [r.name for r in plan.runs if _phases_done(Path(args.out_root) / plan.name / r.name)]
        if done:
            raise RunExistsError(
                f"--no-resume: run(s) {', '.join(done)} of sweep {plan.name!r} have complete phases, "
                "which are never overwritten; use a new --out_root or sweep_name"
            )
        # Every unfinished phase restarts, so the ledger does too.
        summary_file.unlink(missing_ok=True)
    used = budget_used(_read_summary(summary_file))
    ordered = OrderedExecutor(make_executor(plan.executor, plan.workers), pair_needs(plan))
    executor = BudgetedExecutor(ordered, budget, *used)
    entry = ENTRY if args.resume else FRESH_ENTRY
    try:
        # One live line per run (status, phase, step, node), whichever executor runs them; with
        # --json on stderr, so that stdout holds only the JSON.
        with live_sweep(summary_file, table_console(sys.stderr) if args.json else None):
            run_sweep(plan, args.out_root, run_fn=entry, executor=executor, resume=True)
    except Paused:
        if executor.reason is None:
            summary = _record_budget(summary_file, budget, executor)
            _acknowledge_relayed(Path(args.out_root) / plan.name, summary, summary_file)
            raise
    summary = _record_budget(summary_file, budget, executor)
    results = {r["name"]: r["result"] for r in summary["runs"]}
    out = Path(args.out_root) / plan.name / "ablation_summary.json"
    atomic_write_json(out, ablation(results, resolve(plan.runs[0].config)))
    counts = summary["counts"]
    if args.json:
        print_json(summary)
    else:
        print(
            f"cachemedicpp.sweep: {counts['complete']} of {len(plan.runs)} runs complete; "
            f"summary {summary_file}"
        )
    if executor.reason is not None:
        raise LabkitError(
            f"{executor.reason}; {counts['complete']} of {len(plan.runs)} runs complete: "
            "raise the budget in the sweep file and rerun to go on"
        )
    failed = [r["name"] for r in summary["runs"] if r["status"] == "failed"]
    if failed:
        raise LabkitError(
            f"{len(failed)} of {len(plan.runs)} runs failed ({', '.join(failed)}); "
            f"errors and tracebacks in {summary_file}"
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
        help="skip complete runs and resume the rest (default); --no-resume restarts unfinished "
        "phases and refuses (exit 4) when any phase is complete",
    )
    p.add_argument(
        "--workers",
        type=bounded_int(1, 1024),
        help="with the local executor: runs at once, each in its own process (default: the sweep "
        "file's `workers`, else 1); a run whose no_contr pair is unfinished still waits for it",
    )
    add_executor_flags(p)
    add_json_flag(p)
    p.add_argument(
        "overrides", nargs="*", help="dot-key overrides of the base config, e.g. device=cpu"
    )
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
