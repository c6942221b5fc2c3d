"""Pure-Python breadth-first component search: the test and benchmark oracle for `ndimage.label`."""

from __future__ import annotations

from collections import deque

import numpy as np

NEIGHBOURS = {
    "ADJ_4N": ((-1, 0), (1, 0), (0, -1), (0, 1)),
    "ADJ_8N": tuple((dl, dt) for dl in (-1, 0, 1) for dt in (-1, 0, 1) if (dl, dt) != (0, 0)),
}


def bfs_components(x: np.ndarray, adjacency: str = "ADJ_4N") -> list[frozenset[tuple[int, int]]]:
    """Connected active sites of one [L, T] raster as sets of (layer, token), in scan order."""
    grid = np.asarray(x) > 0
    n_l, n_t = grid.shape
    seen = np.zeros_like(grid)
    components = []
    for l0 in range(n_l):
        for t0 in range(n_t):
            if not grid[l0, t0] or seen[l0, t0]:
                continue
            seen[l0, t0] = True
            queue, sites = deque([(l0, t0)]), set()
            while queue:
                lay, t = queue.popleft()
                sites.add((lay, t))
                for dl, dt in NEIGHBOURS[adjacency]:
                    nl, nt = lay + dl, t + dt
                    if 0 <= nl < n_l and 0 <= nt < n_t and grid[nl, nt] and not seen[nl, nt]:
                        seen[nl, nt] = True
                        queue.append((nl, nt))
            components.append(frozenset(sites))
    return components
