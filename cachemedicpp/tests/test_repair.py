import pytest
import torch
from transformers.masking_utils import causal_mask_function, eager_mask

from cachemedicpp.repair import RepairOperator

H, D, T = 4, 16, 12


def operator(option: str = "A", *, apply_to: str = "KV", layers=(3, 5), **kw) -> RepairOperator:
    return RepairOperator(
        option=option,
        layers=layers,
        n_heads=kw.pop("n_heads", H),
        head_dim=kw.pop("head_dim", D),
        rank=kw.pop("rank", 4),
        apply_to=apply_to,
        seed=0,
        **kw,
    )


def qkv(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, H, T, D, generator=g) for _ in range(3))


def randomise(op: RepairOperator) -> RepairOperator:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in op.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * 0.6 - 0.1)
    return op


def causal_mask() -> torch.Tensor:
    return eager_mask(1, T, T, mask_function=causal_mask_function)


def eager(q, k, v, mask):
    w = torch.softmax(q @ k.transpose(-1, -2) * D**-0.5 + mask, dim=-1)
    return (w @ v).transpose(1, 2)


@pytest.mark.parametrize("option", ["A", "B", "C"])
def test_identity_and_nonzero_gradients_at_init(option):
    op = operator(option)
    q, k, v = qkv()
    out, _ = op.attend(5, q, k, v, causal_mask(), D**-0.5)
    assert torch.allclose(out, eager(q, k, v, causal_mask()), atol=1e-6)
    rep = op.explicit(5, k, v, q[:, :, -1:])
    assert torch.equal(rep["K"], k) and torch.equal(rep["V"], v)
    target = torch.randn_like(out)
    ((out - target) ** 2).sum().backward()
    grads = {name: p.grad for name, p in op.named_parameters() if p.grad is not None}
    assert any(g.abs().sum() > 0 for g in grads.values()), "some parameter must learn at init"


@pytest.mark.parametrize(
    ("option", "apply_to", "per_layer", "total"),
    [("A", "KV", 3232, 12928), ("B", "KV", 2210, 8840), ("A", "V", 1616, 6464)],
)
def test_parameter_counts_for_gpt2_medium_shapes(option, apply_to, per_layer, total):
    op = operator(option, apply_to=apply_to, layers=(8, 9, 10, 11), n_heads=16, head_dim=64, rank=8)
    assert op.n_params() == total
    assert sum(p.numel() for p in op.per_layer["8"].parameters()) == per_layer


def test_option_c_shares_one_operator_across_layers():
    op = operator("C", layers=(8, 9, 10, 11), n_heads=16, head_dim=64, rank=8)
    assert op.n_params() == 3488
    with_heads = operator(
        "C", layers=(8, 9, 10, 11), n_heads=16, head_dim=64, rank=8, head_embedding=True
    )
    assert with_heads.n_params() == 3488 + 16 * 64


@pytest.mark.parametrize("option", ["A", "B", "C"])
@pytest.mark.parametrize("apply_to", ["KV", "K", "V"])
@pytest.mark.parametrize("share", [True, False])
def test_factored_attention_equals_explicit_per_query_cache(option, apply_to, share):
    op = randomise(operator(option, apply_to=apply_to, share_across_heads=share))
    q, k, v = qkv(seed=2)
    mask = causal_mask()
    with torch.no_grad():
        out, _ = op.attend(3, q, k, v, mask, D**-0.5)
        for i in range(T):
            rep = op.explicit(3, k, v, q[:, :, i : i + 1])
            row = eager(q[:, :, i : i + 1], rep.get("K", k), rep.get("V", v), mask[:, :, i : i + 1])
            assert torch.allclose(out[:, i : i + 1], row, atol=1e-5), f"query {i}"
    assert not torch.allclose(out, eager(q, k, v, mask), atol=1e-3), "the operator must act"


def test_option_b_gamma_is_clamped_to_unit_interval():
    q, k, v = qkv()
    outs = []
    for gamma in (1.0, 5.0):
        op = randomise(operator("B"))
        with torch.no_grad():
            for part in op.per_layer["3"].values():
                part.gamma.fill_(gamma)
            outs.append(op.explicit(3, k, v, q[:, :, -1:])["K"])
    assert torch.equal(outs[0], outs[1])


def test_checkpoint_round_trip():
    op = randomise(operator("C", head_embedding=True))
    again = RepairOperator.from_checkpoint(op.checkpoint(7, "0" * 64))
    q, k, v = qkv()
    with torch.no_grad():
        a = op.attend(5, q, k, v, causal_mask(), D**-0.5)[0]
        b = again.attend(5, q, k, v, causal_mask(), D**-0.5)[0]
    assert torch.equal(a, b)


@pytest.mark.parametrize("option", ["A", "B", "C"])
@pytest.mark.parametrize("share", [True, False])
def test_grouped_queries_share_one_repaired_cache_per_kv_head(option, share):
    g = torch.Generator().manual_seed(4)
    q = torch.randn(
        1, 2 * H, T, D, generator=g
    )  # grouped-query attention: 2 query heads per K,V head
    k, v = (torch.randn(1, H, T, D, generator=g) for _ in range(2))
    mask = causal_mask()

    def grouped(x: torch.Tensor) -> torch.Tensor:  # what repeat_kv hands the query heads
        return x.repeat_interleave(2, dim=1)

    at_init, _ = operator(option).attend(3, q, k, v, mask, D**-0.5)
    assert torch.allclose(at_init, eager(q, grouped(k), grouped(v), mask), atol=1e-6)
    op = randomise(operator(option, share_across_heads=share))
    with torch.no_grad():
        out, weights = op.attend(3, q, k, v, mask, D**-0.5)
        assert weights.shape == (1, 2 * H, T, T)
        for i in range(T):
            rep = op.explicit(3, k, v, q[:, :, i : i + 1])
            assert rep["K"].shape == k.shape, "one repaired cache per K,V head"
            row = eager(
                q[:, :, i : i + 1], grouped(rep["K"]), grouped(rep["V"]), mask[:, :, i : i + 1]
            )
            assert torch.allclose(out[:, i : i + 1], row, atol=1e-5), f"query {i}"
        group_mean = q[:, :, -1:].unflatten(1, (H, 2)).mean(dim=2)
        assert torch.equal(
            op.explicit(3, k, v, q[:, :, -1:])["K"], op.explicit(3, k, v, group_mean)["K"]
        )
    assert not torch.allclose(out, at_init, atol=1e-3), "the operator must act"
