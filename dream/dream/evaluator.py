"""Evaluate a genome: trials under the execution policy, CIs, deltas vs stock, tests, caps, a validated pack."""

from __future__ import annotations

import json
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
from dream.conditions import HostMeter, QuietGate
from dream.config import REGIMES, DreamConfig, ExecutionPolicy
from dream.domains import DOMAINS, KPIS, genome_spec, require_available
from dream.genome import GenomeSpec
from dream.host import HostInfo, block_device, code_hash, host_identity
from dream.runner import TrialOutcome, run_trial
from dream.scoring import CapVerdict, aggregate, check_caps
from dream.sensors import Sensors
from dream.significance import improves_over_baseline, paired_stats, regime_tests
from dream.workloads import build_command
from labkit.errors import ConfigError
from labkit.stats import bootstrap_ci

SCORED = ("perf", "p95_ms", "watts")
N_RESAMPLES = 9999
PERF_FLOOR = 1e-12  # perf has no stated floor; this only keeps ln() finite for a zero reading


@dataclass(frozen=True)
class Block:
    """One ABBA block: a candidate (A) and a stock (B) trial run back to back, in `order`."""

    order: str  # "AB" or "BA"; blocks alternate, so a linear drift cancels over each pair of blocks
    cand: int  # index into TrialSeries.outcomes
    stock: int  # index into TrialSeries.stock


@dataclass
class TrialSeries:
    """The trials of one regime, in order, and why the evaluator stopped running more.

    A stock baseline has only `outcomes`. A candidate series pairs its `outcomes` with `stock`
    trials in `blocks`; `sequence` lists every trial in run order, the discarded warm-ups included.
    """

    outcomes: list[TrialOutcome]
    stop_reason: str
    stock: list[TrialOutcome] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    sequence: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> list[TrialOutcome]:
        """Successful trials."""
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[TrialOutcome]:
        """Failed trials (excluded from every statistic, counted against max_trial_failures)."""
        return [o for o in self.outcomes if not o.ok and not o.invalid]

    @property
    def valid_blocks(self) -> list[Block]:
        """Blocks whose candidate and stock trials both succeeded on a quiet enough host."""
        return [b for b in self.blocks if self.outcomes[b.cand].ok and self.stock[b.stock].ok]

    def pairs(self, kpi: str) -> list[tuple[float, float]]:
        """(candidate, stock) values of a KPI over the valid blocks where both report it."""
        out = []
        for b in self.valid_blocks:
            a, s = self.outcomes[b.cand].metrics.get(kpi), self.stock[b.stock].metrics.get(kpi)
            if a is not None and s is not None:
                out.append((float(a), float(s)))
        return out


def seed_for(master: int, *key: int) -> np.random.SeedSequence:
    """An independent, reproducible stream for one (domain, regime, purpose, ...) key."""
    return np.random.SeedSequence(entropy=master, spawn_key=tuple(key))


def relative_halfwidth(values: Sequence[float], seed: np.random.SeedSequence) -> float | None:
    """Bootstrap CI half-width of the mean over |mean| (None when there is no interval yet)."""
    ci = bootstrap_ci(values, seed=seed, n_resamples=N_RESAMPLES)
    if ci.low is None or ci.high is None or not ci.value:
        return None
    return (ci.high - ci.low) / 2 / abs(ci.value)


def _failures(outcomes: Sequence[TrialOutcome]) -> int:
    return sum(not o.ok and not o.invalid for o in outcomes)


def _stop_reason(
    outcomes: Sequence[TrialOutcome], policy: ExecutionPolicy, seed: np.random.SeedSequence
) -> str | None:
    ok = [o.metrics["perf"] for o in outcomes if o.ok]
    failed = _failures(outcomes)
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
) -> TrialSeries:
    """Run trials until the count, adaptive stop, failure limit or unreachable minimum says stop."""
    outcomes: list[TrialOutcome] = []
    stop = None
    while stop is None and len(outcomes) < policy.trials:
        if outcomes:
            sleep(policy.trial_delay_s)
        outcomes.append(trial_fn(len(outcomes)))
        stop = _stop_reason(outcomes, policy, seed)
    return TrialSeries(outcomes, stop or f"ran all {policy.trials} trials")


