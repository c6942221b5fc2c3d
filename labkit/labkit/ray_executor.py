"""RayExecutor: a sweep's runs as Ray tasks on a cluster, behind the same `Executor` interface.

Imported only when the ray executor is chosen (`labkit.executors` loads it on first use), so no
other path imports ray. Each run is one Ray task writing its own run directory, which must lie on
storage every node sees.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from labkit.control import REQUEST, request_pause
from labkit.errors import ConfigError
from labkit.executors import RunOutcome, RunTask, check_picklable, error_line, execute_run
from labkit.rundir import utc_now

SWEEP_PAUSE_REASON = "sweep pause request"
# How often the driver looks at finished tasks and at the sweep's pause request while runs go on.
POLL_S = 0.25


def _run_on_node(payload: bytes, sys_path: list[str]) -> RunOutcome:
    """The Ray task: make the driver's import paths visible here, run the task, name this node."""
    # The task is unpickled only after the paths are in place: its run function may live in a
    # module the worker could not otherwise import (a test folder, a checkout outside site-packages).
    missing = [p for p in sys_path if p not in sys.path and (p == "" or os.path.isdir(p))]
    sys.path[:0] = missing
    task: RunTask = pickle.loads(payload)
    outcome = execute_run(task)
    context = ray.get_runtime_context()
    node = {
        "hostname": socket.gethostname(),
        "node_ip": ray.util.get_node_ip_address(),
        "node_id": context.get_node_id(),
        "pid": os.getpid(),
    }
    return replace(outcome, node=node)


