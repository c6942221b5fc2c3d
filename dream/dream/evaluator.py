"""Evaluate a genome: trials under the execution policy, CIs, deltas vs stock, tests, caps, a validated pack."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from dream.actuators import Actuation, WriteRefused
from dream.candidate_pack import STAGES, CandidatePack, RegimeResult, write_pack
from dream.config import REGIMES, DreamConfig, ExecutionPolicy
from dream.domains import DOMAINS, KPIS, genome_spec, require_available
from dream.genome import GenomeSpec
from dream.host import HostInfo, block_device, code_hash, host_identity
from dream.runner import TrialOutcome, run_trial
from dream.scoring import CapVerdict, aggregate, check_caps
from dream.sensors import Sensors
from dream.significance import improves_over_baseline, regime_tests
from dream.workloads import build_command
from labkit.errors import ConfigError
from labkit.stats import bootstrap_ci

SCORED = ("perf", "p95_ms", "watts")
N_RESAMPLES = 9999


@dataclass
class TrialSeries:
    """The trials of one regime, in order, and why the evaluator stopped running more."""

    outcomes: list[TrialOutcome]
    stop_reason: str

    @property
    def ok(self) -> list[TrialOutcome]:
        """Successful trials."""
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[TrialOutcome]:
        """Failed trials (excluded from every statistic, counted against max_trial_failures)."""
        return [o for o in self.outcomes if not o.ok]


def seed_for(master: int, *key: int) -> np.random.SeedSequence:
    """An independent, reproducible stream for one (domain, regime, purpose, ...) key."""
    return np.random.SeedSequence(entropy=master, spawn_key=tuple(key))


def relative_halfwidth(values: Sequence[float], seed: np.random.SeedSequence) -> float | None:
    """Bootstrap CI half-width of the mean over |mean| (None when there is no interval yet)."""
    ci = bootstrap_ci(values, seed=seed, n_resamples=N_RESAMPLES)
    if ci.low is None or ci.high is None or not ci.value:
        return None
    return (ci.high - ci.low) / 2 / abs(ci.value)


def _stop_reason(
    outcomes: Sequence[TrialOutcome], policy: ExecutionPolicy, seed: np.random.SeedSequence
) -> str | None:
    ok = [o.metrics["perf"] for o in outcomes if o.ok]
    failed = len(outcomes) - len(ok)
    left = policy.trials - len(outcomes)
    if failed > policy.max_trial_failures:
        return f"{failed} failed trials > max_trial_failures"
    if len(ok) + left < policy.min_successful_trials:
        return "min_successful_trials can no longer be reached"
    if (
        policy.rel_halfwidth is not None
        and left > 0
        and len(ok) >= max(policy.min_trials, policy.min_successful_trials)
    ):
        hw = relative_halfwidth(ok, seed.spawn(1)[0])
        if hw is not None and hw < policy.rel_halfwidth:
            return f"adaptive: perf CI half-width {hw:.4f} of mean"
    return None


def run_trials(
    trial_fn: Callable[[int], TrialOutcome],
    policy: ExecutionPolicy,
    *,
    seed: np.random.SeedSequence,
    sleep: Callable[[float], None] = time.sleep,
    prior: Sequence[TrialOutcome] = (),
) -> TrialSeries:
    """Run trials until the count, adaptive stop, failure limit or unreachable minimum says stop.

    `prior` are trials of the same genome and regime already run under the same rule (a screen):
    they count as trials 0..k-1 and the series continues from there.
    """
    outcomes = list(prior)
    stop = _stop_reason(outcomes, policy, seed) if outcomes else None
    while stop is None and len(outcomes) < policy.trials:
        if outcomes:
            sleep(policy.trial_delay_s)
        outcomes.append(trial_fn(len(outcomes)))
        stop = _stop_reason(outcomes, policy, seed)
    if prior:
        stop = f"{stop or f'ran all {policy.trials} trials'}; trials 0-{len(prior) - 1} from the screen"
    return TrialSeries(outcomes, stop or f"ran all {policy.trials} trials")


@dataclass
class EvalContext:
    """Everything an evaluation needs besides the genome: config, host, sensors, actuation, output."""

    cfg: DreamConfig
    out_root: Path
    run_id: str
    seed: int = 0
    host: HostInfo = field(default_factory=HostInfo.detect)
    # "real" writes allowlisted settings, and only with confirm_real (--yes-write-host) as root.
    actuation_mode: str = "shadow"
    confirm_real: bool = False
    actuation: Actuation | None = None
    sensors: Sensors | None = None
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        # Workloads run in their scratch dir, so every path handed to them must be absolute.
        self.out_root = Path(self.out_root).resolve()
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        if self.actuation is None:
            self.actuation = Actuation(
                self.actuation_mode,
                rollback_path=self.artifacts / "rollback" / "actuation.json",
                allowlist=self.cfg.real_allowlist,
                confirmed=self.confirm_real,
                blockdev=block_device(self.scratch_root),
            )
        # Whatever a crashed run left written is undone before anything else happens.
        self.actuation.recover()
        if self.sensors is None:
            self.sensors = Sensors(sampling_ms=self.cfg.sampling_ms)

    @property
    def artifacts(self) -> Path:
        """`<out_root>/artifacts`, where packs and baselines live."""
        return self.out_root / "artifacts"

    @property
    def scratch_root(self) -> Path:
        """Where trial scratch directories are made (removed after each attempt)."""
        return self.out_root / "scratch"

    @cached_property
    def code_sha256(self) -> str:
        """Hash of the package and scripts this evaluation runs."""
        return code_hash()

    def spec(self, domain: str) -> GenomeSpec:
        """The domain's genome spec under this context's host and actuation."""
        assert self.actuation is not None
        return genome_spec(domain, self.host, self.actuation)


def preflight(
    ctx: EvalContext, domain: str, regimes: Sequence[str], genome: Mapping[str, Any]
) -> None:
    """Build every regime's command once without running it, so config errors surface before any trial."""
    require_available([domain], ctx.host)
    for regime in regimes:
        build_command(
            ctx.cfg, domain, regime, genome, ctx.host, scratch=ctx.scratch_root, seed=ctx.seed
        )


