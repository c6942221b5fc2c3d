"""Gradient isolation: a TRAINING seed learns without touching the host; a BLENDING seed feeds it."""

from __future__ import annotations

import copy

import pytest
import torch

from esper.kasmina import HostCNN, MorphogeneticModel, TransformerHost
from esper.tolaria import train_epoch

from .conftest import small_task

CASES = {
    "cnn": (
        "depthwise",
        lambda: HostCNN((4, 8, 8)),
        lambda g: torch.randn(4, 3, 16, 16, generator=g),
    ),
    "transformer": (
        "lora",
        lambda: TransformerHost(
            vocab_size=50, n_embd=16, n_head=2, n_layer=2, block_size=8, dropout=0.0
        ),
        lambda g: torch.randint(0, 50, (3, 8), generator=g),
    ),
}


def _pair(topology: str, **kw) -> tuple[MorphogeneticModel, MorphogeneticModel, torch.Tensor]:
    """A bare model and an identical one with a seed germinated into its first slot."""
    blueprint, make_host, make_x = CASES[topology]
    torch.manual_seed(0)
    bare = MorphogeneticModel(make_host(), small_task(topology), **kw)
    seeded = copy.deepcopy(bare)
    seeded.apply(seeded.actions[f"GERMINATE_{blueprint.upper()}"], epoch=0)
    seeded.step_epoch(0)  # -> TRAINING
    with torch.no_grad():  # move the seed off the identity so isolation is a real claim
        for p in seeded.live_slot.seed.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return bare, seeded, make_x(torch.Generator().manual_seed(1))


def _host_grads(model: MorphogeneticModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model(x).square().mean().backward()
    return {n: p.grad.clone() for n, p in model.host.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("topology", CASES)
def test_training_seed_leaves_output_and_host_gradients_unchanged(topology):
    bare, seeded, x = _pair(topology)
    torch.testing.assert_close(seeded(x), bare(x), rtol=0, atol=0)
    want, got = _host_grads(bare, x), _host_grads(seeded, x)
    assert want.keys() == got.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0, msg=name)
    # The seed learns in its own pass (the incubator), not through the host's backward.
    assert all(p.grad is None for p in seeded.live_slot.seed.parameters())


@pytest.mark.parametrize("topology", CASES)
def test_training_step_moves_the_seed_and_leaves_the_host_as_without_it(topology):
    bare, seeded, x = _pair(topology)
    y = torch.zeros(x.shape[:1] if topology == "cnn" else x.shape, dtype=torch.long)
    before = [p.detach().clone() for p in seeded.live_slot.seed.parameters()]
    for model in (bare, seeded):
        opts = [torch.optim.SGD(model.host.parameters(), lr=0.1)]
        if model.live_slot is not None:
            opts.append(torch.optim.SGD(model.live_slot.seed.parameters(), lr=0.1))
        train_epoch(model, [(x, y)] * 2, opts)
    got = seeded.host.state_dict()
    for name, want in bare.host.state_dict().items():  # BatchNorm statistics included
        torch.testing.assert_close(got[name], want, rtol=0, atol=0, msg=name)
    after = list(seeded.live_slot.seed.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


def _blend(model: MorphogeneticModel) -> None:
    model.apply(model.actions.ADVANCE, epoch=1)
    model.step_epoch(1)  # -> alpha 0.18


@pytest.mark.parametrize("topology", CASES)
def test_blending_seed_sends_gradients_into_the_host(topology):
    bare, seeded, x = _pair(topology)
    _blend(seeded)
    want, got = _host_grads(bare, x), _host_grads(seeded, x)
    upstream = [n for n in want if n.startswith(("blocks.0", "tok_emb", "layers.0"))]
    assert upstream
    assert any(not torch.allclose(got[n], want[n]) for n in upstream)


@pytest.mark.parametrize("topology", CASES)
def test_detach_host_in_blending_leaves_the_host_only_its_own_path(topology):
    _, seeded, x = _pair(topology, detach_host_in_blending=True)
    _blend(seeded)
    slot = seeded.live_slot
    h = seeded.host.forward_through_layer(x, slot.point.after_layer_idx).detach().requires_grad_()
    slot(h).sum().backward()
    torch.testing.assert_close(h.grad, torch.full_like(h, 1 - slot.state.alpha))
