from dataclasses import dataclass

import pytest
import torch
from transformers import DynamicCache, OPTConfig, OPTForCausalLM

from cachemedicpp.corruption import CorruptionEvent, Params
from cachemedicpp.families import cache_shape
from cachemedicpp.intervention import greedy_decode, intervene
from cachemedicpp.masks import Axes
from cachemedicpp.patch import check_batch, patch
from cachemedicpp.repair import RepairOperator
from labkit.errors import ConfigError

PROTECT = (1, 2)
FAMILIES = ("gpt2", "llama", "qwen2", "mistral")


def repair_for(model, option: str = "A", **kw) -> RepairOperator:
    shape = cache_shape(model.config)
    return RepairOperator(
        option=option,
        layers=PROTECT,
        n_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        rank=8,
        seed=3,
        **kw,
    )


def gaussian(eps: float, **kw) -> CorruptionEvent:
    return CorruptionEvent("gaussian", eps, (1, "test", 0), PROTECT, max_len=256, **kw)


def stock_logits(model, ids: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Prefill logits then `steps` greedy decode logits, on whatever attention the model uses."""
    with torch.no_grad():
        out = model(ids, use_cache=True)
        logits, cache = [out.logits], out.past_key_values
        token = out.logits[:, -1:].argmax(-1)
        for _ in range(steps):
            out = model(token, past_key_values=cache, use_cache=True)
            logits.append(out.logits)
            token = out.logits[:, -1:].argmax(-1)
    return logits


def worst_gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("option", ["A", "B", "C"])
def test_identity_gate_prefill_and_decode(tiny_lm, family, option):
    model = tiny_lm(family)
    ids = torch.randint(0, 97, (1, 48), generator=torch.Generator().manual_seed(0))
    reference = stock_logits(model, ids, steps=6)  # stock eager
    patch(model)
    with intervene(model, gaussian(0.0), repair_for(model, option)):
        patched = stock_logits(model, ids, steps=6)
    assert worst_gap(reference, patched) <= 1e-4
    with intervene(model, gaussian(0.3), repair_for(model, option)):
        damaged = stock_logits(model, ids, steps=6)
    assert worst_gap(reference, damaged) > 1e-3, "the gate must see damage when there is some"


def randomised(op: RepairOperator) -> RepairOperator:
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in op.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return op


@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
@pytest.mark.parametrize("option", ["A", "B", "C"])
def test_future_tokens_never_change_earlier_logits(tiny_lm, family, option):
    model = tiny_lm(family)
    patch(model)
    op = randomised(repair_for(model, option))
    ids = torch.randint(0, 97, (1, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), intervene(model, None, op):
        full = model(ids).logits
        short = model(ids[:, :25]).logits
    # Not bit-equal: the operator's matmuls over 40 vs 25 rows may block differently on some CPUs
    # (9e-8 measured on the qwen2 path); a leak from future tokens moves logits by ~1e-1.
    torch.testing.assert_close(full[:, :25], short, rtol=0, atol=1e-5)
    with torch.no_grad():
        plain = model(ids).logits
    assert not torch.allclose(full, plain, atol=1e-3), "the operator must act"


@pytest.mark.parametrize("family", FAMILIES)
def test_fail_closed_on_batch_size(tiny_lm, family):
    model = tiny_lm(family)
    patch(model)
    with pytest.raises(ConfigError, match="batch size 1"):
        check_batch(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ConfigError, match="batch size 1"), torch.no_grad():
        model(torch.zeros(2, 5, dtype=torch.long))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"attn_implementation": "sdpa"}, "needs eager attention"),
        ({"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn"),
        ({"add_cross_attention": True}, "cross-attention"),
    ],
)
def test_fail_closed_on_unsupported_gpt2_settings(gpt2, config, message):
    with pytest.raises(ConfigError, match=message):
        patch(gpt2(**config))


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
def test_fail_closed_on_sdpa_in_the_llama_family(tiny_lm, family):
    with pytest.raises(ConfigError, match="needs eager attention"):
        patch(tiny_lm(family, attn_implementation="sdpa"))


def test_fail_closed_on_unsupported_families():
    opt = OPTForCausalLM(
        OPTConfig(
            hidden_size=32,
            ffn_dim=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=50,
            word_embed_proj_dim=32,
            attn_implementation="eager",
        )
    )
    with pytest.raises(ConfigError, match="supports GPT-2, Llama, Qwen2 and Mistral"):
        patch(opt)


def test_fail_closed_when_a_read_reaches_the_sliding_window(tiny_lm):
    model = tiny_lm("mistral", sliding_window=24)
    patch(model)
    ids = torch.randint(0, 97, (1, 30), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        model(ids[:, :23])  # 23 positions: the window drops nothing yet
        with pytest.raises(ConfigError, match="sliding_window - 1 = 23"):
            model(ids[:, :24])
        out = model(ids[:, :23], use_cache=True)
        with pytest.raises(ConfigError, match="this read has 24"):
            model(ids[:, 23:24], past_key_values=out.past_key_values, use_cache=True)


def test_interventions_need_a_patched_model_and_do_not_nest(gpt2):
    model = gpt2()
    with pytest.raises(ConfigError, match="not patched"), intervene(model):
        pass
    patch(model)
    with intervene(model), pytest.raises(RuntimeError, match="nest"), intervene(model):
        pass


def test_transient_events_leave_the_cache_clean(gpt2):
    model = gpt2()
    patch(model)
    ids = torch.randint(0, 97, (1, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        clean = model(ids, use_cache=True)
        with intervene(model, gaussian(0.5)) as iv:
            hit = model(ids, use_cache=True)
    assert iv.eps_realized == pytest.approx(0.5, rel=0.1)
    assert not torch.allclose(hit.logits, clean.logits)
    # Layer 1 caches K,V computed before any damage is read, so transient reads leave it exactly clean.
    assert torch.equal(hit.past_key_values.layers[1].keys, clean.past_key_values.layers[1].keys)


def test_persistent_events_are_written_once_after_prefill(gpt2):
    model = gpt2()
    patch(model)
    ids = torch.randint(0, 97, (1, 30), generator=torch.Generator().manual_seed(2))
    axes = Axes(time_mode="old_only", n_recent=4)
    event = gaussian(0.5, axes=axes, persistence="persistent")
    with torch.no_grad():
        clean = model(ids, use_cache=True).past_key_values
        with intervene(model, event) as iv:
            out = model(ids[:, :-1], use_cache=True)
            cache = out.past_key_values
            assert torch.equal(cache.layers[1].keys, clean.layers[1].keys[:, :, :-1]), (
                "prefill reads clean"
            )
            iv.commit(cache)
            committed = cache.layers[1].keys.clone()
            model(ids[:, -1:], past_key_values=cache, use_cache=True)
            with pytest.raises(RuntimeError, match="only once"):
                iv.commit(cache)
    keys = cache.layers[1].keys
    assert not torch.equal(committed[:, :, :25], clean.layers[1].keys[:, :, :25])
    assert torch.equal(committed[:, :, 25:], clean.layers[1].keys[:, :, 25:29]), (
        "recent positions stay"
    )
    assert torch.equal(keys[:, :, :29], committed), "decode never re-corrupts the cache"
    assert torch.allclose(keys[:, :, 29:], clean.layers[1].keys[:, :, 29:], atol=1e-6), (
        "layer 1 of a new token is clean"
    )
    assert isinstance(cache, DynamicCache)


def test_greedy_decode_reads_a_persistent_event(gpt2):
    model = gpt2(n_layer=2)
    patch(model)
    ids = torch.randint(0, 97, (1, 40), generator=torch.Generator().manual_seed(4))
    clean, _ = greedy_decode(model, ids, 5)
    assert clean.shape == (1, 5)
    strong = CorruptionEvent(
        "dropout_zero", 1.0, (0, "t", 0), (0, 1), persistence="persistent", max_len=64
    )
    _, iv = greedy_decode(model, ids, 5, event=strong)
    assert iv.committed and iv.eps_realized == pytest.approx(1.0)


@dataclass
class ZeroRegion:
    """A toy heuristic: zero K and V inside the region it is shown."""

    layers: frozenset[int] | None
    oracle_mask: bool
    seen: list
    axes: Axes | None = None

    def __call__(self, layer, key, value, region):
        self.seen.append((layer, region.clone()))
        return key.masked_fill(region, 0), value.masked_fill(region, 0)


def test_heuristics_see_the_time_region_or_the_oracle_mask(gpt2):
    model = gpt2()
    patch(model)
    ids = torch.randint(0, 97, (1, 20), generator=torch.Generator().manual_seed(6))
    axes = Axes(head_mode="targeted", heads=(1,), time_mode="window", window=(2, 6))
    event = CorruptionEvent(
        "gaussian", 0.0, (1, "t", 0), PROTECT, axes=axes, params=Params(), max_len=64
    )
    for oracle, heads in ((False, [0, 1, 2, 3]), (True, [1])):
        defense = ZeroRegion(frozenset({2}), oracle, [])
        with torch.no_grad(), intervene(model, event, defense):
            model(ids)
        [(layer, region)] = defense.seen
        assert layer == 2
        assert region[0, :, :, 0].any(dim=1).nonzero().flatten().tolist() == heads
        assert region[0, heads[0], :, 0].nonzero().flatten().tolist() == [2, 3, 4, 5]


def test_a_clean_read_shows_heuristics_their_own_time_region(gpt2):
    model = gpt2()
    patch(model)
    ids = torch.randint(0, 97, (1, 20), generator=torch.Generator().manual_seed(6))
    for axes, positions in ((Axes(time_mode="old_only", n_recent=4), 16), (None, 20)):
        defense = ZeroRegion(frozenset({0}), False, [], axes)
        with torch.no_grad(), intervene(model, None, defense):
            model(ids)
        [(_, region)] = defense.seen
        assert region.shape == (1, 4, 20, 1) and region[0, :, :, 0].all(dim=0).tolist() == [
            t < positions for t in range(20)
        ]