def measure_regime(
    ctx: EvalContext,
    domain: str,
    regime: str,
    genome: Mapping[str, Any],
    policy: ExecutionPolicy,
    prior: Sequence[TrialOutcome] = (),
) -> TrialSeries:
    """Run one regime's trials for a genome (after `prior` ones), actuated and restored per trial."""
    cfg, spec, actuation = ctx.cfg, ctx.spec(domain), ctx.actuation
    assert actuation is not None and ctx.sensors is not None
    timeout = policy.timeout_for(cfg.duration_s(regime))
    d, r = DOMAINS.index(domain), REGIMES.index(regime)

    def trial_fn(i: int) -> TrialOutcome:
        t0 = time.perf_counter()
        try:
            actuation.apply(spec, genome)
        except WriteRefused as exc:
            # Only this genome's trial fails: apply restored what it wrote, the run goes on.
            return TrialOutcome(
                i, False, 1, time.perf_counter() - t0, reason=f"write refused: {exc}"
            )
        try:
            return run_trial(
                lambda wd: build_command(
                    cfg, domain, regime, genome, ctx.host, scratch=wd, seed=ctx.seed + i
                ),
                trial=i,
                timeout_s=timeout,
                retries=policy.failure_retry_count,
                sensors=ctx.sensors,
                probe=cfg.probe,
                required=cfg.required_kpis,
                scratch_root=ctx.scratch_root,
            )
        finally:
            actuation.restore()

    seed = seed_for(ctx.seed, d, r, 0)
    return run_trials(trial_fn, policy, seed=seed, sleep=ctx.sleep, prior=prior)


def _kpi_series(ok: list[TrialOutcome], kpi: str) -> tuple[list[float] | None, str | None]:
    if not ok:
        return None, "no successful trial"
    values = [o.metrics.get(kpi) for o in ok]
    if all(v is not None for v in values):
        return [float(v) for v in values], None
    got = sum(v is not None for v in values)
    if got:
        return None, f"reported by only {got} of {len(ok)} successful trials"
    reasons = [o.reasons[kpi] for o in ok if kpi in o.reasons]
    return None, reasons[0] if reasons else "not reported"


def summarise_regime(
    ctx: EvalContext,
    domain: str,
    regime: str,
    series: TrialSeries,
    baseline: Mapping[str, Any] | None,
    caps: Mapping[str, float],
) -> RegimeResult:
    """KPI series, bootstrap CIs, deltas vs the stock baseline, and the regime's tests."""
    ok = series.ok
    kpis, unavailable, ci95, ci_method = {}, {}, {}, {}
    d, r = DOMAINS.index(domain), REGIMES.index(regime)
    for j, k in enumerate(KPIS):
        kpis[k], why = _kpi_series(ok, k)
        if why:
            unavailable[k] = why
        if kpis[k] is None:
            ci95[k], ci_method[k] = None, "none"
            continue
        ci = bootstrap_ci(kpis[k], seed=seed_for(ctx.seed, d, r, 1, j), n_resamples=N_RESAMPLES)
        ci95[k] = None if ci.low is None else [ci.low, ci.high]
        ci_method[k] = ci.method
    base_means = None if baseline is None else baseline["kpis"]
    delta, delta_pct, delta_pct_ci = {}, {}, {}
    for k in SCORED:
        b = None if base_means is None else base_means.get(k)
        x = kpis[k]
        usable = x is not None and b is not None and b != 0
        delta[k] = [v - b for v in x] if usable else None
        delta_pct[k] = 100 * (float(np.mean(x)) / b - 1) if usable else None
        ci = ci95[k]
        delta_pct_ci[k] = [100 * (ci[0] / b - 1), 100 * (ci[1] / b - 1)] if usable and ci else None
    if baseline is None:
        tests, passes = {"reason": "no stock baseline for this regime"}, None
    else:
        tests, passes = regime_tests(
            kpis, baseline["samples"], delta_pct, delta_pct_ci, ctx.cfg.tolerance
        )
    peaks = {}
    for name in caps:
        seen = [o.metrics[name] for o in series.outcomes if o.metrics.get(name) is not None]
        peaks[name] = max(seen) if seen else None
    return RegimeResult(
        regime=regime,
        trials=len(series.outcomes),
        trials_ok=len(ok),
        stop_reason=series.stop_reason,
        kpis=kpis,
        unavailable=unavailable,
        ci95=ci95,
        ci_method=ci_method,
        baseline=None
        if baseline is None
        else {**{k: base_means.get(k) for k in KPIS}, "baseline_id": baseline["baseline_id"]},
        delta=delta,
        delta_pct=delta_pct,
        delta_pct_ci95=delta_pct_ci,
        tests=tests,
        improves=passes,
        failed_trials=[o.failure_record() for o in series.failed],
        peaks=peaks,
        trial_seconds=[round(o.elapsed_s, 3) for o in series.outcomes],
        notes=sorted({n for o in series.outcomes for n in o.notes}),
    )


