"""Executors run a sweep's runs: in this process, in local worker processes, or on a Ray cluster."""

from __future__ import annotations

import argparse
import graphlib
import importlib
import json
import multiprocessing
import pickle
import socket
import time
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from labkit.config import validate
from labkit.errors import ConfigError, Paused
from labkit.heartbeat import jsonable
from labkit.rundir import utc_now

RunFn = Callable[[str, dict[str, Any], Path], Mapping[str, Any]]


@dataclass(frozen=True)
class RunTask:
    """One run to execute: `entry(name, config, Path(run_dir))` must return a JSON-able dict."""

    name: str
    config: dict[str, Any]
    run_dir: str
    entry: str | RunFn  # "package.module:function" or a module-level (picklable) function


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: status complete, failed or paused, with its result or its error.

    `node` names where it ran (`hostname`; a Ray run adds `node_ip`, `node_id` and `pid`).
    """

    name: str
    status: str
    result: dict[str, Any] | None
    error: str | None
    traceback: str | None
    wall_s: float
    started_utc: str
    finished_utc: str
    node: dict[str, Any] | None = None


def resolve_entry(entry: str | RunFn) -> RunFn:
    """Import the function named by `package.module:function` (a callable is returned as is)."""
    if callable(entry):
        return entry
    module_name, sep, attr = entry.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"entry {entry!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"entry {entry!r}: cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"entry {entry!r}: {module_name} has no function {attr!r}")
    return fn


def error_line(exc: BaseException) -> str:
    """`Type: first line of the message`, the one-line form of an error in outcomes and ledgers."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def execute_run(task: RunTask) -> RunOutcome:
    """Run one task here and now; exceptions become a failed (or, for Paused, paused) outcome."""
    started, t0 = utc_now(), time.perf_counter()
    status, result, error, tb = "complete", None, None, None
    try:
        run_dir = Path(task.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        out = resolve_entry(task.entry)(task.name, task.config, run_dir)
        if not isinstance(out, Mapping):
            raise TypeError(f"run function returned {type(out).__name__}, not a dict")
        result = jsonable(dict(out), "result")
    except Paused as exc:
        status, error = "paused", error_line(exc)
    # SystemExit too: a run function that ends in sys.exit must not take the whole sweep down.
    except (Exception, SystemExit) as exc:
        status, error, tb = "failed", error_line(exc), traceback.format_exc()
    wall = round(time.perf_counter() - t0, 3)
    node = {"hostname": socket.gethostname()}
    return RunOutcome(task.name, status, result, error, tb, wall, started, utc_now(), node)


def check_picklable(task: RunTask, where: str) -> None:
    """Refuse, before any run starts, a task that cannot travel to `where` (another process)."""
    try:
        pickle.dumps(task)
    except Exception as exc:
        raise ConfigError(
            f"run {task.name!r} cannot be sent to {where} ({error_line(exc)}); "
            "name the run function by 'package.module:function' or define it at module level"
        ) from None


class Executor(Protocol):
    """Runs tasks, asking `should_stop()` before each launch and reporting as runs start and end.

    Callbacks are called in the caller's thread. Once `should_stop()` is true no task is launched;
    runs in flight are waited for. A cluster executor implements the same method.
    """

    def run(
        self,
        tasks: Sequence[RunTask],
        *,
        should_stop: Callable[[], bool],
        on_start: Callable[[RunTask], None],
        on_done: Callable[[RunOutcome], None],
    ) -> None:
        """Execute `tasks` in order of launch until done or told to stop."""


class LocalExecutor:
    """Runs tasks one after another in this process, or in `workers` fresh spawned processes."""

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def run(
        self,
        tasks: Sequence[RunTask],
        *,
        should_stop: Callable[[], bool],
        on_start: Callable[[RunTask], None],
        on_done: Callable[[RunOutcome], None],
    ) -> None:
        """Execute `tasks` in order of launch until done or told to stop."""
        if self.workers == 1:
            for task in tasks:
                if should_stop():
                    return
                on_start(task)
                on_done(execute_run(task))
            return
        for task in tasks:
            check_picklable(task, "a worker process")
        self._run_pool(list(tasks), should_stop, on_start, on_done)

    def _pool(self) -> ProcessPoolExecutor:
        # A fresh process per run: no run inherits another's seeds, torch settings or memory.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            max_tasks_per_child=1,
        )

    def _run_pool(
        self,
        pending: list[RunTask],
        should_stop: Callable[[], bool],
        on_start: Callable[[RunTask], None],
        on_done: Callable[[RunOutcome], None],
    ) -> None:
        pool = self._pool()
        in_flight: dict[Future[RunOutcome], tuple[RunTask, str, ProcessPoolExecutor]] = {}
        try:
            while pending or in_flight:
                while pending and len(in_flight) < self.workers and not should_stop():
                    task = pending.pop(0)
                    on_start(task)
                    in_flight[pool.submit(execute_run, task)] = (task, utc_now(), pool)
                if not in_flight:
                    return
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    task, started, owner = in_flight.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool as exc:
                        # A worker died (killed, out of memory, crashed in C code) and took its
                        # pool's runs with it: record them failed and go on with a new pool.
                        error = f"worker process died: {exc}"
                        outcome = RunOutcome(
                            task.name, "failed", None, error, None, 0.0, started, utc_now()
                        )
                        if owner is pool:
                            pool.shutdown(wait=True, cancel_futures=True)
                            pool = self._pool()
                    on_done(outcome)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class OrderedExecutor:
    """Runs tasks in waves through `inner` so that a run starts only after the runs it `needs` ended.

    `needs[name]` names the runs whose outputs run `name` reads; a needed run that is not among
    the tasks (already complete, or not part of the sweep) does not hold it back. A run whose
    needed run failed is recorded failed without starting; one whose needed run paused is left
    unlaunched, so the sweep pauses and a rerun resumes both in order. Any executor, local or Ray,
    keeps this order: each wave is one `inner.run` call.
    """

    def __init__(self, inner: Executor, needs: Mapping[str, Collection[str]]):
        try:
            graphlib.TopologicalSorter(needs).prepare()
        except graphlib.CycleError as exc:
            raise ConfigError(
                f"runs need each other in a cycle: {' -> '.join(exc.args[1])}"
            ) from None
        self.inner, self.needs = inner, {k: set(v) for k, v in needs.items()}

    def run(
        self,
        tasks: Sequence[RunTask],
        *,
        should_stop: Callable[[], bool],
        on_start: Callable[[RunTask], None],
        on_done: Callable[[RunOutcome], None],
    ) -> None:
        """Execute `tasks` wave by wave until done or told to stop."""
        by_name = {t.name: t for t in tasks}
        order = graphlib.TopologicalSorter(
            {n: self.needs.get(n, set()) & by_name.keys() for n in by_name}
        )
        order.prepare()
        ended: dict[str, str] = {}

        def done(outcome: RunOutcome) -> None:
            ended[outcome.name] = outcome.status
            on_done(outcome)

        while order.is_active() and not should_stop():
            wave = order.get_ready()
            launch = []
            for name in wave:
                unmet = {d: ended.get(d) for d in self.needs.get(name, ()) if d in by_name}
                failed = [d for d, s in unmet.items() if s == "failed"]
                if failed:
                    now = utc_now()
                    on_start(by_name[name])
                    error = f"needs run {failed[0]!r}, which failed"
                    done(RunOutcome(name, "failed", None, error, None, 0.0, now, now))
                elif all(s == "complete" for s in unmet.values()):
                    launch.append(by_name[name])
            self.inner.run(launch, should_stop=should_stop, on_start=on_start, on_done=done)
            order.done(*wave)


