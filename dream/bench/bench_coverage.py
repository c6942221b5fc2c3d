"""Coverage of 95% bootstrap CIs of the mean on synthetic data: labkit's BCa vs the percentile bootstrap.

Run from dream/: `python bench/bench_coverage.py [--reps 1000]`. For each distribution and sample size,
`reps` samples are drawn with a seeded Generator; each gets a labkit BCa interval (the one D-REAM packs
carry: expanded to t-width for small n) and a plain percentile-bootstrap interval, both from 2,000
resamples. Coverage is the share of intervals holding the true mean; the ratio column is the BCa miss
rate over the percentile miss rate (below 1: BCa misses less often).
"""

from __future__ import annotations

import argparse

import numpy as np

from labkit.stats import bootstrap_ci

# name -> (sampler(rng, n), true mean): symmetric, right-skewed, heavily skewed.
DISTRIBUTIONS = {
    "normal": (lambda rng, n: rng.normal(100.0, 5.0, n), 100.0),
    "lognormal": (lambda rng, n: rng.lognormal(0.0, 0.5, n), float(np.exp(0.125))),
    "exponential": (lambda rng, n: rng.exponential(1.0, n), 1.0),
}


def coverage(
    dist: str, n: int, *, reps: int, seed: int = 0, n_resamples: int = 2000
) -> dict[str, float]:
    """Share of `reps` intervals holding the true mean, for labkit BCa and the percentile bootstrap."""
    draw, mean = DISTRIBUTIONS[dist]
    root = np.random.SeedSequence([seed, n, list(DISTRIBUTIONS).index(dist)])
    hits = {"bca": 0, "percentile": 0}
    for ss in root.spawn(reps):
        data_ss, boot_ss = ss.spawn(2)
        x = draw(np.random.default_rng(data_ss), n)
        bca = bootstrap_ci(x, seed=boot_ss, n_resamples=n_resamples)
        pct = bootstrap_ci(
            x, seed=boot_ss, n_resamples=n_resamples, method="percentile", expand=False
        )
        hits["bca"] += bca.low <= mean <= bca.high
        hits["percentile"] += pct.low <= mean <= pct.high
    return {k: v / reps for k, v in hits.items()}


def main() -> None:
    """Print the coverage table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--sizes", default="3,5,10,20")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"95% CI coverage of the mean, {args.reps} samples per row, 2000 resamples each")
    print(f"{'distribution':<12} {'n':>3} {'labkit BCa':>10} {'percentile':>10} {'miss ratio':>10}")
    for dist in DISTRIBUTIONS:
        for n in (int(x) for x in args.sizes.split(",")):
            c = coverage(dist, n, reps=args.reps, seed=args.seed)
            miss_pct = 1 - c["percentile"]
            ratio = (1 - c["bca"]) / miss_pct if miss_pct else float("nan")
            print(f"{dist:<12} {n:>3} {c['bca']:>10.3f} {c['percentile']:>10.3f} {ratio:>10.2f}")


if __name__ == "__main__":
    main()
