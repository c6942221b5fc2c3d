"""Trials adaptive stopping needs vs a fixed 10 to reach the CI half-width target (local profile, real work).

Run from dream/: `python bench/bench_adaptive.py [--domains cpu,memory,storage]`. The stock genome of every
(domain, regime) runs 10 real trials under the local profile's durations. Those sequences are then replayed
through the evaluator's own `run_trials`: the adaptive rule (stop at the first n >= min_trials whose perf CI
half-width is under rel_halfwidth of the mean) against the fixed count of 10. The headline ratio is adaptive
over fixed trials on the regimes where 10 fixed trials reach that half-width (like for like); the ratio over
all regimes charges 10 where the target is never reached; `capped` is what the local profile runs (at most
`trials` = 5). Samples are saved to
`<out_root>/adaptive_samples.json`; `--replay` recomputes the table from them without running anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dream.config import REGIMES, DreamConfig, ExecutionPolicy, load_config
from dream.evaluator import EvalContext, measure_regime, relative_halfwidth, run_trials, seed_for
from dream.runner import TrialOutcome
from labkit.atomic import atomic_write_json

FIXED = 10


# The adaptive rule under test: up to 5 trials, stop from 3 once the CI half-width is < 5% of the mean
# (the local profile itself now runs fixed ABBA block counts).
RULE = [
    "regimes.profiles.local.execution.trials=5",
    "regimes.profiles.local.execution.min_trials=3",
    "regimes.profiles.local.execution.rel_halfwidth=0.05",
]


def replay(perf: Sequence[float | None], policy: ExecutionPolicy) -> int:
    """How many of these recorded trials (None: failed) the evaluator's stopping rule would run."""
    outcomes = [
        TrialOutcome(
            i, v is not None, 1, 0.0, {"perf": v}, reason=None if v is not None else "failed"
        )
        for i, v in enumerate(perf)
    ]
    series = run_trials(lambda i: outcomes[i], policy, seed=seed_for(0), sleep=lambda s: None)
    return len(series.outcomes)


def compare(perf: Sequence[float | None], policy: ExecutionPolicy) -> dict[str, Any]:
    """Adaptive (uncapped and as configured) vs fixed trial counts and the half-widths they reach."""
    rule = dataclasses.replace(policy, trials=len(perf))
    n = replay(perf, rule)
    ok = [v for v in perf if v is not None]
    ok_n = [v for v in perf[:n] if v is not None]
    return {
        "adaptive": n,
        "capped": replay(perf[: policy.trials], policy),
        "fixed": len(perf),
        "hw_adaptive": relative_halfwidth(ok_n, seed_for(0, 1)),
        "hw_fixed": relative_halfwidth(ok, seed_for(0, 1)),
    }


def measure(cfg: DreamConfig, out_root: Path, domains: Sequence[str]) -> dict[str, Any]:
    """FIXED real trials of the stock genome per (domain, regime): perf per trial, None if it failed."""
    ctx = EvalContext(cfg, out_root, run_id="bench_adaptive")
    fixed = dataclasses.replace(
        cfg.policy, trials=FIXED, min_trials=FIXED, rel_halfwidth=None, max_trial_failures=FIXED
    )
    samples: dict[str, Any] = {}
    for d in domains:
        stock = ctx.spec(d).stock()
        for r in REGIMES:
            series = measure_regime(ctx, d, r, stock, fixed)
            samples[f"{d}/{r}"] = [o.metrics["perf"] if o.ok else None for o in series.outcomes]
            print(f"measured {d}/{r}: {sum(o.ok for o in series.outcomes)}/{FIXED} ok", flush=True)
    return samples


def main() -> None:
    """Measure (or replay) and print the per-regime table and the overall ratio."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--domains", default="cpu,memory,storage")
    ap.add_argument("--out_root", type=Path, default=Path("runs/bench_adaptive"))
    ap.add_argument("--replay", action="store_true", help="reuse adaptive_samples.json")
    args = ap.parse_args()
    cfg = load_config(profile="local", overrides=RULE)
    path = args.out_root / "adaptive_samples.json"
    if args.replay:
        samples = json.loads(path.read_text())
    else:
        samples = measure(cfg, args.out_root, args.domains.split(","))
        atomic_write_json(path, samples)
    target = cfg.policy.rel_halfwidth
    print(
        f"target: perf CI half-width < {target:.0%} of the mean, from {cfg.policy.min_trials} trials"
    )
    print(
        f"{'regime':<16} {'adaptive':>8} {'capped':>6} {'fixed':>5} {'hw adaptive':>11} {'hw fixed':>8}"
    )
    rows = {k: compare(v, cfg.policy) for k, v in samples.items()}
    for key, c in rows.items():
        hw = ["—" if x is None else f"{x:.3f}" for x in (c["hw_adaptive"], c["hw_fixed"])]
        print(
            f"{key:<16} {c['adaptive']:>8} {c['capped']:>6} {c['fixed']:>5} {hw[0]:>11} {hw[1]:>8}"
        )

    def ratio(selected: list[dict[str, Any]], key: str) -> str:
        fixed = sum(c["fixed"] for c in selected)
        return f"{sum(c[key] for c in selected) / fixed:.2f}" if fixed else "—"

    every = list(rows.values())
    # Like for like: the regimes where 10 fixed trials do reach the target half-width.
    met = [c for c in every if c["hw_fixed"] is not None and c["hw_fixed"] < target]
    print(
        f"adaptive/fixed, regimes where 10 trials reach the target ({len(met)}/{len(every)}): "
        f"{ratio(met, 'adaptive')} (goal <= 0.6)"
    )
    print(
        f"adaptive/fixed, all regimes (10 charged where the target is never reached): "
        f"{ratio(every, 'adaptive')}"
    )
    print(f"capped at {cfg.policy.trials} trials: "
          f"{ratio(every, 'capped')}")  # fmt: skip


if __name__ == "__main__":
    main()
