"""Leyline contracts: observation schema, no accuracy in policy inputs, TaskConfig, signals."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from esper.leyline import (
    FEATURE_NAMES,
    OBS_DIM,
    OBS_SCHEMA,
    PolicySignals,
    SeedStage,
    TrainingSignals,
    build_observation,
)
from esper.leyline.schema import CLIP

from .conftest import small_task


def signals(**kw) -> PolicySignals:
    base = {
        "epoch": 3,
        "global_step": 12,
        "train_loss": 1.2,
        "val_loss": 1.3,
        "loss_history": (1.4, 1.5, 1.6, 1.7, 1.8),
        "best_val_loss": 1.3,
        "loss_delta": -0.1,
        "seed_counterfactual": 0.05,
        "seed_contribution": 0.02,
        "plateau_epochs": 2,
        "has_active_seed": True,
        "seed_stage": int(SeedStage.BLENDING),
        "seed_epochs_in_stage": 2,
        "seed_alpha": 0.38,
        "available_slots": 0,
        "embargo_left": 0,
        "n_slots": 1,
        "seed_blueprint": "norm",
    }
    return PolicySignals(**(base | kw))


def test_obs_dim_is_the_schema_length():
    assert OBS_DIM == len(OBS_SCHEMA) == len(set(FEATURE_NAMES))
    obs = build_observation(signals(), small_task())
    assert obs.shape == (OBS_DIM,) and obs.dtype == np.float32 and np.isfinite(obs).all()


def test_no_accuracy_or_perplexity_reaches_the_policy():
    forbidden = ("acc", "perplex", "ppl")
    policy_fields = [f.name for f in dataclasses.fields(PolicySignals)]
    for name in (*FEATURE_NAMES, *policy_fields):
        assert not any(word in name for word in forbidden), name
    telemetry = [f.name for f in dataclasses.fields(TrainingSignals)]
    assert "val_accuracy" in telemetry and "val_perplexity" in telemetry


def test_baseline_is_ln_of_classes_or_vocabulary():
    assert small_task(n_outputs=10).baseline_loss == pytest.approx(math.log(10))
    lm = small_task("transformer", n_outputs=50257, target_loss=3.5)
    assert lm.baseline_loss == pytest.approx(10.825, abs=1e-3)
    assert lm.achievable_range == pytest.approx(10.825 - 3.5, abs=1e-3)


def test_loss_features_are_scaled_by_the_achievable_range():
    task = small_task()
    i = FEATURE_NAMES.index("val_loss")
    assert build_observation(signals(val_loss=task.target_loss), task)[i] == pytest.approx(0.0)
    assert build_observation(signals(val_loss=task.baseline_loss), task)[i] == pytest.approx(1.0)
    for bad in (math.inf, math.nan, 1e9):
        assert build_observation(signals(val_loss=bad), task)[i] == CLIP


def test_deltas_are_scaled_by_sigma_and_clipped():
    task = small_task(loss_delta_std=0.05)
    i = FEATURE_NAMES.index("loss_delta")
    assert build_observation(signals(loss_delta=-0.1), task)[i] == pytest.approx(-2.0)
    assert build_observation(signals(loss_delta=-10.0), task)[i] == -CLIP


def test_history_and_seed_features_land_in_schema_order():
    task = small_task()
    obs = build_observation(signals(), task)
    names = dict(zip(FEATURE_NAMES, obs, strict=True))
    assert names["loss_hist_4"] == pytest.approx((1.8 - 0.3) / task.achievable_range)
    assert names["seed_stage"] == pytest.approx(0.4)
    assert names["seed_alpha"] == pytest.approx(0.38)
    assert names["plateau_epochs"] == pytest.approx(0.2)
    assert names["epoch"] == pytest.approx(3 / 12)
    assert names["global_step"] == pytest.approx(12 / 48)


def test_task_config_refuses_inconsistent_values():
    with pytest.raises(ValueError, match="valid pairs"):
        small_task(task_type="lm")
    with pytest.raises(ValueError, match="target_loss"):
        small_task(target_loss=5.0)
    with pytest.raises(ValueError, match="loss_delta_std"):
        small_task(loss_delta_std=0.0)


def test_dwell_and_blend_schedule():
    assert small_task(max_epochs=25).dwell_epochs == 2
    assert small_task(max_epochs=5).dwell_epochs == 1
    task = small_task()
    assert [round(task.blend_alpha(k), 2) for k in range(1, 6)] == [0.18, 0.38, 0.62, 0.82, 1.0]


def test_training_signals_round_trip():
    ts = TrainingSignals(signals(), 0.5, 0.4, None, 100, 10, 1, False)
    assert TrainingSignals.from_record(ts.to_record()) == ts
