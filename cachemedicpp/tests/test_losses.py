import math

import pytest
import torch

from cachemedicpp.losses import (
    LayerKV,
    contraction_loss,
    contraction_ratios,
    identity_loss,
    kd_loss,
    weight_penalty,
)


def layer(clean: float, corrupted: float, repaired: float, *, parts="KV", damaged=True) -> LayerKV:
    """A layer whose tensors are constant fills of 4 entries each."""

    def fill(x: float) -> dict[str, torch.Tensor]:
        return {p: torch.full((1, 1, 2, 2), x) for p in "KV"}

    rep = {p: t for p, t in fill(repaired).items() if p in parts}
    return LayerKV(fill(clean), fill(corrupted), rep, damaged)


def test_kd_is_zero_for_equal_logits_and_matches_a_hand_example():
    z = torch.tensor([[1.0, 2.0, 3.0]])
    assert kd_loss(z, z, 2.0).item() == pytest.approx(0, abs=1e-7)
    teacher, student = torch.tensor([[0.0, 2.0]]), torch.tensor([[2.0, 0.0]])
    p = torch.softmax(teacher / 2, -1)
    q = torch.softmax(student / 2, -1)
    expected = (p * (p / q).log()).sum().item()
    assert kd_loss(teacher, student, 2.0).item() == pytest.approx(expected, rel=1e-6)
    # logits/T are [0, 1] vs [1, 0]: KL = (2σ(1) − 1)·log(σ(1)/(1 − σ(1))) = tanh(1/2)
    assert expected == pytest.approx(math.tanh(0.5), rel=1e-6)


def test_kd_averages_over_positions():
    t = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    s = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    assert kd_loss(t, s, 1.0).item() == pytest.approx(kd_loss(t[:1], s[:1], 1.0).item() / 2)


def test_rho_hand_example():
    # ‖K_rep − K‖ = ‖V_rep − V‖ = 1·2 and ‖K_corr − K‖ = ‖V_corr − V‖ = 4·2 over 4 entries each.
    rho = contraction_ratios([layer(1.0, 5.0, 2.0)], eps0=1e-8)
    assert rho.tolist() == pytest.approx([(2 + 2) / (8 + 8)])


def test_hinge_penalises_only_ratios_above_alpha():
    rho = torch.tensor([0.5, 0.8, 1.0, 1.3])
    assert contraction_loss(rho, 0.8).item() == pytest.approx(0.2**2 + 0.5**2)
    assert contraction_loss(torch.zeros(0), 0.8).item() == 0


def test_v_only_ignores_keys():
    lay = layer(1.0, 5.0, 2.0, parts="V")
    lay.corrupted["K"] = torch.full(
        (1, 1, 2, 2), 100.0
    )  # K is not repaired: its damage must not count
    assert contraction_ratios([lay], 1e-8).tolist() == pytest.approx([2 / 8])
    assert identity_loss([lay], 1e-8).item() == pytest.approx(4 / 4)


def test_undamaged_layers_are_skipped():
    rho = contraction_ratios([layer(1.0, 1.0, 1.5, damaged=False), layer(1.0, 3.0, 2.0)], 1e-8)
    assert rho.tolist() == pytest.approx([0.5])


def test_identity_loss_sums_relative_errors_over_layers():
    loss = identity_loss([layer(1.0, 1.0, 1.0), layer(2.0, 2.0, 3.0)], eps0=0.0)
    # second layer: (4·1 + 4·1) / (4·4 + 4·4)
    assert loss.item() == pytest.approx(8 / 32)


def test_gradients_flow_to_the_repaired_tensors():
    rep = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)
    lay = layer(1.0, 5.0, 0.0)
    lay.repaired = {"V": rep}
    contraction_loss(contraction_ratios([lay], 1e-8), 0.1).backward()
    assert rep.grad is not None and rep.grad.abs().sum() > 0


def test_weight_penalty():
    assert weight_penalty([torch.ones(3), torch.full((2,), 2.0)]).item() == pytest.approx(11)
