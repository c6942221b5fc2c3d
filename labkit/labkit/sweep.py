"""Sweeps: a base config plus named dot-key overrides, expanded, validated, run and summarised."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

import filelock

from labkit.atomic import atomic_write_json
from labkit.cli import add_executor_flags, run_cli
from labkit.config import apply_overrides, config_hash, load_yaml, validate
from labkit.control import PauseControl
from labkit.errors import ConfigError, Paused, RunExistsError
from labkit.executors import (
    Executor,
    RunFn,
    RunOutcome,
    RunTask,
    executor_schema,
    executor_spec,
    make_executor,
    resolve_entry,
)
from labkit.heartbeat import Heartbeat
from labkit.rundir import utc_now
from labkit.sweep_view import live_sweep
from labkit.tracking import note as note_for_tracking

ConfigCheck = Callable[[dict[str, Any]], None] | Mapping[str, Any] | str | os.PathLike
# Folders of the sweep directory itself, so no run may take these names.
RESERVED_NAMES = ("control", "logs")
_MAX_NAME = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class RunSpec:
    """One expanded run: its stable name, the overrides that made it, its resolved config and hash."""

    name: str
    overrides: tuple[str, ...]
    config: dict[str, Any]
    config_hash: str


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: every run resolved before any of them starts."""

    name: str
    runs: tuple[RunSpec, ...]
    entry: str | None
    executor: str | dict[str, Any]
    workers: int
    spec_hash: str


def sanitize_name(text: str) -> str:
    """A folder-safe run name: runs of other characters become `_`; long names keep a hash suffix."""
    name = _UNSAFE.sub("_", text).strip("_").lstrip(".")
    if len(name) > _MAX_NAME:
        # Grid names grow with every key; a digest keeps truncated names apart and stable.
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        name = f"{name[: _MAX_NAME - 9]}-{digest}"
    return name


def _override_text(key: str, value: Any) -> str:
    try:
        return f"{key}={json.dumps(value, ensure_ascii=False, allow_nan=False)}"
    except (TypeError, ValueError):
        raise ConfigError(f"grid value {value!r} of {key!r} is not a plain YAML value") from None


def _grid_points(grid: Mapping[str, list[Any]]) -> list[tuple[str, tuple[str, ...]]]:
    keys = list(grid)
    points = []
    for values in itertools.product(*(grid[k] for k in keys)):
        label = "__".join(
            f"{k}-{v if isinstance(v, str) else json.dumps(v)}"
            for k, v in zip(keys, values, strict=True)
        )
        points.append(
            (label, tuple(_override_text(k, v) for k, v in zip(keys, values, strict=True)))
        )
    return points


