"""Tolaria: validation metrics per task type, the governor, episode state and rollbacks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from esper.tolaria import Episode, Governor, train_epoch, validate
from labkit.checkpoint import rng_state, set_rng_state

from .conftest import make_episode


class _Fixed(nn.Module):
    """Returns the same logits for every input."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*x.shape, -1)


def test_validate_reports_loss_accuracy_and_lm_perplexity():
    model = _Fixed(torch.tensor([2.0, 0.0, 0.0]))
    batches = [(torch.zeros(4, 5), torch.tensor([[0, 0, 1, 2, 0]] * 4))]
    lm = validate(model, batches, "lm")
    want = -torch.log_softmax(torch.tensor([2.0, 0.0, 0.0]), 0)
    assert lm.loss == pytest.approx(float(3 * want[0] + want[1] + want[2]) / 5)
    assert lm.accuracy == pytest.approx(3 / 5)
    assert lm.perplexity == pytest.approx(math.exp(lm.loss))
    cls = validate(model, [(torch.zeros(4), torch.tensor([0, 1, 0, 0]))], "classification")
    assert cls.perplexity is None and cls.accuracy == pytest.approx(0.75)
    diverged = validate(
        _Fixed(torch.tensor([60.0, 0.0])), [(torch.zeros(2), torch.tensor([1, 1]))], "lm"
    )
    assert diverged.perplexity == math.inf


def test_train_epoch_steps_every_optimiser():
    a, b = nn.Linear(3, 3), nn.Linear(3, 2)
    model = nn.Sequential(a, b)
    opts = [torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)]
    before = [p.detach().clone() for p in model.parameters()]
    result = train_epoch(model, [(torch.randn(8, 3), torch.randint(0, 2, (8,)))] * 3, opts)
    assert result.steps == 3
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    with pytest.raises(ValueError, match="no batches"):
        train_epoch(model, [], opts)


def test_governor_needs_a_sustained_spike_or_a_non_finite_loss():
    calm = [2.0, 1.9, 1.8, 1.85, 1.7]
    g = Governor(threshold=12.0)
    assert not any(g.check(x) for x in calm)
    assert Governor(threshold=12.0, history=list(calm)).limit() == 12.0
    assert not g.check(13.0)  # first epoch above all three limits
    assert g.check(14.0)  # second running: roll back
    assert g.history == calm and g.over == 0
    assert not g.check(13.0) and not g.check(1.9) and not g.check(13.0)  # not running
    assert g.check(math.nan)
    h = Governor(threshold=12.0)
    h.load_state_dict(g.state_dict())
    assert h == g


def test_episode_state_round_trip_continues_identically(cnn_cfg):
    ep, _ = make_episode(cnn_cfg)
    ep.apply(ep.model.actions.GERMINATE_DEPTHWISE)
    ep.run_epoch()
    ep.apply(ep.model.actions.ADVANCE)
    ep.run_epoch()
    state, rng = ep.state_dict(), rng_state()
    tail = [ep.run_epoch()[0] for _ in range(2)]
    resumed = Episode(ep.cfg, ep.data, ep.task, seed=0)
    resumed.load_state_dict(state)
    set_rng_state(rng)
    assert [resumed.run_epoch()[0] for _ in range(2)] == tail
    assert tail[-1].policy.seed_contribution != 0.0  # measured while blended


def test_governor_rolls_back_and_culls_the_live_seed(cnn_cfg, monkeypatch):
    ep, _ = make_episode(cnn_cfg)
    ep.run_epoch()
    ep.apply(ep.model.actions.GERMINATE_NORM)
    before = {k: v.clone() for k, v in ep.model.host.state_dict().items()}
    clean = ep.data.train_batches
    monkeypatch.setattr(
        ep.data, "train_batches", lambda g: ((x * math.nan, y) for x, y in clean(g))
    )
    signals, events = ep.run_epoch()
    kinds = [e.kind for e in events]
    assert "governor_rollback" in kinds and kinds[-1] == "culled"
    assert signals.governor_rollback and math.isfinite(signals.policy.val_loss)
    assert ep.model.live_slot is None and ep.seed_opt is None
    for k, v in ep.model.host.state_dict().items():
        assert torch.equal(v, before[k]), k
