"""NSGA-II search over a domain's genome (Optuna), in an RDB study: SQLite per host, or one shared by a fleet."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.distributions import FloatDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import NSGAIISampler
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import Trial, TrialState

from dream.domains import DOMAINS
from dream.genome import GenomeSpec
from labkit.errors import ConfigError, MissingInputError

CROSSOVER_PROB = 0.7
SWAPPING_PROB = 0.5
SCHEMA_ATTEMPTS = 4  # creating Optuna's tables in an empty database: workers that race retry
SCORABLE = ("ok", "unsafe")  # unsafe packs are told with violated constraints; the rest fail

optuna.logging.set_verbosity(optuna.logging.WARNING)


def cand_id(generation: int, index: int) -> str:
    """The candidate id of the index-th genome of a generation (`gen3_07`)."""
    return f"gen{generation}_{index:02d}"


@dataclass
class Candidate:
    """One asked genome: its id, coordinates in [0,1]^d, decoded genome and live Optuna trial."""

    domain: str
    cand_id: str
    generation: int
    u: dict[str, float]
    genome: dict[str, Any]
    trial: Trial | None  # None once told (in this or an earlier process)


def objectives(watts: bool) -> tuple[tuple[str, str], ...]:
    """(KPI, direction) pairs: more perf, less p95 latency, less power where power is measurable."""
    objs = (("perf", "maximize"), ("p95_ms", "minimize"))
    return (*objs, ("watts", "minimize")) if watts else objs


def constraints(pack: Mapping[str, Any]) -> dict[str, float]:
    """Optuna constraints (<= 0 feasible): (worst - cap) / max(cap, 1) per cap, failures over the limit."""
    risk = pack["risk_profile"]
    out = {}
    for name, limit in sorted(risk["caps"].items()):
        seen = [r["peaks"].get(name) for r in pack["regimes"]]
        seen = [v for v in seen if v is not None]
        # An unmeasurable cap cannot steer the search; the pack lists it under caps_unchecked.
        out[f"cap:{name}"] = (max(seen) - limit) / max(limit, 1.0) if seen else 0.0
    failures = max(risk["trial_failures"].values(), default=0)
    out["trial_failures"] = float(failures - risk["max_trial_failures"])
    return out


def fleet_storage(
    url: str, *, heartbeat_interval: int, grace_period: int, max_retry: int
) -> RDBStorage:
    """RDB storage (any SQLAlchemy URL) whose trials beat a heartbeat while they run.

    A trial whose heartbeat is older than `grace_period` s belongs to a dead worker: the next
    worker to look fails it, and Optuna's RetryHeartbeatStaleTrialCallback queues the same parameters
    again (at most `max_retry` times). A live worker's trial keeps beating, so it is never failed.
    """
    retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def connect() -> RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=retry,
            )

    try:
        for attempt in range(SCHEMA_ATTEMPTS - 1):
            try:
                return connect()
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                # Workers started together on an empty database race to create Optuna's tables;
                # the losers find them made on a later attempt.
                time.sleep(1.0 + attempt)
        return connect()
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ValueError) as exc:
        raise ConfigError(f"--storage {safe_url(url)}: {exc}") from None
    except sqlalchemy.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise MissingInputError(
            f"study storage {safe_url(url)} does not answer: {reason}"
        ) from None


def safe_url(url: str) -> str:
    """A storage URL with its password hidden, for logs and manifests."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<unparseable URL>"


