"""Planted-effect validation of the judge: how often does "improves" find a real gain, and approve none?

Run from dream/: `python bench/bench_power.py [--reps 150]`. Each replicate is one full evaluation of
a storage candidate that moves the fio block size (`io_size_kb_log2`), which only the `normal`
regime declares. Its trials come from a seeded model instead of fio: per trial, perf is
`base x (1 + effect) x exp(N(0, cv))` for the candidate on `normal` (the planted effect) and
`base x exp(N(0, cv))` everywhere else, p95 latency `5 ms x exp(N(0, p95_cv))` for both sides, and
every trial is multiplied by a host drift of `drift_pct` per trial in run order. Everything after
the trial values is the product's code, as `evaluator.pack_candidate` calls it for a full pack: the
ABBA loop (`evaluator.run_blocks`, warm-ups aside), the affected regimes, each regime's paired
statistics and tests (`evaluator.summarise_regime`) and `significance.improves_over_baseline`.

Two arms per row: the planted effect (detection rate, goal >= 0.8) and the null control, the same
genome with no effect anywhere (false-approval rate, goal <= 0.05). Rates come with exact
Clopper-Pearson 95% intervals over the replicates (scipy.stats.binomtest).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from dream.config import REGIMES, ExecutionPolicy, load_config
from dream.evaluator import (
    EvalContext,
    affected_regimes,
    run_blocks,
    stage_plan,
    summarise_regime,
)
from dream.runner import TrialOutcome
from dream.sensors import Sensors
from dream.significance import improves_over_baseline

DOMAIN = "storage"
GENE = "io_size_kb_log2"  # declared by `normal` only: idle, stress and mixed are regression guards
PLANTED_REGIME = "normal"
BASE = {"perf": 100.0, "p95_ms": 5.0}


def context(profile: str, workdir: Path, blocks: int | None = None) -> EvalContext:
    """A shadow evaluation context under `profile` (optionally `blocks` ABBA blocks per regime)."""
    execution = f"regimes.profiles.{profile}.execution"
    overrides = [] if blocks is None else [f"{execution}.trials={blocks}"]
    return EvalContext(
        load_config(profile=profile, overrides=overrides),
        workdir,
        run_id="2026-01-01T00-00-00_r001",
        sensors=Sensors(workdir / "nosys", temperatures=dict),
        sleep=lambda s: None,
    )


def candidate(ctx: EvalContext) -> dict[str, Any]:
    """The stock genome with the block size one step up: a change only `normal` can feel."""
    genome = ctx.spec(DOMAIN).stock()
    return {**genome, GENE: genome[GENE] + 1}


def _trial_model(
    rng: np.random.Generator, *, effect: float, cv: float, p95_cv: float, drift_pct: float
) -> Callable[[str, bool], Callable[[int], TrialOutcome]]:
    clock = {"t": 0}  # trials in run order: the host drifts along it

    def for_regime(regime: str, is_candidate: bool) -> Callable[[int], TrialOutcome]:
        gain = 1.0 + (effect if is_candidate and regime == PLANTED_REGIME else 0.0)

        def trial(i: int) -> TrialOutcome:
            drift = 1.0 + drift_pct / 100 * clock["t"]
            clock["t"] += 1
            metrics = {
                "perf": BASE["perf"] * gain * drift * float(np.exp(rng.normal(0.0, cv))),
                "p95_ms": BASE["p95_ms"] / drift * float(np.exp(rng.normal(0.0, p95_cv))),
                "watts": None,
                "temp_peak_c": None,
                "errors": 0.0,
                "oom": 0.0,
            }
            reasons = {k: "not modelled" for k, v in metrics.items() if v is None}
            return TrialOutcome(i, True, 1, 0.0, metrics, reasons)

        return trial

    return for_regime


def verdict(
    ctx: EvalContext,
    rng: np.random.Generator,
    *,
    effect: float,
    cv: float,
    p95_cv: float,
    drift_pct: float,
    policy: ExecutionPolicy,
) -> tuple[bool | None, bool | None]:
    """One full evaluation of the candidate with model trials: (improves_over_baseline, gain on normal).

    The same calls `pack_candidate` makes for a pack's verdict (affected regimes, per-regime paired
    statistics and tests, the improves rule), without writing a pack per replicate.
    """
    model = _trial_model(rng, effect=effect, cv=cv, p95_cv=p95_cv, drift_pct=drift_pct)
    seed = np.random.SeedSequence(int(rng.integers(2**32)))
    genome = candidate(ctx)
    affected = affected_regimes(ctx.cfg, ctx.spec(DOMAIN), genome, REGIMES)
    results = [
        summarise_regime(
            ctx,
            DOMAIN,
            r,
            run_blocks(model(r, True), model(r, False), policy, seed=seed, sleep=ctx.sleep),
            None,
            {},
            affected[r],
        )
        for r in REGIMES
    ]
    gain = results[REGIMES.index(PLANTED_REGIME)].gain
    return improves_over_baseline([(x.affected, x.gain, x.noninferior) for x in results]), gain


def rate(hits: int, n: int) -> dict[str, float]:
    """A proportion with its Clopper-Pearson (exact) 95% interval."""
    ci = scipy.stats.binomtest(hits, n).proportion_ci(confidence_level=0.95, method="exact")
    return {"rate": hits / n, "low": float(ci.low), "high": float(ci.high), "n": n}


def approval_rate(
    profile: str,
    *,
    blocks: int | None = None,
    effect: float,
    cv: float,
    p95_cv: float | None = None,
    drift_pct: float = 0.0,
    reps: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Share of `reps` full evaluations approved (`improves`) with `effect` planted on `normal`.

    With a planted effect this is the detection rate; with effect 0 (the null control) the
    false-approval rate. `gain_rate`: the share whose `normal` regime alone passed the gain test
    (the rest of the rule is non-inferiority on every regime).
    """
    p95_cv = cv if p95_cv is None else p95_cv
    key = [seed, blocks or 0, int(1e4 * cv), int(1e4 * p95_cv), int(1e4 * effect)]
    rng = np.random.default_rng(key)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = context(profile, Path(tmp), blocks)
        _, policy = stage_plan(ctx.cfg, "full")
        verdicts = [
            verdict(
                ctx, rng, effect=effect, cv=cv, p95_cv=p95_cv, drift_pct=drift_pct, policy=policy
            )
            for _ in range(reps)
        ]
    approved = sum(v is True for v, _ in verdicts)
    gains = sum(g is True for _, g in verdicts)
    return {**rate(approved, reps), "gain_rate": gains / reps, "blocks": policy.trials}