def _labelled_runs(doc: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    runs = [
        (
            r.get("name") or "__".join(r.get("overrides", [])) or "base",
            tuple(r.get("overrides", [])),
        )
        for r in doc.get("runs", [])
    ]
    if "grid" not in doc:
        return runs
    points = _grid_points(doc["grid"])
    if not runs:
        return points
    return [(f"{rn}__{gn}", ro + go) for (rn, ro), (gn, go) in itertools.product(runs, points)]


def _checker(check: ConfigCheck) -> Callable[[dict[str, Any], str], None]:
    if callable(check):

        def call(cfg: dict[str, Any], what: str) -> None:
            try:
                check(cfg)
            except ConfigError as exc:
                raise type(exc)(f"{what}: {exc}") from None

        return call
    return lambda cfg, what: validate(cfg, check, what=what)


def plan_sweep(
    doc: Mapping[str, Any],
    *,
    base_dir: str | os.PathLike = ".",
    source: str = "sweep",
    config_schema: ConfigCheck | None = None,
) -> SweepPlan:
    """Validate a sweep document and expand it; every run's overrides are checked here."""
    validate(doc, _sweep_schema(), what=source)
    validate(doc.get("executor", "local"), executor_schema(), what=f"{source}: executor")
    if "runs" not in doc and "grid" not in doc:
        raise ConfigError(f"{source}: give `runs`, `grid` or both")
    base_dir = Path(base_dir)
    base = doc["base_config"]
    base = load_yaml(base_dir / base) if isinstance(base, str) else dict(base)
    checks = []
    if "config_schema" in doc:
        checks.append(_checker(base_dir / doc["config_schema"]))
    if config_schema is not None:
        checks.append(_checker(config_schema))
    runs: list[RunSpec] = []
    seen: dict[str, str] = {}
    for label, overrides in _labelled_runs(doc):
        name = sanitize_name(label)
        if not name or name in RESERVED_NAMES:
            raise ConfigError(f"{source}: run {label!r} gives the unusable folder name {name!r}")
        if name in seen:
            raise ConfigError(
                f"{source}: runs {seen[name]!r} and {label!r} share the name {name!r}"
            )
        seen[name] = label
        try:
            cfg = apply_overrides(base, overrides)
        except ConfigError as exc:
            raise ConfigError(f"{source}: run {name!r}: {exc}") from None
        for check in checks:
            check(cfg, f"{source}: run {name!r}")
        runs.append(RunSpec(name, overrides, cfg, config_hash(cfg)))
    entry = doc.get("entry")
    identity = {
        "sweep_name": doc["sweep_name"],
        "entry": entry,
        "runs": [{"name": r.name, "config_hash": r.config_hash} for r in runs],
    }
    return SweepPlan(
        name=doc["sweep_name"],
        runs=tuple(runs),
        entry=entry,
        executor=doc.get("executor", "local"),
        workers=doc.get("workers", 1),
        spec_hash=config_hash(identity),
    )


def load_sweep(path: str | os.PathLike, *, config_schema: ConfigCheck | None = None) -> SweepPlan:
    """Load a sweep YAML file (paths inside it are relative to it) and expand it."""
    path = Path(path)
    return plan_sweep(
        load_yaml(path), base_dir=path.parent, source=str(path), config_schema=config_schema
    )


def _sweep_schema() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "schemas" / "sweep.schema.json").read_text("utf-8"))


class _Ledger:
    """The summary JSON of a sweep, rewritten atomically after every change."""

    def __init__(self, plan: SweepPlan, path: Path, entry: str, previous: Mapping[str, Any] | None):
        self.plan, self.path, self.entry = plan, path, entry
        # The MLflow mirror's state (labkit.tracking): a resumed sweep stays the same parent run.
        self.tracking = (previous or {}).get("tracking")
        old = {r["name"]: r for r in (previous or {}).get("runs", [])}
        self.runs: dict[str, dict[str, Any]] = {}
        for spec in plan.runs:
            if old.get(spec.name, {}).get("status") == "complete":
                self.runs[spec.name] = old[spec.name]
            else:
                self.runs[spec.name] = {
                    "name": spec.name,
                    "run_dir": f"{plan.name}/{spec.name}",
                    "overrides": list(spec.overrides),
                    "config_hash": spec.config_hash,
                    "status": "pending",
                    "result": None,
                    "error": None,
                    "traceback": None,
                    "wall_s": None,
                    "started_utc": None,
                    "finished_utc": None,
                    "node": None,
                }

    def count(self, status: str) -> int:
        """How many runs have `status`."""
        return sum(r["status"] == status for r in self.runs.values())

    def start(self, task: RunTask) -> None:
        """Mark a run as launched."""
        self.runs[task.name].update(status="running", started_utc=utc_now())
        self.write("running")

    def finished(self) -> int:
        """How many runs ended complete or failed."""
        return self.count("complete") + self.count("failed")

    def finish(self, outcome: RunOutcome) -> dict[str, Any]:
        """Record how a run ended; return the summary as written."""
        record = self.runs[outcome.name]
        record.update(
            status=outcome.status,
            result=outcome.result,
            error=outcome.error,
            traceback=outcome.traceback,
            wall_s=outcome.wall_s,
            started_utc=outcome.started_utc,
            finished_utc=outcome.finished_utc,
            node=outcome.node,
        )
        return self.write("running")

    def write(self, status: str) -> dict[str, Any]:
        """Write the summary with the sweep-level `status` and return it."""
        counts = {s: self.count(s) for s in ("complete", "failed", "paused", "running", "pending")}
        doc = {
            "sweep_name": self.plan.name,
            "spec_hash": self.plan.spec_hash,
            "entry": self.entry,
            "status": status,
            "updated_utc": utc_now(),
            "n_runs": len(self.runs),
            "counts": counts,
            "runs": list(self.runs.values()),
            **({"tracking": self.tracking} if self.tracking else {}),
        }
        atomic_write_json(self.path, doc)
        return doc


