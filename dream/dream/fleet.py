"""A fleet worker: one of several processes (on one host or many) evaluating one shared Optuna study.

Each worker asks a trial of the shared study, screens its genome against this host's own stock in
ABBA blocks, writes the pack under its own out_root and tells the study. The study reaches exactly
`n_trials` evaluated trials: a worker asks only while fewer trials are evaluated, running or queued
(or to take a queued retry), and a trial that finds itself past the target (two workers asked at
once) is pruned unevaluated.
A worker that dies mid-trial stops beating its heartbeat; after the grace period another worker
fails that trial and Optuna's RetryHeartbeatStaleTrialCallback queues its parameters again. A trial
that a retry took over never counts; if the dead worker had already attached its whole pack (the
`values` attribute, written last), the retry adopts that pack instead of measuring the genome again,
so the genome counts once. A pause request (`artifacts/control/pause.request`) stops the worker at
the next trial boundary (exit 75); the same command continues the study.
"""

from __future__ import annotations

import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, Trial, TrialState

from dream.evaluator import EvalContext, measure_candidate, pack_candidate
from dream.search import SearchEngine
from labkit.control import PauseControl
from labkit.errors import ConfigError, Paused

STAGE = "screen"  # a fleet trial is a screen: the search compares one-regime numbers alike


class Unscorable(Exception):
    """A trial's pack could not be scored (too few valid blocks, failed trials): the trial FAILs."""


@dataclass(frozen=True)
class WorkerOptions:
    """Which shared study a worker serves, its trial target, and the heartbeat that guards trials."""

    domain: str
    storage: str  # any SQLAlchemy URL; PostgreSQL for a fleet
    study: str  # the shared study's name
    n_trials: int  # evaluated trials the whole fleet brings the study to
    population: int
    worker: int = 0  # seeds this worker's sampler: give every worker of a study its own
    heartbeat_interval: int = 5
    grace_period: int = 30
    max_retry: int = 2

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise ConfigError(f"--n-trials must be >= 1, got {self.n_trials}")
        if self.worker < 0:
            raise ConfigError(f"--worker must be >= 0, got {self.worker}")
        if self.heartbeat_interval < 1:
            raise ConfigError(f"--heartbeat-interval must be >= 1 s, got {self.heartbeat_interval}")
        # A grace period within a beat or two would fail live workers' trials on a slow database.
        if self.grace_period < 2 * self.heartbeat_interval:
            raise ConfigError(
                f"--grace-period ({self.grace_period} s) must be >= 2 x --heartbeat-interval "
                f"({self.heartbeat_interval} s)"
            )
        if self.max_retry < 0:
            raise ConfigError(f"--max-retry must be >= 0, got {self.max_retry}")


def superseded(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of dead workers' trials that a queued retry took over."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return {n for t in trials for n in RetryHeartbeatStaleTrialCallback.retry_history(t)}


def evaluated(t: FrozenTrial, taken_over: set[int]) -> bool:
    """A trial whose genome counts as measured: COMPLETE, or FAIL with an unscorable pack attached.

    A dead worker's trial that a retry took over never counts, even with its pack attached: the
    retry counts for that genome instead.
    """
    if t.number in taken_over:
        return False
    unscorable = "values" in t.user_attrs and t.user_attrs["values"] is None
    return t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and unscorable)


