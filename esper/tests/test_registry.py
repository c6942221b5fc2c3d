"""Blueprint registry and action enums: registration, order, errors, real sizes, identity, causality."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esper.kasmina import BlueprintRegistry, HostCNN, MorphogeneticModel, action_enum
from esper.leyline import blueprint_of, build_action_enum

from .conftest import small_task

CNN = ["norm", "attention", "depthwise", "conv_enhance"]
LM = ["norm", "lora", "attention", "mlp"]
# Real parameter counts at the design's widths (design §4).
REAL_COUNTS = {
    ("cnn", 64): {"norm": 129, "attention": 2_129, "depthwise": 4_800, "conv_enhance": 73_984},
    ("transformer", 384): {"norm": 769, "lora": 6_144, "attention": 591_360, "mlp": 1_181_568},
}


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test (tests add blueprints)."""
    monkeypatch.setattr(BlueprintRegistry, "_blueprints", dict(BlueprintRegistry._blueprints))
    return BlueprintRegistry


def _conv_light(dim: int) -> nn.Module:
    conv = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
    nn.init.zeros_(conv.weight)
    return _Residual(nn.Sequential(conv, nn.GroupNorm(8, dim)))


class _Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def test_builtin_blueprints_in_estimate_order():
    assert [s.name for s in BlueprintRegistry.list_for_topology("cnn")] == CNN
    assert [s.name for s in BlueprintRegistry.list_for_topology("transformer")] == LM


def test_action_enum_per_topology():
    for topology, names in (("cnn", CNN), ("transformer", LM)):
        actions = action_enum(topology)
        assert len(actions) == 7
        assert actions.WAIT == 0 and actions.ADVANCE == 5 and actions.CULL == 6
        assert [blueprint_of(a) for a in actions][1:5] == names


def test_a_new_blueprint_is_one_decorated_factory_and_shifts_advance_and_cull(registry):
    registry.register("conv_light", "cnn", 37_000, "one zeroed 3x3 conv")(_conv_light)
    actions = action_enum("cnn")
    assert actions.GERMINATE_CONV_LIGHT == 4
    assert actions.GERMINATE_CONV_ENHANCE == 5
    assert (actions.ADVANCE, actions.CULL) == (6, 7)
    assert registry.get("cnn", "conv_light").actual_param_count(64) == 36_992  # ~37k
    model = MorphogeneticModel(HostCNN((8, 16, 32)), small_task())
    assert model.action_mask()[actions.GERMINATE_CONV_LIGHT]
    model.apply(actions.GERMINATE_CONV_LIGHT, epoch=0)
    assert model.live_slot.state.blueprint == "conv_light"


def test_duplicate_registration_fails(registry):
    with pytest.raises(ValueError, match="already registered"):
        registry.register("norm", "cnn", 1)(_conv_light)


def test_bad_names_fail(registry):
    with pytest.raises(ValueError, match="lowercase"):
        registry.register("Conv-Light", "cnn", 1)


def test_cross_topology_germination_names_the_valid_blueprints():
    model = MorphogeneticModel(HostCNN((8, 16, 32)), small_task())
    with pytest.raises(ValueError, match="valid: norm, attention, depthwise, conv_enhance"):
        model.free_slot.germinate("lora", epoch=0)


def test_a_non_identity_blueprint_is_refused(registry):
    registry.register("scale", "cnn", 1)(lambda dim: _Residual(nn.Conv2d(dim, dim, 1)))
    model = MorphogeneticModel(HostCNN((8, 16, 32)), small_task())
    with pytest.raises(ValueError, match="not the identity"):
        model.free_slot.germinate("scale", epoch=0)


@pytest.mark.parametrize(("key", "counts"), REAL_COUNTS.items())
def test_real_counts(key, counts):
    topology, dim = key
    for name, n in counts.items():
        assert BlueprintRegistry.get(topology, name).actual_param_count(dim) == n


@pytest.mark.parametrize(
    ("topology", "name", "shape"),
    [("cnn", n, (3, 16, 5, 5)) for n in CNN] + [("transformer", n, (2, 6, 16)) for n in LM],
)
def test_fresh_seed_is_identity_and_keeps_shape(topology, name, shape):
    torch.manual_seed(0)
    seed = BlueprintRegistry.get(topology, name).factory(
        shape[1] if topology == "cnn" else shape[-1]
    )
    x = torch.randn(shape)
    y = seed(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, rtol=0, atol=0)


@pytest.mark.parametrize("name", LM)
def test_transformer_blueprints_are_causal_once_trained(name):
    torch.manual_seed(0)
    seed = BlueprintRegistry.get("transformer", name).factory(16)
    with torch.no_grad():
        for p in seed.parameters():  # leave the identity, so the test can fail
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 8, 16)
    y = x.clone()
    y[:, 5:] += torch.randn(2, 3, 16)
    torch.testing.assert_close(seed(x)[:, :5], seed(y)[:, :5], rtol=0, atol=1e-6)
    assert not torch.allclose(seed(x)[:, 5:], seed(y)[:, 5:])


def test_enum_is_rebuilt_when_the_names_change():
    a = build_action_enum("cnn", ("norm",))
    assert build_action_enum("cnn", ("norm",)) is a
    b = build_action_enum("cnn", ("norm", "extra"))
    assert (a.ADVANCE, a.CULL, b.ADVANCE, b.CULL) == (2, 3, 3, 4)
