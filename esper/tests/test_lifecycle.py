"""Seed lifecycle: the 11x11 transition table, masks per stage, alpha schedule, embargo, fossils."""

from __future__ import annotations

import itertools

import pytest
import torch

from esper.kasmina import HostCNN, MorphogeneticModel, SeedState
from esper.leyline import (
    IllegalTransitionError,
    SeedStage,
    action_mask,
    check_transition,
    is_legal,
)

from .conftest import small_task

S = SeedStage
LEGAL = {
    (S.DORMANT, S.GERMINATED),
    (S.GERMINATED, S.TRAINING),
    (S.TRAINING, S.BLENDING),
    (S.BLENDING, S.SHADOWING),
    (S.SHADOWING, S.PROBATIONARY),
    (S.PROBATIONARY, S.FOSSILIZED),
    *(
        (live, S.CULLED)
        for live in (S.GERMINATED, S.TRAINING, S.BLENDING, S.SHADOWING, S.PROBATIONARY)
    ),
    (S.CULLED, S.EMBARGOED),
    (S.EMBARGOED, S.RESETTING),
    (S.RESETTING, S.DORMANT),
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(SeedStage, SeedStage)))
def test_every_transition(source, target):
    assert is_legal(source, target) == ((source, target) in LEGAL)
    if (source, target) in LEGAL:
        check_transition(source, target)
    else:
        with pytest.raises(IllegalTransitionError, match=f"{source.name} -> {target.name}"):
            check_transition(source, target)


def _model(**task_kw) -> MorphogeneticModel:
    torch.manual_seed(0)
    return MorphogeneticModel(HostCNN((4, 8, 8)), small_task(**task_kw))


def _legal(model: MorphogeneticModel) -> set[str]:
    return {a.name for a in model.actions if model.action_mask()[a]}


GERMINATE = {
    "GERMINATE_NORM",
    "GERMINATE_ATTENTION",
    "GERMINATE_DEPTHWISE",
    "GERMINATE_CONV_ENHANCE",
}


def _stage(model: MorphogeneticModel) -> SeedStage:
    return model.slots["block2_post"].state.stage


def test_full_life_masks_alpha_and_fossilisation():
    model = _model()  # max_epochs 12 -> dwell d = 1
    a = model.actions
    assert _legal(model) == {"WAIT", *GERMINATE}
    events = model.apply(a.GERMINATE_DEPTHWISE, epoch=0)
    assert [e.kind for e in events] == ["germinated"] and _stage(model) == S.GERMINATED
    assert _legal(model) == {"WAIT", "CULL"}
    model.step_epoch(0)  # then epoch 0 trains in TRAINING; the next decision has served d = 1
    assert _stage(model) == S.TRAINING
    assert _legal(model) == {"WAIT", "ADVANCE", "CULL"}
    model.apply(a.ADVANCE, epoch=1)
    alphas = []
    for epoch in range(1, 6):
        model.step_epoch(epoch)
        alphas.append(model.slots["block2_post"].state.alpha)
        if _stage(model) == S.BLENDING:
            assert _legal(model) == {"WAIT", "CULL"}
    assert alphas == pytest.approx([0.182, 0.378, 0.622, 0.818, 1.0], abs=1e-3)
    assert _stage(model) == S.SHADOWING and _legal(model) == {"WAIT", "CULL"}
    model.step_epoch(6)
    assert _stage(model) == S.PROBATIONARY
    assert _legal(model) == {"WAIT", "ADVANCE", "CULL"}
    before = model.host_params()
    events = model.apply(a.ADVANCE, epoch=8, contribution=0.1)
    assert [e.kind for e in events] == ["fossilized"] and events[0].contribution == 0.1
    assert model.host_params() == before + 8 * 9 + 8 * 8 + 2 * 8  # dw, pw, GroupNorm at dim 8
    assert model.fossils == [("block2_post", "depthwise")]
    assert _stage(model) == S.DORMANT and _legal(model) == {"WAIT", *GERMINATE}


def test_dwell_grows_with_max_epochs():
    model = _model(max_epochs=40)  # d = 4
    model.apply(model.actions.GERMINATE_NORM, epoch=0)
    for epoch in range(3):
        model.step_epoch(epoch)
        assert not model.action_mask()[model.actions.ADVANCE]
    model.step_epoch(3)  # four TRAINING epochs once this one has trained
    assert model.action_mask()[model.actions.ADVANCE]


def test_cull_then_embargo_blocks_exactly_embargo_epochs_decisions():
    model = _model(embargo_epochs=3)
    a = model.actions
    model.apply(a.GERMINATE_NORM, epoch=0)
    model.step_epoch(0)
    events = model.apply(a.CULL, epoch=1)
    assert [e.kind for e in events] == ["culled"] and model.live_slot is None
    blocked = 0
    for epoch in range(1, 10):
        model.step_epoch(epoch)
        if model.action_mask()[a.GERMINATE_NORM]:
            break
        assert _stage(model) == S.EMBARGOED and model.embargo_left > 0
        assert _legal(model) == {"WAIT"}
        blocked += 1
    assert blocked == 3 and _stage(model) == S.DORMANT


def test_masked_actions_raise():
    model = _model()
    with pytest.raises(ValueError, match="masked"):
        model.apply(model.actions.ADVANCE, epoch=0)
    with pytest.raises(ValueError, match="masked"):
        model.apply(model.actions.CULL, epoch=0)
    model.apply(model.actions.GERMINATE_NORM, epoch=0)
    with pytest.raises(ValueError, match="masked"):
        model.apply(model.actions.GERMINATE_ATTENTION, epoch=0)


def test_fossilized_is_uncullable():
    state = SeedState(stage=S.FOSSILIZED)
    with pytest.raises(IllegalTransitionError):
        check_transition(state.stage, S.CULLED)
    slot = _model().slots["block2_post"]
    slot.state = state
    with pytest.raises(ValueError, match="live seed"):
        slot.cull(epoch=0, contribution=None)


def test_mask_function_per_stage():
    actions = _model().actions
    for stage in SeedStage:
        mask = action_mask(
            actions, live_stage=stage, epochs_in_stage=5, dwell_epochs=1, slot_free=False
        )
        live = stage in {S.GERMINATED, S.TRAINING, S.BLENDING, S.SHADOWING, S.PROBATIONARY}
        assert mask[actions.WAIT]
        assert mask[actions.CULL] == live
        assert mask[actions.ADVANCE] == (stage in {S.TRAINING, S.PROBATIONARY})
        assert not mask[actions.GERMINATE_NORM]


def test_at_most_one_live_seed_across_slots():
    torch.manual_seed(0)
    from esper.kasmina import TransformerHost

    host = TransformerHost(vocab_size=30, n_embd=8, n_head=2, n_layer=2, block_size=8)
    model = MorphogeneticModel(
        host, small_task("transformer"), ["layer_0_post_block", "layer_1_post_block"]
    )
    assert model.available_slots == 2
    model.apply(model.actions.GERMINATE_LORA, epoch=0)
    assert model.live_slot.point_id == "layer_0_post_block" and model.available_slots == 1
    assert not model.action_mask()[model.actions.GERMINATE_NORM]


def test_state_round_trips_through_a_dict():
    state = SeedState(
        stage=S.BLENDING, epochs_in_stage=2, blend_step=2, alpha=0.38, blueprint="norm"
    )
    assert SeedState.from_dict(state.to_dict()) == state