def claims(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that count towards the target: evaluated, running or queued, in trial-number order."""
    live = (TrialState.RUNNING, TrialState.WAITING)
    taken_over = superseded(trials)
    return sorted(
        (t for t in trials if evaluated(t, taken_over) or t.state in live), key=lambda t: t.number
    )


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        fail_stale_trials(study)


def attach(
    ctx: EvalContext,
    engine: SearchEngine,
    opts: WorkerOptions,
    baselines: Mapping[str, Mapping[str, Any]],
    trial: Trial,
    prior: Mapping[str, Any],
) -> tuple[list[float] | None, str, str]:
    """Measure a trial's genome, write its pack and attach it to the trial, without telling the study.

    `prior`: the trial's attributes when it was asked; a retry carries those of the trial it
    retries. When they hold `values`, the dead worker attached its whole pack before it could tell
    the study: that pack is adopted (its path, host and worker stay) and nothing is measured again.
    Returns the objective values (None: unscorable), the pack's name and its path in its worker's
    tree.
    """
    if "values" in prior:
        trial.set_user_attr("adopted_by", {"worker": opts.worker, "host": socket.gethostname()})
        return prior["values"], prior["cand_id"], prior["pack"]
    cid = f"t{trial.number:04d}"
    trial.set_user_attr("cand_id", cid)
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("worker", opts.worker)
    cand = engine.suggest(trial, cid)
    series = measure_candidate(ctx, opts.domain, cand.genome, stage=STAGE)
    pack = pack_candidate(
        ctx,
        opts.domain,
        cand.genome,
        series,
        generation=-1,
        cand_id=cid,
        stage=STAGE,
        baselines=baselines,
    ).to_dict()
    values = engine.record(trial, pack)
    if values is None:
        trial.set_user_attr("unscorable", pack["aggregate"]["score_status"])
    trial.set_user_attr("values", values)  # last: its presence means the whole pack is attached
    return values, cid, pack["artifacts"]["pack"]


def run_worker(
    ctx: EvalContext,
    engine: SearchEngine,
    opts: WorkerOptions,
    baselines: Mapping[str, Mapping[str, Any]],
    beat: Callable[[int, str], None],
    pause: PauseControl | None = None,
) -> dict[str, Any]:
    """Evaluate trials of the shared study until it holds `n_trials` evaluated ones.

    `pause` is checked at every trial boundary: a request stops the worker with `Paused`.
    """
    t0 = time.perf_counter()
    study = engine.study
    mine: list[dict[str, Any]] = []
    last = {"what": "started"}

    def objective(trial: Trial) -> list[float]:
        queue = claims(study.get_trials(deepcopy=False))
        rank = [t.number for t in queue].index(trial.number)
        if rank >= opts.n_trials:
            raise optuna.TrialPruned(f"surplus: the study already has {opts.n_trials} trials")
        trial.set_user_attr(
            "retry_of", RetryHeartbeatStaleTrialCallback.retried_trial_number(queue[rank])
        )
        values, cid, pack = attach(ctx, engine, opts, baselines, trial, queue[rank].user_attrs)
        mine.append({"trial": trial.number, "cand_id": cid, "pack": pack})
        last["what"] = cid
        if values is None:
            raise Unscorable(f"{cid}: {trial.user_attrs['unscorable']}")
        return values

    while True:
        _fail_stale(study)
        trials = study.get_trials(deepcopy=False)
        taken_over = superseded(trials)
        done = sum(evaluated(t, taken_over) for t in trials)
        if done >= opts.n_trials:
            break
        if pause is not None and pause.requested():
            # A trial boundary: every trial this worker asked is told, so a rerun loses none.
            pause.acknowledge(done, engine.location, study=opts.study, evaluated=done)
            raise Paused(f"worker {opts.worker} paused with {done}/{opts.n_trials} trials")
        queued = any(t.state == TrialState.WAITING for t in trials)
        if len(claims(trials)) >= opts.n_trials and not queued:
            # Every remaining trial is taken: wait for them, or for a dead worker's to go stale.
            ctx.sleep(opts.heartbeat_interval)
            continue
        # Seeded by the study's trial count, so a paused and rerun worker proposes what an
        # uninterrupted one would. Optuna's ask takes a queued retry before a new trial.
        study.sampler = engine.fleet_sampler(opts.worker, len(trials))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.optimize(objective, n_trials=1, catch=(Unscorable,))
        beat(done, last["what"])
    return {
        "run_id": ctx.run_id,
        "wall_s": round(time.perf_counter() - t0, 1),
        "domain": opts.domain,
        "worker": opts.worker,
        "evaluated_here": mine,
        "study": engine.summary(),
    }