def _block_stop(
    series: TrialSeries, policy: ExecutionPolicy, seed: np.random.SeedSequence
) -> str | None:
    left = policy.trials - len(series.blocks)
    valid = len(series.valid_blocks)
    for side, trials in (("candidate", series.outcomes), ("stock", series.stock)):
        if _failures(trials) > policy.max_trial_failures:
            return f"{_failures(trials)} failed {side} trials > max_trial_failures"
    if valid + left < policy.min_successful_trials:
        return "min_successful_trials valid blocks can no longer be reached"
    if (
        policy.rel_halfwidth is not None
        and left > 0
        and valid >= max(policy.min_trials, policy.min_successful_trials)
    ):
        ratios = [np.log(a / b) for a, b in series.pairs("perf") if a > 0 and b > 0]
        ci = bootstrap_ci(ratios, seed=seed.spawn(1)[0], n_resamples=N_RESAMPLES)
        if ci.low is not None and (ci.high - ci.low) / 2 < policy.rel_halfwidth:
            return f"adaptive: paired perf log-ratio CI half-width {(ci.high - ci.low) / 2:.4f}"
    return None


def run_blocks(
    cand_fn: Callable[[int], TrialOutcome],
    stock_fn: Callable[[int], TrialOutcome],
    policy: ExecutionPolicy,
    *,
    seed: np.random.SeedSequence,
    sleep: Callable[[float], None] = time.sleep,
    series: TrialSeries | None = None,
) -> TrialSeries:
    """ABBA blocks (AB, BA, AB, ...) until the block count, adaptive stop or a failure limit."""
    series = series or TrialSeries([], "")
    stop = None
    while stop is None and len(series.blocks) < policy.trials:
        k = len(series.blocks)
        order = "AB" if k % 2 == 0 else "BA"
        for side in order:
            if series.sequence:
                sleep(policy.trial_delay_s)
            trials, fn, role = (
                (series.outcomes, cand_fn, "candidate")
                if side == "A"
                else (series.stock, stock_fn, "stock")
            )
            trials.append(fn(len(trials)))
            series.sequence.append(sequence_entry(role, trials[-1], block=k))
        series.blocks.append(Block(order, len(series.outcomes) - 1, len(series.stock) - 1))
        stop = _block_stop(series, policy, seed)
    series.stop_reason = stop or f"ran all {policy.trials} blocks"
    return series


def sequence_entry(
    role: str, o: TrialOutcome, *, block: int | None, warmup: bool = False
) -> dict[str, Any]:
    """One line of a regime's run-order log: who ran, in which block, how it went, host load."""
    state = "ok" if o.ok else ("invalid" if o.invalid else "failed")
    return {
        "role": role,
        "trial": o.trial,
        "block": block,
        "warmup": warmup,
        "state": state,
        "reason": o.reason,
        "conditions": o.conditions,
    }


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
    gate: QuietGate | None = None  # default: the profile's quiet_host settings
    warmed: set[tuple[str, str, str]] = field(default_factory=set)  # (domain, regime, genome)

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
        if self.gate is None:
            q = self.cfg.quiet_host
            self.gate = QuietGate(q["max_foreign_cpus"], probe_s=q["probe_s"], wait_s=q["wait_s"])

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


