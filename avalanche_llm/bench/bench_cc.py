"""Connected components: `scipy.ndimage.label` (what the pipeline uses) vs the pure-Python BFS oracle.

Run from avalanche_llm/: `python bench/bench_cc.py runs/RUN_S03_<hash>/results/rasters_token_layer.npz`.
Both label every [L, T] raster of the file (all conditions and sequences) with ADJ_4N and ADJ_8N; the
component counts must agree. Each side is timed as the best of `--repeats` passes; goal: ndimage >= 50x.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from avalanche_llm.io.npz import load_npz
from avalanche_llm.raster.cc import label
from avalanche_llm.tests.bfs_oracle import bfs_components


def best_of(repeats: int, fn) -> tuple[float, object]:
    """Fastest wall time of `repeats` calls and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    """Time both labelers on the rasters of one NPZ and print the speed-up per adjacency."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("npz", type=Path, help="a rasters_token_layer.npz (X: [C, N, L, T])")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    X = load_npz(args.npz)["X"]
    rasters = X.reshape(-1, *X.shape[-2:])
    print(
        f"{rasters.shape[0]} rasters of {X.shape[-2]} layers x {X.shape[-1]} tokens, "
        f"density {X.mean():.3f}"
    )
    for adjacency in ("ADJ_4N", "ADJ_8N"):
        t_nd, (_, n_nd) = best_of(args.repeats, lambda a=adjacency: label(rasters, a))
        t_bfs, comps = best_of(
            args.repeats, lambda a=adjacency: [bfs_components(x, a) for x in rasters]
        )
        n_bfs = sum(len(c) for c in comps)
        if n_bfs != n_nd:
            raise SystemExit(f"{adjacency}: ndimage found {n_nd} components, BFS {n_bfs}")
        print(
            f"{adjacency}: {n_nd} components; ndimage {t_nd * 1e3:.2f} ms, BFS {t_bfs * 1e3:.1f} ms, "
            f"speed-up {t_bfs / t_nd:.0f}x (goal >= 50x)"
        )


if __name__ == "__main__":
    main()
