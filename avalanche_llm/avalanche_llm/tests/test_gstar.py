"""g* selection (btot_near_one): the design's worked example, ties, grid edges, exact hits, bad input."""

from __future__ import annotations

import pytest

from avalanche_llm.analysis.gstar import select_all, select_gstar
from labkit.errors import ConfigError

GAINS = [0.7, 0.85, 1.0, 1.15, 1.3]


def test_design_worked_example():
    out = select_gstar(GAINS, [0.6, 0.98, 1.1, 1.35, 1.6])
    assert out["gstar"] == 0.85 and out["status"] == "crossing"
    assert out["g_cross"] == pytest.approx(0.85 + 0.15 * 0.02 / 0.12)
    assert out["on_edge"] is False


def test_tie_goes_to_gain_closest_to_one():
    out = select_gstar([0.7, 0.85, 1.0, 1.1, 1.3], [0.5, 0.9, 1.3, 1.1, 1.4])
    assert out["gstar"] == 1.1 and out["status"] == "no_crossing"  # 1.3 and 1.4 both above 1
    assert select_gstar([0.8, 0.9, 1.2], [0.5, 0.9, 1.1])["gstar"] == 0.9


def test_argmin_on_edge_is_no_crossing_even_with_a_sign_change():
    out = select_gstar(GAINS, [1.01, 1.5, 0.8, 0.7, 0.75])
    assert out["gstar"] == 0.7 and out["status"] == "no_crossing" and out["g_cross"] is None
    assert out["on_edge"] is True


def test_never_crossing_reference_shape_is_no_crossing():
    # Like the reference: b_tot stays below 1 and rises slowly with g -> the top edge.
    out = select_gstar(GAINS, [0.59, 0.592, 0.595, 0.6, 0.604])
    assert out["gstar"] == 1.3 and out["status"] == "no_crossing"


def test_interior_without_sign_change_is_no_crossing():
    out = select_gstar(GAINS, [0.7, 0.9, 0.95, 0.9, 0.8])
    assert out["gstar"] == 1.0 and out["status"] == "no_crossing" and out["g_cross"] is None


def test_crossing_elsewhere_does_not_label_an_interior_minimum():
    # The measured mislabel: g* = 0.85 with both neighbours below 1, b_tot crossing 1 only later.
    out = select_gstar([0.7, 0.8, 0.85, 0.9, 1.0, 1.1], [0.8, 0.9, 0.99, 0.9, 0.95, 1.2])
    assert out["gstar"] == 0.85 and out["status"] == "no_crossing" and out["g_cross"] is None


def test_mr_near_one_reads_m_mr_and_its_own_crossing():
    out = select_gstar(
        GAINS, [0.5, 0.6, 0.7, 0.8, 0.9], method="mr_near_one", m_mr=[0.8, 0.97, 1.02, 1.1, 1.2]
    )
    assert out["gstar"] == 1.0 and out["status"] == "crossing" and out["method"] == "mr_near_one"
    assert out["g_cross"] == pytest.approx(0.85 + 0.15 * 0.03 / 0.05)
    with pytest.raises(ConfigError, match="m_mr"):
        select_gstar(GAINS, [0.5] * 5, method="mr_near_one")


def test_excess_btot_maximises_what_the_iid_control_lacks():
    # b_tot nearest 1 is at 1.3, but the structure beyond the iid control peaks at 0.85.
    b = [0.70, 0.80, 0.85, 0.90, 0.98]
    iid = [0.60, 0.55, 0.75, 0.85, 0.95]
    out = select_gstar(GAINS, b, method="excess_btot", b_tot_iid=iid)
    assert out["gstar"] == 0.85 and out["excess_btot_at_gstar"] == pytest.approx(0.25)
    assert select_gstar(GAINS, b)["gstar"] == 1.3
    all_three = select_all(GAINS, {"b_tot": b, "b_tot_iid": iid, "m_mr": [0.5] * 5}, 1.0)
    assert {k: v["gstar"] for k, v in all_three.items()} == {
        "btot_near_one": 1.3,
        "mr_near_one": 1.0,
        "excess_btot": 0.85,
    }


def test_exact_hit_is_its_own_crossing():
    out = select_gstar(GAINS, [0.8, 1.0, 1.2, 1.3, 1.4])
    assert out["gstar"] == 0.85 and out["status"] == "crossing" and out["g_cross"] == 0.85


@pytest.mark.parametrize(
    ("gains", "b_tot", "match"),
    [
        ([1.0], [1.0], ">= 2 gains"),
        ([0.9, 1.0], [1.0], ">= 2 gains"),
        ([1.0, 0.9], [1.0, 1.1], "increasing"),
        ([0.9, 1.0], [float("nan"), 1.1], "finite"),
    ],
)
def test_bad_input(gains, b_tot, match):
    with pytest.raises(ConfigError, match=match):
        select_gstar(gains, b_tot)


def test_unknown_method_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown gstar method"):
        select_gstar([0.9, 1.0], [1.0, 1.1], method="nearest_guess")