def _trial_fn(
    ctx: EvalContext, domain: str, regime: str, policy: ExecutionPolicy
) -> tuple[Callable[[Mapping[str, Any], int], TrialOutcome], np.random.SeedSequence]:
    """(fn(genome, i): one trial, gated, actuated, metered, restored; the regime's stop-rule seed)."""
    cfg, spec, actuation = ctx.cfg, ctx.spec(domain), ctx.actuation
    assert actuation is not None and ctx.sensors is not None
    timeout = policy.timeout_for(cfg.duration_s(regime))
    cpus = ctx.host.cpus

    def trial(genome: Mapping[str, Any], i: int) -> TrialOutcome:
        t0 = time.perf_counter()
        noisy = ctx.gate.wait(cpus)
        if noisy is not None:
            return TrialOutcome(i, False, 0, time.perf_counter() - t0, reason=noisy, invalid=True)
        try:
            actuation.apply(spec, genome)
        except WriteRefused as exc:
            # Only this genome's trial fails: apply restored what it wrote, the run goes on.
            return TrialOutcome(
                i, False, 1, time.perf_counter() - t0, reason=f"write refused: {exc}"
            )
        meter = HostMeter(cpus).start()
        try:
            out = run_trial(
                lambda wd: build_command(
                    cfg, domain, regime, genome, ctx.host, scratch=wd, seed=ctx.seed + max(i, 0)
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
        out.conditions = meter.stop()
        noisy = ctx.gate.check(out.conditions)
        if noisy is not None and out.ok:
            out.ok, out.invalid, out.reason = False, True, noisy
        return out

    return trial, seed_for(ctx.seed, DOMAINS.index(domain), REGIMES.index(regime), 0)


def measure_regime(
    ctx: EvalContext,
    domain: str,
    regime: str,
    genome: Mapping[str, Any],
    policy: ExecutionPolicy,
) -> TrialSeries:
    """Plain trials of one genome (the stock baseline and drift reruns), actuated per trial."""
    trial, seed = _trial_fn(ctx, domain, regime, policy)
    series = run_trials(lambda i: trial(genome, i), policy, seed=seed, sleep=ctx.sleep)
    series.sequence = [sequence_entry("stock", o, block=None) for o in series.outcomes]
    return series


def measure_paired(
    ctx: EvalContext, domain: str, regime: str, genome: Mapping[str, Any], policy: ExecutionPolicy
) -> TrialSeries:
    """A candidate against stock in ABBA blocks, after one discarded warm-up per (genome, regime)."""
    trial, seed = _trial_fn(ctx, domain, regime, policy)
    stock = ctx.spec(domain).stock()
    series = TrialSeries([], "")
    for role, g in (("candidate", genome), ("stock", stock)):
        key = (domain, regime, json.dumps(dict(g), sort_keys=True))
        if key not in ctx.warmed:
            # The first run of a configuration fills caches and page cache; it is never a sample.
            series.sequence.append(sequence_entry(role, trial(g, -1), block=None, warmup=True))
            ctx.warmed.add(key)
    return run_blocks(
        lambda i: trial(genome, i),
        lambda i: trial(stock, i),
        policy,
        seed=seed,
        sleep=ctx.sleep,
        series=series,
    )


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


def _paired(
    ctx: EvalContext, series: TrialSeries, seed: tuple[int, ...]
) -> dict[str, dict[str, Any] | None]:
    """Per scored KPI: statistics of the per-block log ratios (None where no block has both)."""
    lr = ctx.cfg.log_ratio
    out: dict[str, dict[str, Any] | None] = {}
    for j, k in enumerate(SCORED):
        pairs = series.pairs(k)
        out[k] = (
            paired_stats(
                pairs,
                floor=float(lr["floors"].get(k, PERF_FLOOR)),
                max_abs=float(lr["max_abs"]),
                seed=seed_for(ctx.seed, *seed, 2, j),
            )
            if pairs
            else None
        )
    return out


def summarise_regime(
    ctx: EvalContext,
    domain: str,
    regime: str,
    series: TrialSeries,
    baseline: Mapping[str, Any] | None,
    caps: Mapping[str, float],
    affected: bool | None = None,
    family: int = 1,
) -> RegimeResult:
    """KPI series and CIs; for a candidate, paired ABBA statistics against its stock trials and tests.

    `family`: how many regimes' gain tests the verdict takes (see `regime_tests`).
    """
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
    paired = _paired(ctx, series, (d, r)) if series.blocks else {k: None for k in SCORED}
    delta, delta_pct, delta_pct_ci = {}, {}, {}
    for k in SCORED:
        st = paired[k]
        delta[k] = [a - b for a, b in series.pairs(k)] if st else None
        delta_pct[k] = 100 * (st["ratio"] - 1) if st and st["ratio"] is not None else None
        ci = None if st is None else st["ratio_ci95"]
        delta_pct_ci[k] = [100 * (ci[0] - 1), 100 * (ci[1] - 1)] if ci else None
    if series.blocks:
        tests, gain, guard = regime_tests(paired, ctx.cfg.tolerance, family=family)
    else:
        tests, gain, guard = {"reason": "no paired stock trials (a stock baseline)"}, None, None
    peaks = {}
    for name in caps:
        seen = [o.metrics[name] for o in series.outcomes if o.metrics.get(name) is not None]
        peaks[name] = max(seen) if seen else None
    base_means = None if baseline is None else baseline["kpis"]
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
        improves=None if gain is None or guard is None else gain and guard,
        failed_trials=[o.failure_record() for o in series.failed],
        peaks=peaks,
        trial_seconds=[round(o.elapsed_s, 3) for o in series.outcomes],
        notes=sorted({n for o in [*series.outcomes, *series.stock] for n in o.notes}),
        stock_kpis={k: _kpi_series([o for o in series.stock if o.ok], k)[0] for k in SCORED},
        blocks=[
            {
                "order": b.order,
                "candidate_trial": b.cand,
                "stock_trial": b.stock,
                "valid": b in series.valid_blocks,
            }
            for b in series.blocks
        ],
        blocks_valid=len(series.valid_blocks),
        sequence=series.sequence,
        paired=paired,
        affected=affected,
        gain=gain,
        noninferior=guard,
    )


def affected_regimes(
    cfg: DreamConfig, spec: GenomeSpec, genome: Mapping[str, Any], regimes: Sequence[str]
) -> dict[str, bool]:
    """Per regime: does the genome change a gene that can affect it?

    A workload gene affects the regimes that declare it (regimes.yaml `genes`); a real host
    setting that moved affects every regime.
    """
    stock = spec.stock()
    moved = {g.name for g in spec.genes if genome[g.name] != stock[g.name]}
    real = {g.name for g in spec.active if g.setting is not None and not g.workload}
    return {r: bool(moved & (set(cfg.regime_genes(spec.domain, r)) | real)) for r in regimes}


def summarise_candidate(
    ctx: EvalContext,
    domain: str,
    genome: Mapping[str, Any],
    series: Mapping[str, TrialSeries],
    baselines: Mapping[str, Mapping[str, Any]],
    caps: Mapping[str, float],
) -> list[RegimeResult]:
    """Every measured regime of a candidate summarised, its gain tests corrected for their number."""
    affected = affected_regimes(ctx.cfg, ctx.spec(domain), genome, list(series))
    family = max(1, sum(affected.values()))
    return [
        summarise_regime(ctx, domain, r, s, baselines.get(r), caps, affected[r], family)
        for r, s in series.items()
    ]


def stage_plan(cfg: DreamConfig, stage: str) -> tuple[tuple[str, ...], ExecutionPolicy]:
    """Regimes and policy of a stage: `screen` runs normal for min_trials, `full` all four."""
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {stage!r}")
    if stage == "screen":
        return ("normal",), cfg.policy.screening()
    return REGIMES, cfg.policy


def measure_candidate(
    ctx: EvalContext, domain: str, genome: Mapping[str, Any], *, stage: str
) -> dict[str, TrialSeries]:
    """Check, preflight, then run the stage's regimes, each in fresh ABBA blocks against stock."""
    regimes, policy = stage_plan(ctx.cfg, stage)
    require_available([domain], ctx.host)
    genome = ctx.spec(domain).check(genome)
    preflight(ctx, domain, regimes, genome)
    return {r: measure_paired(ctx, domain, r, genome, policy) for r in regimes}


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
    results = summarise_candidate(
        ctx, domain, genome, {r: series[r] for r in regimes}, baselines, caps
    )
    verdict: CapVerdict = check_caps(
        caps,
        {r: series[r].outcomes for r in regimes},
        max_trial_failures=policy.max_trial_failures,
    )
    agg = aggregate(
        results,
        verdict,
        min_successful_trials=policy.min_successful_trials,
        improves=improves_over_baseline([(x.affected, x.gain, x.noninferior) for x in results]),
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