def summary_path(out_root: str | os.PathLike, sweep_name: str) -> Path:
    """Where a sweep's summary JSON lives."""
    return Path(out_root) / f"{sweep_name}_summary.json"


def _previous(
    plan: SweepPlan, sweep_dir: Path, summary: Path, *, resume: bool, force: bool
) -> dict[str, Any] | None:
    exists = sweep_dir.exists() or summary.exists()
    if exists and not resume:
        if not force:
            raise RunExistsError(
                f"sweep {plan.name!r} already exists in {sweep_dir.parent}; resume it or force a fresh start"
            )
        shutil.rmtree(sweep_dir, ignore_errors=True)
        summary.unlink(missing_ok=True)
        return None
    if not summary.exists():
        return None
    try:
        previous = json.loads(summary.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{summary} is not valid JSON ({exc}); force a fresh start") from None
    planned = {r.name: r.config_hash for r in plan.runs}
    for record in previous.get("runs", []):
        name, digest = record["name"], record["config_hash"]
        if name not in planned:
            raise RunExistsError(
                f"run {name!r} of sweep {plan.name!r} is recorded but no longer in the sweep file; "
                "use a new sweep_name or force a fresh start"
            )
        if planned[name] != digest:
            raise RunExistsError(
                f"run {name!r} of sweep {plan.name!r} was recorded with config hash {digest[:12]}, "
                f"the sweep now resolves it to {planned[name][:12]}; use a new sweep_name or force a fresh start"
            )
    return previous


def run_sweep(
    plan: SweepPlan,
    out_root: str | os.PathLike,
    *,
    run_fn: str | RunFn | None = None,
    executor: Executor | None = None,
    resume: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Run every run not yet complete; return the summary, or raise Paused if asked to pause.

    Runs go to `<out_root>/<sweep_name>/<run_name>/`; `run_fn` (default: the plan's entry) should
    create or resume its run there. A pause request in `<out_root>/<sweep_name>/control/` stops new
    launches, lets runs in flight end, and raises Paused; rerunning resumes.
    """
    entry = run_fn if run_fn is not None else plan.entry
    if entry is None:
        raise ConfigError(f"sweep {plan.name!r} names no `entry` and no run function was given")
    resolve_entry(entry)
    executor = executor if executor is not None else make_executor(plan.executor, plan.workers)
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    sweep_dir, summary = out_root / plan.name, summary_path(out_root, plan.name)
    lock = filelock.FileLock(out_root / f".{plan.name}.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise RunExistsError(f"sweep {plan.name!r} is being run by another process") from None
    try:
        previous = _previous(plan, sweep_dir, summary, resume=resume, force=force)
        label = entry if isinstance(entry, str) else f"{entry.__module__}:{entry.__qualname__}"
        ledger = _Ledger(plan, summary, label, previous)
        note_for_tracking(summary, "sweep")
        return _execute(plan, entry, executor, sweep_dir, ledger)
    finally:
        lock.release()


def _execute(
    plan: SweepPlan, entry: str | RunFn, executor: Executor, sweep_dir: Path, ledger: _Ledger
) -> dict[str, Any]:
    tasks = [
        RunTask(r.name, r.config, str((sweep_dir / r.name).resolve()), entry)
        for r in plan.runs
        if ledger.runs[r.name]["status"] != "complete"
    ]
    ledger.write("running")
    # So that `touch <sweep>/control/pause.request` works from any shell that sees the folder.
    (sweep_dir / "control").mkdir(parents=True, exist_ok=True)
    heartbeat = Heartbeat(sweep_dir, "sweep", total=len(plan.runs), step=ledger.finished())
    # Checked only between runs, which are long: every check should look at the file.
    pause = PauseControl(sweep_dir, "sweep", heartbeat=heartbeat, min_interval_s=0)
    stopped = False

    def should_stop() -> bool:
        nonlocal stopped
        stopped = stopped or pause.requested()
        return stopped

    def on_done(outcome: RunOutcome) -> None:
        counts = ledger.finish(outcome)["counts"]
        heartbeat.beat(ledger.finished(), metrics=counts, force=True)

    try:
        executor.run(tasks, should_stop=should_stop, on_start=ledger.start, on_done=on_done)
    except BaseException as exc:
        for record in ledger.runs.values():
            if record["status"] == "running":
                record["status"] = "pending"
        ledger.write("interrupted")
        heartbeat.set_status("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    done = ledger.count("complete")
    if ledger.finished() < len(plan.runs):
        doc = ledger.write("paused")
        if stopped:
            pause.acknowledge(
                done,
                ledger.path,
                pending=[n for n, r in ledger.runs.items() if r["status"] != "complete"],
            )
        else:
            heartbeat.set_status("paused", step=done, metrics=doc["counts"])
        raise Paused(
            f"sweep {plan.name!r} paused with {done} of {len(plan.runs)} runs complete; rerun to resume"
        )
    failed = ledger.count("failed")
    doc = ledger.write("failed" if failed else "complete")
    if failed:
        error = f"{failed} of {len(plan.runs)} runs failed"
        heartbeat.set_status("failed", step=ledger.finished(), metrics=doc["counts"], error=error)
    else:
        heartbeat.set_status("complete", step=done, metrics=doc["counts"])
    return doc


def _print_plan(plan: SweepPlan) -> None:
    print(f"sweep {plan.name}  spec_hash {plan.spec_hash[:12]}  entry {plan.entry}")
    print(f"executor {plan.executor}  workers {plan.workers}  runs {len(plan.runs)}")
    for run in plan.runs:
        print(f"  {run.name}  {run.config_hash[:12]}  {' '.join(run.overrides) or '(base config)'}")


def main(argv: Sequence[str] | None = None, *, run_fn: str | RunFn | None = None) -> NoReturn:
    """Command line: expand a sweep file and print the plan (--dry_run) or run it."""
    parser = argparse.ArgumentParser(prog="python -m labkit.sweep", description=main.__doc__)
    parser.add_argument("--sweep_config", required=True, help="sweep YAML file")
    parser.add_argument("--out_root", required=True, help="folder that receives <sweep_name>/")
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip complete runs and resume the rest (default); --no-resume refuses an existing sweep",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --no-resume: delete an existing sweep and start over",
    )
    parser.add_argument("--workers", type=int, help="override the sweep file's `workers`")
    parser.add_argument("--dry_run", action="store_true", help="print the expanded runs and exit")
    add_executor_flags(parser)

    def run(args: argparse.Namespace) -> int:
        plan = load_sweep(args.sweep_config)
        if args.workers is not None:
            plan = replace(plan, workers=args.workers)
        plan = replace(plan, executor=executor_spec(args, plan.executor))
        if args.dry_run:
            if run_fn is None and plan.entry is not None:
                resolve_entry(plan.entry)
            _print_plan(plan)
            return 0
        with live_sweep(summary_path(args.out_root, plan.name)):
            doc = run_sweep(
                plan, args.out_root, run_fn=run_fn, resume=args.resume, force=args.force
            )
        counts = doc["counts"]
        where = summary_path(args.out_root, plan.name)
        print(
            f"sweep {plan.name}: {counts['complete']} complete, {counts['failed']} failed -> {where}"
        )
        if counts["failed"]:
            print(
                f"{parser.prog}: error: {counts['failed']} runs failed; see {where}",
                file=sys.stderr,
            )
            return 1
        return 0

    run_cli(parser, run, argv)


if __name__ == "__main__":
    main()
