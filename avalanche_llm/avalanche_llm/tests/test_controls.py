"""The controls rule: a criterion the rate-matched iid control meets is never evidence, structure
the controls cannot explain is; and the synthetic rasters behave as planted."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_llm import canon
from avalanche_llm.analysis.controls import IID, Panel, quasi_critical, verdict
from avalanche_llm.analysis.summarize import row_nulls
from avalanche_llm.config import resolve_config
from avalanche_llm.io.artifacts import RunArtifacts
from avalanche_llm.metrics.branching_mr import mr_branching, raster_activity
from avalanche_llm.raster.synthetic import branching_raster, iid_like
from avalanche_llm.tests.local_cli import LOCAL, local_args, run

ABOVE = {"perm": (0.1, 0.3), "shift": (0.2, 0.4), IID: (0.05, 0.2)}


@pytest.fixture(scope="module")
def pipeline() -> dict:
    """The local profile's pipeline section with light replicate counts."""
    sets = (
        "pipeline.bootstrap_reps=50",
        "pipeline.mr_bootstrap_reps=20",
        "pipeline.tail_gof_reps=10",
    )
    return resolve_config(LOCAL, overrides=sets).data["pipeline"]


def test_a_criterion_the_iid_control_meets_is_never_evidence():
    # Even with every excess CI above 0, an iid-met criterion is reported as uninformative.
    assert verdict(True, True, ABOVE) == "uninformative"
    assert verdict(True, False, ABOVE) == "evidence"
    assert verdict(True, False, {**ABOVE, "shift": (-0.1, 0.4)}) == "not_above_controls"
    assert verdict(True, False, {**ABOVE, "perm": (float("nan"), 0.4)}) == "not_above_controls"
    assert verdict(False, False, ABOVE) == "not_met"
    statuses = {"b_tot": "uninformative", "chi": "uninformative", "m_mr": "evidence"}
    assert not quasi_critical(statuses, 2)
    assert quasi_critical({**statuses, "chi": "evidence"}, 2)


def test_b_tot_near_one_on_iid_noise_is_uninformative(pipeline):
    # iid Poisson at 0.76 events per site on 28 layers has b_tot ~ 1: rate alone, not structure.
    A = np.random.default_rng(0).poisson(0.76, size=(16, 28, 256)).astype(np.uint16)
    nulls = row_nulls(A, "RUN_test", 0, np.arange(16), 1337)
    panel = Panel(A, nulls, run_id="RUN_test", cond=0, pipeline=pipeline, fits=False)
    side, verdicts = panel.rows()
    status = {v["signature"]: v["status"] for v in verdicts}
    real = next(r for r in side if r["signature"] == "b_tot" and r["source"] == "real")
    assert abs(real["value"] - 1.0) <= pipeline["btot_near_one_tol"] and real["met"]
    assert status["b_tot"] == "uninformative"
    assert "evidence" not in status.values()


def test_a_branching_process_beats_its_iid_control(pipeline):
    # At a low rate, chance adjacency is rare: the cascades' time pairs stand out from iid.
    A = branching_raster(0.9, (64, 5, 64), 0.38, seed=1)
    controls = {IID: iid_like(A, seed=2)}
    panel = Panel(A, controls, run_id="RUN_test", cond=1, pipeline=pipeline, fits=False)
    side, _ = panel.rows()
    b = next(r for r in side if r["signature"] == "b_tot" and r["source"] == IID)
    assert b["excess_lo"] > 0
    chi = next(r for r in side if r["signature"] == "chi" and r["source"] == IID)
    assert chi["excess_lo"] > 0


def test_iid_control_keeps_each_layer_rate():
    A = np.zeros((40, 3, 200), dtype=np.uint16)
    A[:, 1] = 2
    c = iid_like(A, seed=5)
    assert c.shape == A.shape and c[:, 0].sum() == 0 and c[:, 2].sum() == 0
    assert c[:, 1].mean() == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("m", [0.8, 1.0])
def test_branching_raster_has_its_planted_m(m):
    A = branching_raster(m, (256, 5, 64), 1.52, seed=3)
    assert abs(mr_branching(raster_activity(A)) - m) <= 0.05


def test_memoryless_activity_has_m_mr_zero():
    # The offset model used to return m ~ 1 here; no detectable r_1 now means m_MR = 0.
    a = np.random.default_rng(4).poisson(4.0, size=(16, 64)).astype(float)
    assert mr_branching(a) == 0.0


def test_controls_command_recovers_m_and_never_calls_iid_critical(tmp_path, zoo_test_model):
    models = {"INSTRUCT": zoo_test_model("tiny-llama"), "BASE": zoo_test_model("tiny-gpt2")}
    light = ("pipeline.mr_bootstrap_reps=20", "pipeline.tail_gof_reps=10")
    args = [*local_args(models, *light), "--out_root", str(tmp_path)]
    assert run("controls", *args) == 0
    (path,) = tmp_path.glob("RUN_S05CTL_*")
    rows = RunArtifacts(path).read_json(canon.output("CONTROLS_JSON"))["rows"]
    iid = [r for r in rows if r["control"] == "iid"]
    planted = [r for r in rows if r["control"] == "branching"]
    assert len(iid) == 2 and not any(r["quasi_critical"] for r in iid)
    assert all(r["m_true"] is None for r in iid)
    assert sorted(r["m_true"] for r in planted) == [0.8, 0.9, 1.0]
    for r in planted:
        assert abs(r["m_mr"] - r["m_true"]) <= 0.05
        assert r["m_mr_lo"] <= r["m_mr"] <= r["m_mr_hi"]
    assert {"control", "m_true", "m_mr", "m_mr_lo", "m_mr_hi", "quasi_critical"} <= set(rows[0])
