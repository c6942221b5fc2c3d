"""Avalanches = connected active sites of each token x layer raster, via `scipy.ndimage.label` (§5)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from labkit.errors import SchemaError

ADJACENCY = {"ADJ_4N": 1, "ADJ_8N": 2}
MAX_COMPONENTS_PER_SEQ = 20000
COLUMNS = ("seq_index", "size", "n_sites", "duration", "height", "t_min", "l_min")


def structure(adjacency: str) -> np.ndarray:
    """3-D structuring element for [N, L, T]: the 2-D neighbourhood, no links across sequences."""
    if adjacency not in ADJACENCY:
        raise SchemaError(f"unknown adjacency {adjacency!r}; expected one of {sorted(ADJACENCY)}")
    st = np.zeros((3, 3, 3), dtype=bool)
    st[1] = ndimage.generate_binary_structure(2, ADJACENCY[adjacency])
    return st


def label(X: np.ndarray, adjacency: str = "ADJ_4N") -> tuple[np.ndarray, int]:
    """Component labels of X [N, L, T] (0 = inactive), numbered across all sequences."""
    x = np.asarray(X) > 0
    if x.ndim != 3:
        raise SchemaError(f"raster must be [N, L, T], got shape {x.shape}")
    labels, n = ndimage.label(x, structure=structure(adjacency))
    return labels, int(n)


def avalanches(
    X: np.ndarray,
    A: np.ndarray,
    adjacency: str = "ADJ_4N",
    max_per_seq: int = MAX_COMPONENTS_PER_SEQ,
) -> dict[str, np.ndarray]:
    """One entry per component: sequence, size S = sum A, sites, duration D, height H, origin."""
    labels, n = label(X, adjacency)
    counts = np.asarray(A, dtype=np.int64)
    if counts.shape != labels.shape:
        raise SchemaError(f"A has shape {counts.shape}, X has {labels.shape}")
    flat = labels.ravel()
    size = np.bincount(flat, weights=counts.ravel(), minlength=n + 1)[1:].astype(np.int64)
    sites = np.bincount(flat, minlength=n + 1)[1:].astype(np.int64)
    boxes = ndimage.find_objects(labels)
    seq = np.array([b[0].start for b in boxes], dtype=np.int64)
    l_min = np.array([b[1].start for b in boxes], dtype=np.int64)
    t_min = np.array([b[2].start for b in boxes], dtype=np.int64)
    height = np.array([b[1].stop - b[1].start for b in boxes], dtype=np.int64)
    duration = np.array([b[2].stop - b[2].start for b in boxes], dtype=np.int64)
    per_seq = np.bincount(seq, minlength=labels.shape[0]) if n else np.zeros(1, np.int64)
    if per_seq.max() > max_per_seq:
        worst = int(per_seq.argmax())
        raise SchemaError(
            f"sequence {worst} has {int(per_seq[worst])} components (> {max_per_seq}); "
            "the threshold is too low for a meaningful raster"
        )
    return dict(zip(COLUMNS, (seq, size, sites, duration, height, t_min, l_min), strict=True))
