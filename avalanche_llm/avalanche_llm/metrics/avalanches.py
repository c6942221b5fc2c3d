"""Avalanches: size, span and origin of every connected component of a spike raster (design §5)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from avalanche_llm.raster.cc import label
from labkit.errors import SchemaError

MAX_COMPONENTS_PER_SEQ = 20000
COLUMNS = ("seq_index", "size", "n_sites", "duration", "height", "t_min", "l_min")


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


def uncut(av: dict[str, np.ndarray], n_tokens: int) -> np.ndarray:
    """Mask of avalanches touching neither the first nor the last token of their window: the
    window does not cut their size and duration."""
    return (av["t_min"] > 0) & (av["t_min"] + av["duration"] < n_tokens)
