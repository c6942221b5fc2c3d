"""What Tamiyo sees of a TRAINING seed (its counterfactual contribution) and the optional gating."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esper.config import load_esper_config
from esper.kasmina.blueprints import action_enum
from esper.leyline import Gating, SeedStage, gate_mask
from esper.tolaria.trainer import validate

from .conftest import CNN_CONFIG, CNN_TEST, make_episode

ACTIONS = action_enum("cnn")


def _germinate_and_train(cfg, epochs: int = 3):
    ep, _ = make_episode(cfg)
    ep.apply(ACTIONS.GERMINATE_CONV_ENHANCE)
    for _ in range(epochs):
        ep.run_epoch()
        if ep.done:
            break
        ep.apply(ACTIONS.WAIT)
    return ep


def test_counterfactual_is_measured_while_training_and_matches_a_direct_measurement(cnn_cfg):
    ep = _germinate_and_train(cnn_cfg)
    slot = ep.model.live_slot
    assert slot.state.stage == SeedStage.TRAINING
    batch = next(ep.data.eval_batches("val"))
    with ep.model.host_only():
        without = validate(ep.model, [batch], "classification").loss
    with ep.model.seed_at_full():
        with_seed = validate(ep.model, [batch], "classification").loss
    got = ep.signals.policy.seed_counterfactual
    assert got == pytest.approx(without - with_seed, abs=1e-6)
    assert got != 0.0  # a trained seed is no longer the identity
    # The probe leaves the TRAINING seed's output exactly the host's.
    with torch.no_grad():
        assert torch.equal(ep.model(batch[0]), ep.model.host(batch[0]))


def _frozen_host_counterfactual(cfg, seed_lr: float) -> float:
    """The counterfactual of a conv_enhance seed after 3 TRAINING epochs on a frozen host."""
    ep, _ = make_episode(cfg)
    ep.run_epoch()
    ep.apply(ACTIONS.GERMINATE_CONV_ENHANCE)
    for group in ep.host_opt.param_groups:
        group["lr"] = 0.0  # only the seed learns, so its effect is all the counterfactual sees
    for group in ep.seed_opt.param_groups:
        group["lr"] = seed_lr
    for _ in range(3):
        ep.run_epoch()
        ep.apply(ACTIONS.WAIT)
    assert ep.model.live_slot.state.stage == SeedStage.TRAINING
    return ep.signals.policy.seed_counterfactual


def test_a_useful_seed_has_a_positive_counterfactual_and_a_no_op_seed_zero(cnn_cfg):
    # The seed learns from its own output through the host (closed loop), so after 3 epochs
    # blending it in fully lowers the validation loss (seeds 0-2 measured +0.007 to +0.024).
    assert _frozen_host_counterfactual(cnn_cfg, seed_lr=0.5) > 0.005
    # Control: the same seed that never learns is still the identity and is worth exactly 0.
    assert _frozen_host_counterfactual(cnn_cfg, seed_lr=0.0) == 0.0


def test_counterfactual_is_zero_without_a_training_seed(cnn_cfg):
    ep, _ = make_episode(cnn_cfg)
    signals, _ = ep.run_epoch()
    assert signals.policy.seed_counterfactual == 0.0
    assert ep.track.counterfactual is None


def test_gate_mask_blocks_early_germination_and_young_culls():
    mask = np.ones(len(ACTIONS), bool)
    gating = Gating(min_epoch=5, min_plateau=3, min_cull_age=10)
    early = gate_mask(mask, ACTIONS, gating, epoch=4, plateau_epochs=3, seed_age=None)
    assert early[ACTIONS.WAIT] and not early[ACTIONS.GERMINATE_NORM]
    no_plateau = gate_mask(mask, ACTIONS, gating, epoch=6, plateau_epochs=2, seed_age=None)
    assert not no_plateau[ACTIONS.GERMINATE_NORM]
    ready = gate_mask(mask, ACTIONS, gating, epoch=6, plateau_epochs=3, seed_age=None)
    assert ready.all()
    young = gate_mask(mask, ACTIONS, gating, epoch=6, plateau_epochs=0, seed_age=9)
    assert not young[ACTIONS.CULL] and young[ACTIONS.ADVANCE]
    assert gate_mask(mask, ACTIONS, gating, epoch=6, plateau_epochs=0, seed_age=10)[ACTIONS.CULL]
    assert gate_mask(mask, ACTIONS, Gating(), epoch=0, plateau_epochs=0, seed_age=0).all()


def test_episode_enforces_the_configured_gating():
    over = [*CNN_TEST, "gating.min_epoch=2", "gating.min_cull_age=3"]
    ep, _ = make_episode(load_esper_config(CNN_CONFIG, over))
    assert not ep.action_mask()[ACTIONS.GERMINATE_NORM]
    with pytest.raises(ValueError, match="masked"):
        ep.apply(ACTIONS.GERMINATE_NORM)
    for _ in range(2):
        ep.apply(ACTIONS.WAIT)
        ep.run_epoch()
    ep.apply(ACTIONS.GERMINATE_NORM)
    ep.run_epoch()
    assert not ep.action_mask()[ACTIONS.CULL]  # the seed is 1 epoch old
    ep.apply(ACTIONS.WAIT)
    ep.run_epoch()
    ep.apply(ACTIONS.WAIT)
    ep.run_epoch()
    assert ep.action_mask()[ACTIONS.CULL]  # 3 epochs old