class RayExecutor:
    """Runs each task as a Ray task (`resources_per_run` each), retried `max_retries` times if its worker dies.

    A worker process serves several runs in turn (sparing each run its interpreter start and
    imports, about 3 s), unless `fresh_worker` is True: then each run gets a new process, as with
    LocalExecutor. Reuse is the default because every run function of the four systems first sets
    its own seeds, threads and determinism flags and keeps its state in its run directory (the
    Ray tests check the bytes on reused workers); choose fresh workers for a run function that
    leaves state behind in its process.
    `address` is "auto" (the cluster `ray start` made on this machine), "local" (a private
    single-machine cluster for this call), or the head of a cluster this machine belongs to
    ("HEAD_HOST:6379"; Ray Client `ray://` addresses need the ray[client] extra, not installed).
    When `should_stop()` turns true no task is launched and every run in flight is asked to pause
    (`control/pause.request` in its run directory); the runs still in flight are waited for.
    """

    def __init__(
        self,
        address: str = "auto",
        resources_per_run: Mapping[str, float] | None = None,
        max_retries: int = 3,
        fresh_worker: bool = False,
    ):
        resources = dict(resources_per_run or {"CPU": 1, "GPU": 0})
        bad = {k: v for k, v in resources.items() if not isinstance(v, (int, float)) or v < 0}
        if bad or not address or max_retries < 0:
            raise ConfigError(
                "ray executor needs an address, resources_per_run amounts >= 0 and max_retries >= 0; "
                f"got address={address!r}, resources_per_run={resources!r}, max_retries={max_retries!r}"
            )
        if not any(resources.values()):
            raise ConfigError(
                "ray executor: resources_per_run asks for nothing; give CPU: 1 or more"
            )
        self.address = address
        self.resources = resources
        self.max_retries = max_retries
        self.fresh_worker = fresh_worker

    def _options(self) -> dict[str, Any]:
        custom = {k: v for k, v in self.resources.items() if k not in ("CPU", "GPU") and v}
        return {
            "num_cpus": self.resources.get("CPU", 0),
            "num_gpus": self.resources.get("GPU", 0),
            **({"resources": custom} if custom else {}),
            "max_retries": self.max_retries,
            # Exceptions in a run are already a failed outcome; only a dead worker is retried.
            "retry_exceptions": False,
        }

    def slots(self) -> int:
        """How many runs the cluster holds at once now (at least 1, so an autoscaler sees demand)."""
        total = ray.cluster_resources()
        fits = [int(total.get(k, 0) // v) for k, v in self.resources.items() if v]
        return max(1, min(fits))

    @contextlib.contextmanager
    def _connected(self) -> Any:
        if ray.is_initialized():
            yield
            return
        try:
            if self.address == "local":
                ray.init(include_dashboard=False, configure_logging=False)
            else:
                ray.init(address=self.address, configure_logging=False)
        except ConnectionError as exc:
            raise ConfigError(
                f"cannot reach a Ray cluster at {self.address!r} ({exc}); start one with "
                "`ray start --head`, or give --ray_address HEAD_HOST:PORT with RAY_AUTH_MODE=token "
                "and the head's ~/.ray/auth_token on this machine"
            ) from None
        try:
            yield
        finally:
            ray.shutdown()

    def run(
        self,
        tasks: Sequence[RunTask],
        *,
        should_stop: Callable[[], bool],
        on_start: Callable[[RunTask], None],
        on_done: Callable[[RunOutcome], None],
    ) -> None:
        """Execute `tasks` in order of launch until done or told to stop."""
        for task in tasks:
            check_picklable(task, "a Ray worker")
        if not tasks:
            return
        with self._connected():
            self._run(list(tasks), should_stop, on_start, on_done)

    def _run(
        self,
        pending: list[RunTask],
        should_stop: Callable[[], bool],
        on_start: Callable[[RunTask], None],
        on_done: Callable[[RunOutcome], None],
    ) -> None:
        # fresh_worker: a new worker process per run (max_calls=1), so no run inherits another's
        # seeds, threads, caches or memory; by default (0: no limit) a worker's imports serve many runs.
        calls = 1 if self.fresh_worker else 0
        remote = ray.remote(max_calls=calls)(_run_on_node).options(**self._options())
        sys_path = list(sys.path)
        in_flight: dict[ray.ObjectRef, tuple[RunTask, str]] = {}
        asked: set[str] = set()  # run dirs this executor wrote a pause request into
        try:
            while pending or in_flight:
                stop = should_stop()
                if stop:
                    self._forward_pause(in_flight.values(), asked)
                    pending = []
                slots = self.slots() if pending else 0
                while pending and len(in_flight) < slots and not should_stop():
                    task = pending.pop(0)
                    on_start(task)
                    ref = remote.remote(pickle.dumps(task), sys_path)
                    in_flight[ref] = (task, utc_now())
                if not in_flight:
                    return
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                for ref in done:
                    task, started = in_flight.pop(ref)
                    outcome = self._outcome(ref, task, started)
                    sharing = any(t.run_dir == task.run_dir for t, _ in in_flight.values())
                    if not sharing:
                        self._retire_pause(task, outcome, asked)
                    on_done(outcome)
        finally:
            for ref in in_flight:
                ray.cancel(ref, force=True)

    @staticmethod
    def _outcome(ref: ray.ObjectRef, task: RunTask, started: str) -> RunOutcome:
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            # Its worker (or node) died more often than max_retries allows, or the task was lost.
            error = f"worker died ({error_line(exc)})"
            return RunOutcome(task.name, "failed", None, error, str(exc), 0.0, started, utc_now())

    @staticmethod
    def _forward_pause(in_flight: Any, asked: set[str]) -> None:
        for task, _ in in_flight:
            if task.run_dir in asked or (Path(task.run_dir) / REQUEST).exists():
                continue  # one request per run dir; never overwrite the reason someone else gave
            request_pause(task.run_dir, SWEEP_PAUSE_REASON)
            asked.add(task.run_dir)

    @staticmethod
    def _retire_pause(task: RunTask, outcome: RunOutcome, asked: set[str]) -> None:
        if task.run_dir not in asked or outcome.status == "paused":
            return
        # The run ended before it reached a safe point (and no other task of its folder is in
        # flight): the request must not pause its next start.
        with contextlib.suppress(FileNotFoundError):
            os.remove(Path(task.run_dir) / REQUEST)
        asked.discard(task.run_dir)
