"""Planted-effect validation of the judge: how often does "improves" find a real gain, and approve none?

Run from dream/: `python bench/bench_power.py [--reps 150]`. Each replicate is one full evaluation of
a storage candidate that moves the fio block size (`io_size_kb_log2`), which only the `normal`
regime declares. Its trials come from a seeded model instead of fio: per trial, perf is
`base x (1 + effect) x exp(N(0, cv))` for the candidate on `normal` (the planted effect) and
`base x exp(N(0, cv))` everywhere else, p95 latency `5 ms x exp(N(0, p95_cv))` for both sides, and
every trial is multiplied by a host drift of `drift_pct` per trial in run order. Everything after
the trial values is the product's code, as `evaluator.pack_candidate` calls it for a full pack: the
ABBA loop (`evaluator.run_blocks`, warm-ups aside), the affected regimes, each regime's paired
statistics and tests (`evaluator.summarise_candidate`) and `significance.improves_over_baseline`.

Two arms per row: the planted effect (detection rate, goal >= 0.8) and the null control, the same
genome with no effect anywhere (false-approval rate, goal <= 0.05). Rates come with exact
Clopper-Pearson 95% intervals over the replicates (scipy.stats.binomtest).

`--real` measures instead of modelling: each replicate is one real `python -m dream evaluate --stage
full` process (ABBA blocks of real fio trials, warm-ups, packs, the product's verdict) of the same
storage candidate on one of two bench-only storage domains from `bench/power_domains.yaml`: `planted`,
where the block-size gene shapes every regime's reads, and `null`, where it reaches no command. The
arms alternate replicate by replicate (planted first in even replicates), so host load falls on both
alike; a rerun of the same command reuses the packs already written. Run it at nice 0: it measures
throughput on a shared host, and a niced run measures the niceness.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats
import yaml

from dream.config import DEFAULT_REGIMES, REGIMES, ExecutionPolicy, load_config
from dream.domains import storage
from dream.evaluator import (
    EvalContext,
    run_blocks,
    stage_plan,
    summarise_candidate,
)
from dream.host import DREAM_ROOT, HostInfo
from dream.runner import TrialOutcome
from dream.sensors import Sensors
from dream.significance import improves_over_baseline
from labkit.cli import bounded_int

DOMAIN = "storage"
GENE = "io_size_kb_log2"  # declared by `normal` only: idle, stress and mixed are regression guards
PLANTED_REGIME = "normal"
BASE = {"perf": 100.0, "p95_ms": 5.0}
POWER_DOMAINS = Path(__file__).resolve().with_name("power_domains.yaml")
ARMS = ("planted", "null")


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
    series = {
        r: run_blocks(model(r, True), model(r, False), policy, seed=seed, sleep=ctx.sleep)
        for r in REGIMES
    }
    results = summarise_candidate(ctx, DOMAIN, genome, series, {}, {})
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


def arm_regimes(arm: str, profile: str, dest: Path) -> Path:
    """Write regimes.yaml with `domains.storage` replaced by `arm` of power_domains.yaml.

    The profile's `fio_size` is cleared so the arm's own `--size` holds.
    """
    doc = yaml.safe_load(DEFAULT_REGIMES.read_text())
    doc["domains"][DOMAIN] = yaml.safe_load(POWER_DOMAINS.read_text())[arm]
    doc["profiles"][profile]["fio_size"] = None
    path = dest / f"regimes_{arm}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def real_genome(step: int = 1) -> dict[str, int]:
    """The candidate's change from stock: the block size `step` doublings up (1: 4 -> 8 KiB)."""
    stock = next(g for g in storage.genes(HostInfo.detect()) if g.name == GENE).default
    return {GENE: int(stock) + step}


def _conditions(pack: dict[str, Any]) -> list[dict[str, float]]:
    return [s["conditions"] for r in pack["regimes"] for s in r["sequence"] if s["conditions"]]


