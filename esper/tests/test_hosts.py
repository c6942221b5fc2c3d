"""Hosts: protocol conformance, split forwards, dims, tied weights, causality, grafting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esper.kasmina import HostCNN, HostProtocol, InjectionPoint, TransformerHost


def _cnn() -> HostCNN:
    torch.manual_seed(0)
    return HostCNN((4, 6, 8)).eval()


def _lm() -> TransformerHost:
    torch.manual_seed(0)
    return TransformerHost(vocab_size=50, n_embd=16, n_head=2, n_layer=3, block_size=12).eval()


def _input(host: nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if isinstance(host, HostCNN):
        return torch.randn(3, 3, 16, 16, generator=g)
    return torch.randint(0, 50, (2, 12), generator=g)


@pytest.mark.parametrize("make", [_cnn, _lm])
def test_hosts_implement_the_protocol(make):
    assert isinstance(make(), HostProtocol)


def test_a_module_without_the_methods_is_not_a_host():
    assert not isinstance(nn.Linear(2, 2), HostProtocol)


@pytest.mark.parametrize("make", [_cnn, _lm])
def test_split_forward_equals_forward_at_every_point(make):
    host = make()
    x = _input(host)
    full = host(x)
    for point in host.injection_points.values():
        k = point.after_layer_idx
        h = host.forward_through_layer(x, k)
        torch.testing.assert_close(host.forward_from_layer(h, k + 1), full, rtol=0, atol=1e-6)


@pytest.mark.parametrize("make", [_cnn, _lm])
def test_injection_point_dims_match_the_hidden_states(make):
    host = make()
    for point in host.injection_points.values():
        h = host.forward_through_layer(_input(host), point.after_layer_idx)
        channel_dim = 1 if isinstance(host, HostCNN) else -1
        assert h.shape[channel_dim] == point.dim


def test_points_are_named_as_designed():
    assert _cnn().injection_points == {"block2_post": InjectionPoint(1, "post_block", 6)}
    assert list(_lm().injection_points) == [f"layer_{i}_post_block" for i in range(3)]


def test_injection_point_rejects_unknown_positions():
    with pytest.raises(ValueError, match="position"):
        InjectionPoint(0, "mid_block", 8)


def test_head_is_tied_to_the_token_embedding():
    host = _lm()
    assert host.head.weight is host.tok_emb.weight
    assert host.head.weight.data_ptr() == host.tok_emb.weight.data_ptr()


def test_transformer_host_is_causal():
    host = _lm()
    x = _input(host)
    y = x.clone()
    y[:, 7:] = (y[:, 7:] + 1) % 50
    torch.testing.assert_close(host(x)[:, :7], host(y)[:, :7], rtol=0, atol=1e-6)
    assert not torch.allclose(host(x)[:, 7:], host(y)[:, 7:])


@pytest.mark.parametrize("make", [_cnn, _lm])
def test_grafting_an_identity_is_a_no_op(make):
    host = make()
    x = _input(host)
    before = host(x)
    for point_id in host.injection_points:
        host.graft(point_id, nn.Identity())
    torch.testing.assert_close(host(x), before, rtol=0, atol=0)


def test_grafted_module_runs_in_the_split_forward():
    host = _cnn()
    x = _input(host)
    host.graft("block2_post", _Scale(2.0))
    h = host.forward_through_layer(x, 1)
    torch.testing.assert_close(host.forward_from_layer(h, 2), host(x))
    plain = HostCNN((4, 6, 8)).eval()
    plain.load_state_dict(host.state_dict(), strict=False)
    assert not torch.allclose(plain(x), host(x))


def test_graft_at_an_unknown_point_fails():
    with pytest.raises(ValueError, match="unknown injection point"):
        _cnn().graft("block9_post", nn.Identity())


def test_paper_sizes():
    with torch.device("meta"):
        cnn = HostCNN()
        lm = TransformerHost()
    assert sum(p.numel() for p in cnn.parameters()) == 94_762  # ~95k
    assert abs(sum(p.numel() for p in lm.parameters()) - 30.0e6) < 0.1e6  # ~30.0M


def test_sequences_longer_than_the_block_are_refused():
    with pytest.raises(ValueError, match="block_size"):
        _lm()(torch.zeros(1, 13, dtype=torch.long))


class _Scale(nn.Module):
    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k * x
