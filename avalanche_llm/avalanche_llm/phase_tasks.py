"""A phase's independent units of work (one per gain) as labkit executor tasks: in this process,
in local worker processes or on a Ray cluster, with the same bytes wherever they run.

Each task sets the phase's determinism, takes the phase's model (loaded once per process; in the
phase's own process it is the phase's copy), runs one unit function and writes what it returns,
pickled, to `<run>/tasks/<name>/part.pkl` (run directories lie on storage every node sees). The
phase reads the parts back in its own order, records in its run record where each task ran
(`tasks`), and removes `tasks/`, so a complete run holds exactly the files it held before units
became tasks.
"""

from __future__ import annotations

import hashlib
import importlib
import pickle
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avalanche_llm.runs import (
    PhaseContext,
    collecting_nondeterminism,
    forget_model,
    is_loaded,
    setup_determinism,
    shared_model,
)
from labkit.atomic import atomic_write_bytes
from labkit.errors import LabkitError
from labkit.executors import RunOutcome, RunTask, resolve_entry
from labkit.heartbeat import jsonable

ENTRY = "avalanche_llm.phase_tasks:run_task"
SCRATCH = "tasks"
PART = "part.pkl"


def run_task(name: str, config: dict[str, Any], task_dir: Path) -> dict[str, Any]:
    """The executor's entry: `config['unit'](model, config['inputs'])`, its part written to `task_dir`."""
    cfg = config["cfg"]
    setup_determinism(cfg)  # wherever it runs, a task starts from the phase's seeds and settings
    role = cfg["runtime"]["model_role"]
    owned = not is_loaded(cfg, role)  # a worker's own copy, dropped when the task ends
    try:
        with collecting_nondeterminism() as ops:
            part = resolve_entry(config["unit"])(shared_model(cfg, role), config["inputs"])
    except LabkitError as exc:
        # Sent back as data, so the phase exits with this error's own code wherever it ran.
        kind = f"{type(exc).__module__}:{type(exc).__qualname__}"
        return {"user_error": {"type": kind, "message": str(exc)}}
    finally:
        if owned:
            forget_model(cfg, role)
    data = pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write_bytes(task_dir / PART, data)
    return {"part": PART, "sha256": hashlib.sha256(data).hexdigest(), "nondeterministic_ops": ops}


def _ok(outcome: RunOutcome) -> bool:
    return outcome.status == "complete" and "user_error" not in (outcome.result or {})


def _failure(ctx: PhaseContext, outcome: RunOutcome) -> LabkitError:
    """The error a failed task raises in the phase: a user error as itself (same exit code)."""
    if user := (outcome.result or {}).get("user_error"):
        module, _, name = user["type"].partition(":")
        cls = getattr(importlib.import_module(module), name, None)
        if isinstance(cls, type) and issubclass(cls, LabkitError):
            return cls(user["message"])
        return LabkitError(user["message"])
    ctx.log("task_failed", task=outcome.name, error=outcome.error, traceback=outcome.traceback)
    return LabkitError(f"task {outcome.name} failed: {outcome.error} (traceback in logs/)")


def _entry(task: RunTask, outcome: RunOutcome | None) -> dict[str, Any]:
    """The record's line of one task: status, error, where and when it ran."""
    if outcome is None:
        return {"name": task.name, "status": "not_started", "error": None, "node": None}
    user = (outcome.result or {}).get("user_error")
    return {
        "name": task.name,
        "status": "failed" if user else outcome.status,
        "error": f"{user['type'].rpartition(':')[2]}: {user['message']}" if user else outcome.error,
        "node": outcome.node,
        "started_utc": outcome.started_utc,
        "finished_utc": outcome.finished_utc,
        "wall_s": outcome.wall_s,
    }


def _read_part(task: RunTask, outcome: RunOutcome) -> Any:
    data = (Path(task.run_dir) / outcome.result["part"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != outcome.result["sha256"]:
        raise LabkitError(f"task {task.name}: its part changed after it was written")
    return pickle.loads(data)  # written by this phase's own task a moment ago


def run_units(
    ctx: PhaseContext, unit: str, inputs: Sequence[tuple[str, dict[str, Any]]]
) -> list[Any]:
    """Run `unit` ('module:function' of (model, inputs)) once per (name, inputs), each as one task on
    the phase's executor; return the parts in the order given. The first failure stops new launches
    and is raised (a user error with its own exit code); the record lists every task."""
    run = ctx.run
    assert run is not None, "tasks write into the run directory"
    scratch = run.path / SCRATCH
    shutil.rmtree(scratch, ignore_errors=True)  # a resumed phase redoes every unit
    tasks = [
        RunTask(name, {"cfg": ctx.cfg, "unit": unit, "inputs": x}, str(scratch / name), ENTRY)
        for name, x in inputs
    ]
    outcomes: dict[str, RunOutcome] = {}
    with ctx.heartbeat(len(tasks)) as hb:

        def on_done(outcome: RunOutcome) -> None:
            outcomes[outcome.name] = outcome
            hb.beat(len(outcomes))

        def should_stop() -> bool:
            return not all(map(_ok, outcomes.values()))

        ctx.executor.run(tasks, should_stop=should_stop, on_start=lambda _: None, on_done=on_done)
        executor = {"class": type(ctx.executor).__name__, **jsonable(vars(ctx.executor))}
        entries = [_entry(t, outcomes.get(t.name)) for t in tasks]
        run.update(tasks={"executor": executor, "runs": entries})
        ended = [outcomes[t.name] for t in tasks if t.name in outcomes]
        if bad := next((o for o in ended if not _ok(o)), None):
            raise _failure(ctx, bad)
    parts = [_read_part(t, outcomes[t.name]) for t in tasks]
    for op in sorted({op for o in outcomes.values() for op in o.result["nondeterministic_ops"]}):
        warnings.warn(
            op, UserWarning, stacklevel=1
        )  # recorded by the phase's recording_nondeterminism
    shutil.rmtree(scratch)
    return parts
