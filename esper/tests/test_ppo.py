"""Masked PPO pieces: masking, scaled entropy, GAE, KL early stop, the normaliser, the policy file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import OBS_DIM
from esper.simic.ppo import Batch, PPOConfig, gae, ppo_update
from esper.tamiyo.network import ActorCritic, log_probs, masked_logits, normalised_entropy, sample
from esper.tamiyo.normaliser import EmaNormaliser
from esper.tamiyo.ppo_policy import PPOPolicy, load_ppo_policy, policy_payload
from labkit.checkpoint import save_checkpoint
from labkit.errors import SchemaError

N_ACTIONS = 7


def test_masked_actions_are_never_sampled():
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(10_000, N_ACTIONS, generator=gen) < 0.4
    masks[:, 0] = True  # WAIT is always legal
    # Logits that favour the masked actions as hard as possible.
    logits = torch.where(masks, torch.full_like(masks, -30.0, dtype=torch.float32), 30.0)
    actions = sample(masked_logits(logits, masks), gen)
    assert masks[torch.arange(10_000), actions].all()
    assert (log_probs(masked_logits(logits, masks)).exp()[~masks] == 0).all()


@settings(max_examples=200, deadline=None)
@given(
    logits=st.lists(st.floats(-50, 50), min_size=N_ACTIONS, max_size=N_ACTIONS),
    mask=st.lists(st.booleans(), min_size=N_ACTIONS, max_size=N_ACTIONS),
)
def test_entropy_is_scaled_to_unit_range(logits, mask):
    mask[0] = True
    m = torch.tensor([mask])
    h = normalised_entropy(masked_logits(torch.tensor([logits]), m), m).item()
    assert -1e-6 <= h <= 1 + 1e-6
    uniform = normalised_entropy(masked_logits(torch.zeros(1, N_ACTIONS), m), m).item()
    assert uniform == pytest.approx(1.0 if sum(mask) > 1 else 0.0, abs=1e-6)


def test_gae_matches_a_hand_calculation():
    g, lam = 0.9, 0.8
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [1.0], [1.5]])
    dones = np.array(
        [[0.0], [1.0], [0.0]]
    )  # the episode ends after step 1; step 2 starts a new one
    last = np.array([2.0])
    d2 = 3.0 + g * 2.0 - 1.5
    d1 = 2.0 - 1.0  # terminal: no bootstrap
    d0 = 1.0 + g * 1.0 - 0.5
    a2, a1 = d2, d1
    a0 = d0 + g * lam * a1
    adv, ret = gae(rewards, values, dones, last, g, lam)
    assert adv[:, 0] == pytest.approx([a0, a1, a2])
    assert ret[:, 0] == pytest.approx([a0 + 0.5, a1 + 1.0, a2 + 1.5])


def _batch(n: int = 64, seed: int = 0) -> tuple[ActorCritic, Batch]:
    torch.manual_seed(seed)
    net = ActorCritic(OBS_DIM, N_ACTIONS, 32, 16)
    obs = torch.randn(n, OBS_DIM)
    masks = torch.ones(n, N_ACTIONS, dtype=torch.bool)
    with torch.no_grad():
        logits, values = net(obs, masks)
    actions = torch.randint(0, N_ACTIONS, (n,))
    logp = log_probs(logits).gather(1, actions[:, None]).squeeze(1)
    adv = torch.randn(n) * 10
    return net, Batch(obs, masks, actions, logp, values, adv, values + adv)


def test_kl_early_stop():
    net, batch = _batch()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    pc = PPOConfig(update_epochs=10, minibatch_size=16, target_kl=1e-4)
    stats = ppo_update(net, opt, batch, pc, 0.0, torch.Generator().manual_seed(0))
    assert stats["kl_stopped"] and stats["epochs_run"] < 10
    net, batch = _batch()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    free = PPOConfig(update_epochs=10, minibatch_size=16, target_kl=None)
    stats = ppo_update(net, opt, batch, free, 0.0, torch.Generator().manual_seed(0))
    assert not stats["kl_stopped"] and stats["epochs_run"] == 10


def test_ppo_update_raises_the_probability_of_advantaged_actions():
    net, batch = _batch(seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ppo_update(net, opt, batch, PPOConfig(target_kl=None), 0.0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, _ = net(batch.obs, batch.masks)
    new = log_probs(logits).gather(1, batch.actions[:, None]).squeeze(1)
    gain = ((new - batch.logp) * batch.advantages.sign()).mean()
    assert gain > 0


def test_entropy_anneals_linearly():
    pc = PPOConfig(episodes=40, num_envs=4, ent_coef=0.1, ent_coef_final=0.01)
    assert pc.updates == 10
    assert pc.ent_coef_at(0) == pytest.approx(0.1)
    assert pc.ent_coef_at(9) == pytest.approx(0.01)


def test_normaliser_tracks_an_ema_and_round_trips():
    norm = EmaNormaliser(2, decay=0.5)
    norm.update(np.array([[0.0, 1.0], [2.0, 1.0]]))
    assert norm.mean.tolist() == [1.0, 1.0]
    norm.update(np.array([[3.0, 1.0], [3.0, 1.0]]))
    assert norm.mean.tolist() == [2.0, 1.0]
    z = norm(np.array([[2.0, 1.0]]))
    assert z.dtype == np.float32 and np.allclose(z, 0.0)
    other = EmaNormaliser(2)
    other.load_state_dict(norm.state_dict())
    assert np.array_equal(other(np.array([[5.0, 0.0]])), norm(np.array([[5.0, 0.0]])))


def test_policy_file_is_deterministic_and_respects_the_mask(tmp_path):
    torch.manual_seed(0)
    net = ActorCritic(OBS_DIM, N_ACTIONS, 32, 16)
    norm = EmaNormaliser(OBS_DIM)
    norm.update(np.random.default_rng(0).normal(size=(8, OBS_DIM)))
    names = ["WAIT", *(f"GERMINATE_{i}" for i in range(4)), "ADVANCE", "CULL"]
    path = save_checkpoint(
        tmp_path / "policy.pt", policy_payload(net, norm, topology="cnn", actions=names, task="t")
    )
    policy = load_ppo_policy(path)
    rng = np.random.default_rng(1)
    for _ in range(50):
        obs = rng.normal(size=OBS_DIM).astype(np.float32)
        mask = rng.random(N_ACTIONS) < 0.5
        mask[0] = True
        a = policy.act(obs, mask, None)
        assert mask[a] and a == policy.act(obs, mask, None)
        with torch.no_grad():
            logits, _ = net(torch.from_numpy(norm(obs)[None]), torch.from_numpy(mask)[None])
        assert a == int(logits.argmax())
    with pytest.raises(ValueError, match="actions"):
        policy.act(obs, mask[:5], None)
    with pytest.raises(SchemaError):
        PPOPolicy({"format": "other"})


def test_finfo_min_logits_stay_finite():
    m = torch.tensor([[True, False, False]])
    lp = log_probs(masked_logits(torch.tensor([[0.0, 1e3, -1e3]]), m))
    assert lp[0, 0].item() == 0.0
    assert not math.isnan(normalised_entropy(masked_logits(torch.zeros(1, 3), m), m).item())