def stage_plan(cfg: DreamConfig, stage: str) -> tuple[tuple[str, ...], ExecutionPolicy]:
    """Regimes and policy of a stage: `screen` runs normal for min_trials, `full` all four."""
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {stage!r}")
    if stage == "screen":
        return ("normal",), cfg.policy.screening()
    return REGIMES, cfg.policy


def measure_candidate(
    ctx: EvalContext,
    domain: str,
    genome: Mapping[str, Any],
    *,
    stage: str,
    prior: Mapping[str, TrialSeries] | None = None,
) -> dict[str, TrialSeries]:
    """Check, preflight, then run the stage's regimes; a regime in `prior` continues its series."""
    regimes, policy = stage_plan(ctx.cfg, stage)
    require_available([domain], ctx.host)
    genome = ctx.spec(domain).check(genome)
    preflight(ctx, domain, regimes, genome)
    prior = prior or {}
    return {
        r: measure_regime(
            ctx, domain, r, genome, policy, prior=prior[r].outcomes if r in prior else ()
        )
        for r in regimes
    }


def pack_candidate(
    ctx: EvalContext,
    domain: str,
    genome: Mapping[str, Any],
    series: Mapping[str, TrialSeries],
    *,
    generation: int,
    cand_id: str,
    stage: str,
    baselines: Mapping[str, Mapping[str, Any]],
) -> CandidatePack:
    """Summarise measured regimes into a validated pack and write it."""
    regimes, policy = stage_plan(ctx.cfg, stage)
    spec = ctx.spec(domain)
    genome = spec.check(genome)
    caps = ctx.cfg.domain_caps(domain, ctx.host)
    results = [summarise_regime(ctx, domain, r, series[r], baselines.get(r), caps) for r in regimes]
    verdict: CapVerdict = check_caps(
        caps,
        {r: series[r].outcomes for r in regimes},
        max_trial_failures=policy.max_trial_failures,
    )
    agg = aggregate(
        results,
        verdict,
        min_successful_trials=policy.min_successful_trials,
        improves=improves_over_baseline([x.improves for x in results]),
    )
    rel = f"artifacts/candidates/{domain}/{cand_id}.json"
    assert ctx.actuation is not None
    pack = CandidatePack(
        run_id=ctx.run_id,
        domain=domain,
        cand_id=cand_id,
        generation=generation,
        stage=stage,
        profile=ctx.cfg.profile,
        actuation=ctx.actuation.mode,
        seed=ctx.seed,
        genome=genome,
        frozen_genes=dict(spec.frozen),
        risk_profile=verdict.to_dict(),
        regimes=results,
        aggregate=agg,
        safe=verdict.safe,
        baseline_ids={r: (baselines.get(r) or {}).get("baseline_id") for r in regimes},
        artifacts={"pack": rel},
        code_sha256=ctx.code_sha256,
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        host=host_identity(),
        measurement_notes=sorted({n for r in results for n in r.notes}),
    )
    write_pack(pack, ctx.out_root / rel)
    return pack


def evaluate_candidate(
    ctx: EvalContext,
    domain: str,
    genome: Mapping[str, Any],
    *,
    generation: int,
    cand_id: str,
    stage: str = "full",
    baselines: Mapping[str, Mapping[str, Any]],
) -> CandidatePack:
    """Evaluate one genome over the stage's regimes and write its validated pack."""
    series = measure_candidate(ctx, domain, genome, stage=stage)
    return pack_candidate(
        ctx,
        domain,
        genome,
        series,
        generation=generation,
        cand_id=cand_id,
        stage=stage,
        baselines=baselines,
    )
