"""The domain service: per generation and domain, ask -> screen -> full top_k -> tell -> drift -> approvals."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dream.approvals import Approvals
from dream.baseline import BaselineStore, detect_drift, ensure_baselines
from dream.candidate_pack import STAGES, load_pack, write_pack
from dream.config import REGIMES
from dream.domains import DOMAINS, DomainStatus, domain_status, require_available
from dream.evaluator import (
    EvalContext,
    measure_candidate,
    measure_regime,
    pack_candidate,
    stage_plan,
)
from dream.manifest import Manifest
from dream.search import Candidate, SearchEngine
from dream.telemetry import (
    append_generation,
    generation_record,
    generations_done,
    note_unavailable,
)
from labkit.control import PauseControl
from labkit.errors import ConfigError, Paused
from labkit.heartbeat import Heartbeat

Checkpoint = Callable[[str, int, str], None]


@dataclass(frozen=True)
class ServiceOptions:
    """What the service evolves: which domains, for how many generations, how many genomes each."""

    domains: tuple[str, ...] | None  # None: every domain; those this host cannot run are reported
    generations: int
    population: int
    refresh_baseline: bool = False

    def __post_init__(self) -> None:
        if self.generations < 1:
            raise ConfigError(f"generations must be >= 1, got {self.generations}")
        if self.population < 2:
            raise ConfigError(f"population must be >= 2 for NSGA-II, got {self.population}")


def plan_domains(
    names: Iterable[str] | None, ctx: EvalContext
) -> tuple[list[str], list[DomainStatus]]:
    """The domains to evolve and the unavailable ones to report; a named unavailable one fails now."""
    if names is not None:
        names = list(names)
        require_available(names, ctx.host)
        return names, []
    statuses = [domain_status(d, ctx.host) for d in DOMAINS]
    return [s.domain for s in statuses if s.available], [s for s in statuses if not s.available]


def reusable_pack(
    ctx: EvalContext, cand: Candidate, stage: str, baselines: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """A pack a killed run already wrote for this very genome, stage and baselines (resume)."""
    path = ctx.artifacts / "candidates" / cand.domain / f"{cand.cand_id}.json"
    if not path.exists():
        return None
    pack = load_pack(path)
    regimes, _ = stage_plan(ctx.cfg, pack["stage"])
    current = all(pack["baseline_ids"].get(r) == baselines[r]["baseline_id"] for r in regimes)
    later = STAGES.index(pack["stage"]) >= STAGES.index(stage)
    return pack if pack["genome"] == cand.genome and later and current else None


def keep_screen_pack(artifacts: Path, domain: str, cand_id: str) -> None:
    """Copy a finalist's screen pack to `candidates/<domain>/screen/` before its full pack takes the path.

    A copy, not a move: until the full pack is written, resuming still finds the screen pack in place.
    """
    path = artifacts / "candidates" / domain / f"{cand_id}.json"
    kept = path.parent / "screen" / path.name
    if path.exists() and not kept.exists():
        pack = load_pack(path)
        if pack["stage"] == "screen":
            write_pack(pack, kept)


def finalists(packs: Mapping[str, Mapping[str, Any]], top_k: int) -> list[str]:
    """Candidates for the full evaluation: those already full, then the best screened, to top_k."""
    full = sorted(cid for cid, p in packs.items() if p["stage"] == "full")
    scored = [
        (p["aggregate"]["score_v2"], cid)
        for cid, p in packs.items()
        if p["stage"] == "screen" and p["aggregate"]["score_v2"] is not None
    ]
    ranked = [cid for _, cid in sorted(scored, key=lambda x: (-x[0], x[1]))]
    return full + ranked[: max(0, top_k - len(full))]


def check_drift(
    ctx: EvalContext, domain: str, generation: int, baseline: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Every `drift.every_generations`: rerun stock on `normal` and test it against its baseline."""
    d = ctx.cfg.drift
    if not d["every_generations"] or (generation + 1) % d["every_generations"]:
        return None
    n = int(d["trials"])
    policy = dataclasses.replace(
        ctx.cfg.policy,
        trials=n,
        min_trials=n,
        rel_halfwidth=None,
        min_successful_trials=min(ctx.cfg.policy.min_successful_trials, n),
    )
    series = measure_regime(ctx, domain, "normal", ctx.spec(domain).stock(), policy)
    samples = [o.metrics["perf"] for o in series.ok]
    verdict = detect_drift(baseline, samples, alpha=d["alpha"], min_change_pct=d["min_change_pct"])
    return {
        "regime": "normal",
        "baseline_id": baseline["baseline_id"],
        "samples": samples,
        **verdict,
    }


