"""Design §10 toy raster: known components, spans and branching; ndimage.label equals the BFS oracle."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_llm.metrics.avalanches import avalanches
from avalanche_llm.metrics.branching import branching, branching_counts
from avalanche_llm.metrics.susceptibility import chi
from avalanche_llm.raster.cc import label
from avalanche_llm.tests.bfs_oracle import bfs_components
from labkit.errors import ConfigError, SchemaError


def toy() -> np.ndarray:
    """L=3, T=4 with X at (t, l) = (2,2), (3,2), (3,3), 1-based, stored as [N=1, L, T]."""
    x = np.zeros((1, 3, 4), dtype=np.uint8)
    for t, lay in ((2, 2), (3, 2), (3, 3)):
        x[0, lay - 1, t - 1] = 1
    return x


def test_toy_component_spans_and_branching():
    x = toy()
    a = x.astype(np.uint16) * np.array([1, 2, 3], dtype=np.uint16)[None, :, None]
    av = avalanches(x, a)
    assert av["size"].tolist() == [2 + 2 + 3]
    assert av["n_sites"].tolist() == [3]
    assert av["duration"].tolist() == [2] and av["height"].tolist() == [2]
    assert (av["t_min"][0], av["l_min"][0]) == (1, 1)
    b = branching(x)
    assert b["b_time"] == pytest.approx(1 / 3) and b["b_depth"] == pytest.approx(1 / 3)
    assert b["b_tot"] == pytest.approx(2 / 3) and b["n_active"] == 3


def test_diagonal_pair_splits_under_4n_joins_under_8n():
    x = np.zeros((1, 3, 4), dtype=np.uint8)
    x[0, 0, 0] = x[0, 1, 1] = 1
    assert label(x, "ADJ_4N")[1] == 2
    assert label(x, "ADJ_8N")[1] == 1
    assert branching(x)["b_tot"] == 0.0


def test_components_never_join_across_sequences():
    x = np.ones((3, 2, 5), dtype=np.uint8)
    av = avalanches(x, x, "ADJ_8N")
    assert av["seq_index"].tolist() == [0, 1, 2]
    assert av["size"].tolist() == [10, 10, 10]


def test_branching_is_pooled_not_averaged():
    # Sequence 0: 1 site, no pairs; sequence 1: a full 2x2 block, 4 pairs over 4 sites.
    x = np.zeros((2, 2, 2), dtype=np.uint8)
    x[0, 0, 0] = 1
    x[1] = 1
    assert branching_counts(x).tolist() == [[0, 0, 0, 1], [2, 2, 4, 4]]
    assert branching(x)["b_tot"] == pytest.approx(4 / 5)  # mean of ratios would give 0.5


def test_chi_is_variance_over_mean_of_totals():
    a = np.zeros((3, 2, 2), dtype=np.uint16)
    a[0, 0, 0], a[1, 0, 0], a[2, 1, 1] = 1, 3, 5
    assert chi(a) == pytest.approx(np.var([1, 3, 5]) / (3 + 1e-8))


@pytest.mark.parametrize("adjacency", ["ADJ_4N", "ADJ_8N"])
def test_ndimage_label_matches_bfs_oracle(adjacency):
    rng = np.random.default_rng(1337)
    for density in (0.05, 0.2, 0.45, 0.6):
        x = (rng.random((6, 5, 17)) < density).astype(np.uint8)
        labels, _ = label(x, adjacency)
        for n in range(x.shape[0]):
            ours = {
                frozenset(zip(*np.nonzero(labels[n] == k), strict=True))
                for k in np.unique(labels[n])
                if k
            }
            assert ours == set(bfs_components(x[n], adjacency))


def test_bad_input_is_refused():
    with pytest.raises(SchemaError, match="adjacency"):
        label(toy(), "ADJ_6N")
    with pytest.raises(SchemaError, match="components"):
        x = np.zeros((1, 1, 9), dtype=np.uint8)
        x[0, 0, ::2] = 1
        avalanches(x, x, max_per_seq=4)
    with pytest.raises(ConfigError, match="raster"):
        branching(np.zeros(5))
