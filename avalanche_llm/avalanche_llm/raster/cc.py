"""Connected components of token x layer rasters via `scipy.ndimage.label` (design §5).

ADJ_4N links sites that share an edge (token or layer neighbours), ADJ_8N also diagonal ones.
Sequences are stacked along the first axis and never linked to each other.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from labkit.errors import SchemaError

ADJACENCY = {"ADJ_4N": 1, "ADJ_8N": 2}


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