def _ray_executor(**options: Any) -> Executor:
    # Imported here so that nothing imports ray unless a sweep or command chose it.
    from labkit.ray_executor import RayExecutor

    return RayExecutor(**options)


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "ray": _ray_executor}


def executor_schema() -> dict[str, Any]:
    """The JSON Schema of an `executor:` value: `local`, `ray`, or a block with `kind` and options."""
    path = Path(__file__).parent / "schemas" / "executor.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))


def make_executor(spec: str | Mapping[str, Any], workers: int = 1) -> Executor:
    """Build the executor a sweep file names: `executor: local` (+ `workers: N`) or a block
    `{kind: ray, address: auto, resources_per_run: {CPU: 1, GPU: 0}, max_retries: 3}`."""
    validate(spec, executor_schema(), what="executor")
    options = {"kind": spec} if isinstance(spec, str) else dict(spec)
    kind = options.pop("kind")
    if kind == "local":
        options.setdefault("workers", workers)
    return EXECUTORS[kind](**options)


def executor_spec(args: argparse.Namespace, default: str | Mapping[str, Any] = "local") -> Any:
    """The executor block a command line asks for (labkit.cli.add_executor_flags) over `default`."""
    if args.executor is None and args.ray_address is None:
        return default
    base = {"kind": default} if isinstance(default, str) else dict(default)
    kind = args.executor or base["kind"]
    if kind != base["kind"]:
        base = {"kind": kind}
    if args.ray_address is not None:
        if kind != "ray":
            raise ConfigError("--ray_address needs --executor ray")
        base["address"] = args.ray_address
    return base


def __getattr__(name: str) -> Any:
    """`labkit.executors.RayExecutor` is imported (with ray) on first use only."""
    if name == "RayExecutor":
        from labkit.ray_executor import RayExecutor

        return RayExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