def evolve_generation(
    ctx: EvalContext,
    engine: SearchEngine,
    generation: int,
    baselines: Mapping[str, Mapping[str, Any]],
    approvals: Approvals,
    checkpoint: Checkpoint,
) -> dict[str, Any]:
    """One generation of one domain, resumable at any point; returns its telemetry line."""
    domain = engine.domain
    screen_on, top_k = ctx.cfg.screen
    first = "screen" if screen_on else "full"

    def evaluate(cand: Candidate, stage: str) -> dict[str, Any]:
        pack = reusable_pack(ctx, cand, stage, baselines)
        if pack is None and stage == "full":
            keep_screen_pack(ctx.artifacts, domain, cand.cand_id)
        if pack is None:
            # A finalist's full evaluation runs fresh trials: the screen trials that selected it
            # are biased upward by that very selection.
            series = measure_candidate(ctx, domain, cand.genome, stage=stage)
            pack = pack_candidate(
                ctx,
                domain,
                cand.genome,
                series,
                generation=generation,
                cand_id=cand.cand_id,
                stage=stage,
                baselines=baselines,
            ).to_dict()
        checkpoint(domain, generation, f"{cand.cand_id} {stage}")
        return pack

    cands = {c.cand_id: c for c in engine.ask(generation)}
    packs = {cid: evaluate(c, first) for cid, c in cands.items()}
    # The search study learns from the screen (one regime, every candidate alike); the finalists'
    # full evaluations go to the full-evaluation study. A candidate told before a kill stays told.
    for cid, c in cands.items():
        engine.tell(c, packs[cid])
    if screen_on:
        for cid in finalists(packs, top_k):
            packs[cid] = evaluate(cands[cid], "full")
    for cid in (cid for cid, p in packs.items() if p["stage"] == "full"):
        engine.record_full(cands[cid], packs[cid])
    drift = check_drift(ctx, domain, generation, baselines["normal"])
    if drift is not None and drift["drift"]:
        approvals.pause(domain, {"reason": "baseline_drift", **drift})
    offers = [approvals.offer(p) for p in packs.values() if p["stage"] == "full"]
    return generation_record(
        domain=domain,
        generation=generation,
        run_id=ctx.run_id,
        packs=[packs[cid] for cid in sorted(packs)],
        baseline_ids={r: baselines[r]["baseline_id"] for r in REGIMES},
        drift=drift,
        approvals={
            "queued": [o["cand_id"] for o in offers if o["queued"]],
            "not_queued": {o["cand_id"]: o["reason"] for o in offers if not o["queued"]},
            "paused": approvals.paused(domain) is not None,
        },
    )


def run_service(ctx: EvalContext, opts: ServiceOptions, manifest: Manifest) -> dict[str, Any]:
    """Evolve every planned domain to `opts.generations`, resuming whatever an earlier run left."""
    t0 = time.perf_counter()
    domains, unavailable = plan_domains(opts.domains, ctx)
    for status in unavailable:
        note_unavailable(ctx.artifacts, status, ctx.run_id)
    store = BaselineStore(ctx.artifacts / "baselines.json")
    approvals = Approvals(ctx.artifacts, max_pending=ctx.cfg.max_pending_approvals)
    assert ctx.sensors is not None
    watts = "watts" not in ctx.sensors.unmeasurable()
    engines = {
        d: SearchEngine(
            ctx.artifacts / "studies",
            ctx.spec(d),
            population=opts.population,
            seed=ctx.seed,
            watts=watts,
        )
        for d in domains
    }
    todo = [
        (g, d)
        for g in range(opts.generations)
        for d in domains
        if g not in generations_done(ctx.artifacts, d)
    ]
    manifest.update(
        progress={"domains": domains, "unavailable": [s.to_dict() for s in unavailable]}
    )
    with Heartbeat(ctx.artifacts, "service", total=len(todo)) as hb:
        pause = PauseControl(ctx.artifacts, "service", heartbeat=hb)
        done = 0

        def checkpoint(domain: str, generation: int, what: str) -> None:
            hb.beat(done, metrics={"domain": domain, "generation": generation, "last": what})
            if pause.requested():
                pause.acknowledge(
                    done, engines[domain].location, domain=domain, generation=generation
                )
                raise Paused(f"paused in {domain} generation {generation} after {what}")

        baselines = {}
        for d in domains:
            baselines[d] = ensure_baselines(ctx, store, d, refresh=opts.refresh_baseline)
            if opts.refresh_baseline:
                approvals.resume(d)
            checkpoint(d, -1, "baselines")
        lines: dict[str, list[dict[str, Any]]] = {d: [] for d in domains}
        for g, d in todo:
            record = evolve_generation(ctx, engines[d], g, baselines[d], approvals, checkpoint)
            append_generation(ctx.artifacts, record)
            lines[d].append(record)
            done += 1
            manifest.update(
                progress={
                    "domains": domains,
                    "unavailable": [s.to_dict() for s in unavailable],
                    "generations_done": {
                        x: sorted(generations_done(ctx.artifacts, x)) for x in domains
                    },
                    "studies": {x: engines[x].summary() for x in domains},
                }
            )
            checkpoint(d, g, "telemetry")
    return {
        "run_id": ctx.run_id,
        "wall_s": round(time.perf_counter() - t0, 1),
        "domains": {d: lines[d] for d in domains},
        "unavailable": [s.to_dict() for s in unavailable],
    }