def real_replicate(
    arm: str,
    rep: int,
    *,
    out_root: Path,
    regimes: Path,
    profile: str,
    seed: int,
    stage: str = "full",
    overrides: Sequence[str] = (),
    step: int = 1,
) -> dict[str, Any]:
    """One real `dream evaluate` of the candidate on `arm`; its pack's verdict and why.

    A pack already written by an earlier run of the bench is read, not measured again; its wall
    time and load come from that run's line in `out_root/measured.jsonl`.
    """
    cand_id = f"r{rep:03d}"
    pack_path = out_root / "artifacts" / "candidates" / DOMAIN / f"{cand_id}.json"
    log = out_root / "measured.jsonl"
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    measured = None
    if not pack_path.exists():
        argv = [sys.executable, "-m", "dream", "evaluate", "--profile", profile]
        argv += ["--regimes", str(regimes), "--domain", DOMAIN, "--stage", stage]
        argv += [x for o in overrides for x in ("-o", o)]
        argv += ["--genome", json.dumps(real_genome(step)), "--cand-id", cand_id]
        argv += ["--seed", str(seed), "--out_root", str(out_root)]
        done = subprocess.run(argv, cwd=DREAM_ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise RuntimeError(f"{arm} replicate {rep}: evaluate exited {done.returncode}: {tail}")
        measured = {"rep": rep, "wall_s": round(time.perf_counter() - t0, 1)}
        measured["load_1m"] = [load0, os.getloadavg()[0]]
        with log.open("a") as f:
            f.write(json.dumps(measured) + "\n")
    elif log.exists():
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        measured = next((x for x in lines if x["rep"] == rep), None)
    pack = json.loads(pack_path.read_text())
    normal = next(r for r in pack["regimes"] if r["regime"] == PLANTED_REGIME)
    cond = _conditions(pack)
    tests = {r["regime"]: r["tests"] for r in pack["regimes"] if r["gain"] is not None}
    return {
        "arm": arm,
        "rep": rep,
        "improves": pack["aggregate"]["improves_over_baseline"] is True,
        "normal_perf_ratio": normal["paired"]["perf"]["ratio"]
        if normal["paired"]["perf"]
        else None,
        "gains": [r["regime"] for r in pack["regimes"] if r["gain"]],
        "noninferior": [r["regime"] for r in pack["regimes"] if r["noninferior"]],
        # Which part of non-inferiority failed where: the perf margin or the p95 latency guard.
        "perf_margin_failed": [r for r, t in tests.items() if not t["perf_noninferior"]["passes"]],
        "p95_guard_failed": [r for r, t in tests.items() if not t["p95_ms"]["passes"]],
        "wall_s": measured and measured["wall_s"],
        "load_1m": measured and measured["load_1m"],
        "foreign_cpus_mean": float(np.mean([c["foreign_cpus"] for c in cond])) if cond else None,
        "pack": str(pack_path),
    }


def real_power(
    reps: int,
    *,
    out_root: Path,
    profile: str = "local",
    seed: int = 0,
    stage: str = "full",
    overrides: Sequence[str] = (),
    step: int = 1,
    echo: bool = True,
) -> dict[str, Any]:
    """Run `reps` real evaluations per arm, alternating arms, and rate their approvals.

    `without_p95_guard` (a diagnostic, not a verdict): the share that would be approved if the p95
    latency guard were dropped, i.e. a gain somewhere and the perf margin held everywhere.
    """
    out_root.mkdir(parents=True, exist_ok=True)
    regimes = {arm: arm_regimes(arm, profile, out_root) for arm in ARMS}
    rows: list[dict[str, Any]] = []
    for rep in range(reps):
        for arm in ARMS if rep % 2 == 0 else ARMS[::-1]:
            row = real_replicate(
                arm,
                rep,
                out_root=out_root / arm,
                regimes=regimes[arm],
                profile=profile,
                seed=seed * 100_000 + rep,
                stage=stage,
                overrides=overrides,
                step=step,
            )
            rows.append(row)
            if echo:
                print(json.dumps(row), flush=True)
    walls = [r["wall_s"] for r in rows if r["wall_s"] is not None]
    out: dict[str, Any] = {"reps": reps, "profile": profile, "stage": stage, "step": step}
    out["wall_s"] = sum(walls)
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        ratios = [r["normal_perf_ratio"] for r in mine if r["normal_perf_ratio"] is not None]
        loads = [x for r in mine if r["load_1m"] for x in r["load_1m"]] or [float("nan")]
        foreign = [r["foreign_cpus_mean"] for r in mine if r["foreign_cpus_mean"] is not None]
        loose = sum(bool(r["gains"]) and not r["perf_margin_failed"] for r in mine)
        out[arm] = {
            **rate(sum(r["improves"] for r in mine), len(mine)),
            "without_p95_guard": rate(loose, len(mine)),
            "normal_perf_ratio_median": float(np.median(ratios)) if ratios else None,
            "load_1m": [min(loads), max(loads)],
            "foreign_cpus_mean": float(np.mean(foreign)) if foreign else None,
        }
    return out


def _print_real(r: dict[str, Any]) -> None:
    print(
        f"real: storage candidate {json.dumps(real_genome(r['step']))}, profile {r['profile']}, "
        f"{r['reps']} replicates per arm, 95% Clopper-Pearson CIs"
    )
    for arm, goal in (("planted", ">= 0.80 (detection)"), ("null", "<= 0.05 (false approvals)")):
        a = r[arm]
        print(
            f"{arm:<8} approved {a['rate']:.3f} [{a['low']:.3f}, {a['high']:.3f}]  goal {goal}; "
            f"normal perf ratio median x{a['normal_perf_ratio_median']:.3f}; "
            f"load {a['load_1m'][0]:.1f}-{a['load_1m'][1]:.1f}; "
            f"foreign CPUs {a['foreign_cpus_mean']:.2f}"
        )
        w = a["without_p95_guard"]
        print(f"         without the p95 guard {w['rate']:.3f} [{w['low']:.3f}, {w['high']:.3f}]")
    print(f"wall {r['wall_s']:.0f} s (the replicates' evaluate runs)")


def main() -> None:
    """Print the false-approval (null) and detection rates over profiles, noise and effect sizes."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--reps",
        type=bounded_int(1, 100_000),
        default=None,
        help="replicates per row (150; --real: 20)",
    )
    ap.add_argument("--real", action="store_true", help="real fio evaluations (planted vs null)")
    ap.add_argument(
        "--out_root", type=Path, default=Path("runs/bench_power"), help="--real: packs per arm"
    )
    ap.add_argument("--profile", default="local", help="--real: regimes.yaml profile")
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
    if args.real:
        reps = args.reps or 20
        _print_real(real_power(reps, out_root=args.out_root, profile=args.profile, seed=args.seed))
        return
    args.reps = args.reps or 150
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