def main() -> None:
    """Print the false-approval (null) and detection rates over profiles, noise and effect sizes."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=150, help="replicates per row")
    ap.add_argument(
        "--designs",
        default="local,full,full:30",
        help="profile[:blocks] per design: the profile's ABBA block count, or the one given",
    )
    ap.add_argument(
        "--cvs", default="0.01,0.02,0.05", help="per-trial perf noise (lognormal sigma)"
    )
    ap.add_argument("--effects", default="0.03,0.10", help="planted perf gains on `normal`")
    ap.add_argument("--drift-pct", type=float, default=0.0, help="host drift per trial, in %%")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(
        f"{DOMAIN} candidate moving {GENE} (affects {PLANTED_REGIME} only); {args.reps} replicates "
        f"per row; p95 noise = perf noise; drift {args.drift_pct}%/trial; 95% Clopper-Pearson CIs"
    )
    head = f"{'profile':<7} {'blocks':>6} {'cv':>5} {'effect':>6}  {'approved':<22} "
    print(f"{head}{'gain on normal':>14}  goal")
    for design in args.designs.split(","):
        profile, _, blocks = design.partition(":")
        for cv in (float(x) for x in args.cvs.split(",")):
            for effect in (0.0, *(float(x) for x in args.effects.split(","))):
                r = approval_rate(
                    profile,
                    blocks=int(blocks) if blocks else None,
                    effect=effect,
                    cv=cv,
                    drift_pct=args.drift_pct,
                    reps=args.reps,
                    seed=args.seed,
                )
                goal = "<= 0.05 (null)" if effect == 0 else ">= 0.80"
                print(
                    f"{profile:<7} {r['blocks']:>6} {cv:>5.2f} {effect:>6.2f}  "
                    f"{r['rate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]   "
                    f"{r['gain_rate']:>14.3f}  {goal}",
                    flush=True,
                )
    print(f"wall {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