class SearchEngine:
    """NSGA-II over u in [0,1]^d for one domain, in `studies/<domain>.db` or a given RDB storage."""

    def __init__(
        self,
        studies_dir: str | os.PathLike,
        spec: GenomeSpec,
        *,
        population: int,
        seed: int,
        watts: bool,
        storage: RDBStorage | None = None,
        study_name: str | None = None,
    ) -> None:
        if population < 2:
            raise ConfigError(f"population must be >= 2 for NSGA-II, got {population}")
        if not spec.active:
            raise ConfigError(f"{spec.domain}: no gene can move on this host, nothing to search")
        self.spec = spec
        self.domain = spec.domain
        self.population = population
        self.seed = seed
        self.objectives = objectives(watts)
        if storage is None:
            path = Path(studies_dir) / f"{spec.domain}.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.storage: str | RDBStorage = f"sqlite:///{path}"
            self.location = str(path)
        else:
            self.storage = storage
            self.location = safe_url(storage.url)
        self.distributions = {f"u_{g.name}": FloatDistribution(0.0, 1.0) for g in spec.active}
        identity = {
            "genes": [g.name for g in spec.active],
            "objectives": [list(o) for o in self.objectives],
            "population": population,
        }
        self.study_name = study_name or spec.domain
        try:
            self.study = optuna.create_study(
                study_name=self.study_name,
                storage=self.storage,
                directions=[d for _, d in self.objectives],
                sampler=self._sampler(0),
                load_if_exists=True,
            )
        except ValueError as exc:  # an existing study with other directions
            raise ConfigError(f"{self.location}: {exc}") from None
        # Finalists' full evaluations live in their own study: four-regime numbers from fresh trials
        # never share a Pareto front with the one-regime screen numbers the search samples from.
        self.full_study = optuna.create_study(
            study_name=f"{self.study_name}_full",
            storage=self.storage,
            directions=[d for _, d in self.objectives],
            load_if_exists=True,
        )
        stored = self.study.user_attrs.get("identity")
        if stored is None:
            self.study.set_user_attr("identity", identity)
        elif stored != identity:
            raise ConfigError(
                f"{self.location} was searched with {json.dumps(stored)}, this run would use "
                f"{json.dumps(identity)}; use a new --out_root or --study"
            )

    def _sampler(self, generation: int, *fleet: int) -> NSGAIISampler:
        # A fresh sampler per generation, seeded by (seed, domain, generation): a resumed service
        # asks exactly what an uninterrupted one would have asked. Fleet workers each seed their
        # own (`fleet`: worker, trials so far), so two workers do not propose the same trials.
        key = (DOMAINS.index(self.domain), generation, *fleet)
        ss = np.random.SeedSequence(self.seed, spawn_key=key)
        return NSGAIISampler(
            population_size=self.population,
            crossover_prob=CROSSOVER_PROB,
            swapping_prob=SWAPPING_PROB,
            seed=int(ss.generate_state(1)[0]),
        )

    def _latest(self, generation: int) -> dict[str, optuna.trial.FrozenTrial]:
        """Per cand_id of a generation, its newest trial; older RUNNING ones (stale) are failed."""
        latest: dict[str, optuna.trial.FrozenTrial] = {}
        for t in self.study.get_trials(deepcopy=False):
            if t.user_attrs.get("generation") != generation:
                continue
            cid = t.user_attrs["cand_id"]
            if cid in latest and latest[cid].state == TrialState.RUNNING:
                self.study.tell(latest[cid].number, state=TrialState.FAIL)
            if cid not in latest or t.number > latest[cid].number:
                latest[cid] = t
        return latest

    def fleet_sampler(self, worker: int, trials: int) -> NSGAIISampler:
        """Fleet worker `worker`'s sampler for its next ask, when the study holds `trials` trials."""
        return self._sampler(0, worker, trials)

    def suggest(self, trial: Trial, cid: str) -> Candidate:
        """The candidate of a trial run by `optimize`: its u (the queued one for a retry), decoded."""
        params = {name: trial.suggest_float(name, 0.0, 1.0) for name in self.distributions}
        return self._decode(trial, params, cid, -1)

    def _decode(
        self, trial: Trial | None, params: Mapping[str, float], cid: str, g: int
    ) -> Candidate:
        u = {name.removeprefix("u_"): float(params[name]) for name in self.distributions}
        genome = self.spec.decode([u[gene.name] for gene in self.spec.active])
        return Candidate(self.domain, cid, g, u, genome, trial)

    def ask(self, generation: int) -> list[Candidate]:
        """The generation's candidates: reuse those already asked (resume), ask the missing ones."""
        self.study.sampler = self._sampler(generation)
        latest = self._latest(generation)
        done: dict[str, Candidate] = {}
        for cid, t in latest.items():
            if t.state == TrialState.RUNNING:
                # Left running by a killed process: ask its very genome again, then retire it.
                attrs = {"cand_id": cid, "generation": generation, "resumed_from": t.number}
                self.study.enqueue_trial(t.params, user_attrs=attrs)
                self.study.tell(t.number, state=TrialState.FAIL)
            elif t.state.is_finished():
                done[cid] = self._decode(None, t.params, cid, generation)
        live: dict[str, Candidate] = {}
        waiting = [t for t in latest.values() if t.state == TrialState.WAITING]
        n_waiting = len(waiting) + sum(t.state == TrialState.RUNNING for t in latest.values())
        for _ in range(n_waiting):
            trial = self.study.ask(self.distributions)
            cid = trial.user_attrs["cand_id"]
            live[cid] = self._decode(trial, trial.params, cid, generation)
        out = []
        for i in range(self.population):
            cid = cand_id(generation, i)
            if cid not in done and cid not in live:
                trial = self.study.ask(self.distributions)
                trial.set_user_attr("cand_id", cid)
                trial.set_user_attr("generation", generation)
                live[cid] = self._decode(trial, trial.params, cid, generation)
            out.append(done.get(cid) or live[cid])
        return out

    def _values(self, pack: Mapping[str, Any]) -> list[float] | None:
        """The objective values of a pack, or None when it cannot be scored."""
        agg = pack["aggregate"]
        values = [agg["normalised"].get(k, {}).get("overall") for k, _ in self.objectives]
        if agg["score_status"] not in SCORABLE or any(
            v is None or not math.isfinite(v) for v in values
        ):
            return None
        return values

    def record(self, trial: Trial, pack: Mapping[str, Any]) -> list[float] | None:
        """Attach a pack to its trial (attributes, constraints); its objective values or None."""
        agg = pack["aggregate"]
        trial.set_user_attr("stage", pack["stage"])
        trial.set_user_attr("pack", pack["artifacts"]["pack"])
        trial.set_user_attr("score_v2", agg["score_v2"])
        trial.set_user_attr("score_status", agg["score_status"])
        values = self._values(pack)
        if values is not None:
            for key, value in constraints(pack).items():
                trial.set_constraint(key, value)
        return values

    def tell(self, cand: Candidate, pack: Mapping[str, Any]) -> str:
        """Report a candidate's screen pack: values + constraints, or FAIL when it cannot be scored."""
        if cand.trial is None:
            return "already told"
        trial = cand.trial
        values = self.record(trial, pack)
        if values is None:
            self.study.tell(trial, state=TrialState.FAIL)
            cand.trial = None
            return "fail"
        self.study.tell(trial, values)
        cand.trial = None
        return "complete"

    def record_full(self, cand: Candidate, pack: Mapping[str, Any]) -> str:
        """Add a finalist's full pack to the full-evaluation study, once per (generation, cand_id)."""
        for t in self.full_study.get_trials(deepcopy=False):
            if t.user_attrs.get("cand_id") == cand.cand_id and (
                t.user_attrs.get("generation") == cand.generation
            ):
                return "already recorded"
        values = self._values(pack)
        attrs = {
            "cand_id": cand.cand_id,
            "generation": cand.generation,
            "pack": pack["artifacts"]["pack"],
            "score_v2": pack["aggregate"]["score_v2"],
            "constraints": constraints(pack),
        }
        self.full_study.add_trial(
            optuna.trial.create_trial(
                params={f"u_{k}": v for k, v in cand.u.items()},
                distributions=self.distributions,
                values=values,
                state=TrialState.COMPLETE if values is not None else TrialState.FAIL,
                user_attrs=attrs,
            )
        )
        return "complete" if values is not None else "fail"

    def summary(self) -> dict[str, Any]:
        """Trial counts by state and the current Pareto front (cand ids), for manifests and reports."""
        trials = self.study.get_trials(deepcopy=False)
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.name] = states.get(t.state.name, 0) + 1
        full = self.full_study.get_trials(deepcopy=False)
        return {
            "storage": self.location,
            "study": self.study_name,
            "trials": states,
            "pareto": sorted(t.user_attrs.get("cand_id", "?") for t in self.study.best_trials),
            "full_trials": len(full),
            "full_pareto": sorted(
                f"gen{t.user_attrs['generation']}:{t.user_attrs['cand_id']}"
                for t in self.full_study.best_trials
            )
            if any(t.state == TrialState.COMPLETE for t in full)
            else [],
        }
