import pytest
import torch

from cachemedicpp.config import resolve
from cachemedicpp.corruption import (
    MIX_TYPES,
    TYPES,
    CorruptionEvent,
    EventState,
    Params,
    random_rotation,
    relative_change,
    skew_spectrum,
)
from cachemedicpp.masks import Axes, time_mask
from cachemedicpp.mixture import sample_step, train_mix

H, D = 8, 32


def kv(length: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Vectors with uneven per-head scales, like a real cache.
    scale = torch.linspace(0.5, 2.0, H)[None, :, None, None]
    return (torch.randn(1, H, length, D, generator=g) * scale for _ in range(2))


def donor(length: int = 128) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    k, v = kv(length, seed=99)
    return {layer: (k, v) for layer in range(4)}


def event(kind: str, eps: float, *, key=(1, "test", 0), axes=None, **kw) -> CorruptionEvent:
    return CorruptionEvent(
        type=kind,
        eps=eps,
        key=key,
        protect_layers=(1, 2),
        axes=axes or Axes(),
        params=kw.pop("params", Params(targeted_base_type="gaussian")),
        max_len=kw.pop("max_len", 256),
        donor=donor(),
        **kw,
    )


@pytest.mark.parametrize("kind", TYPES)
def test_eps_zero_is_identity(kind):
    k, v = kv()
    state = EventState(event(kind, 0.0, axes=Axes(layers=(1,), heads=(0,))), H)
    out = state.apply(1, k, v)
    assert out[0] is k and out[1] is v and state.eps_realized() == 0


@pytest.mark.parametrize("kind", TYPES)
def test_same_seed_gives_bitwise_equal_damage(kind):
    axes = Axes(head_mode="bernoulli", p_head=0.5, layers=(1, 2), heads=(0, 3))
    k, v = kv()
    runs = [EventState(event(kind, 0.1, axes=axes), H).apply(2, k, v) for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], k), "the event must change the cache"
    other = EventState(event(kind, 0.1, axes=axes, key=(1, "test", 1)), H).apply(2, k, v)
    if kind not in ("orthogonal_rotation", "quant_noise", "contiguous_overwrite"):
        assert not torch.equal(other[0], runs[0][0]), "another key must draw other damage"


def test_rotations_are_orthogonal():
    r = random_rotation(D, 999)
    assert torch.allclose(r.T @ r, torch.eye(D, dtype=r.dtype), atol=1e-10)
    rot = torch.linalg.matrix_exp(0.7 * skew_spectrum(D, 999)[0])
    assert torch.allclose(rot.T @ rot, torch.eye(D, dtype=rot.dtype), atol=1e-10)


@pytest.mark.parametrize("kind", [t for t in MIX_TYPES if t != "contiguous_overwrite"])
@pytest.mark.parametrize("eps", [0.04, 0.16])
def test_matched_eps_is_within_ten_percent(kind, eps):
    k, v = kv(length=1024)
    state = EventState(event(kind, eps, max_len=1024), H)
    state.apply(1, k, v)
    assert state.realized[1] == pytest.approx(eps, rel=0.10)


def test_matched_overwrite_picks_the_closest_span_length():
    k, v = kv(length=64)
    state = EventState(event("contiguous_overwrite", 0.3), H)
    k2, _ = state.apply(1, k, v)
    changed = (k2 != k).any(dim=-1)[0, 0]
    span = changed.nonzero().flatten()
    assert span.min() == 16 and span.max() < 48, "overwrite stays in its window [16, 48)"
    ratios = []
    for end in range(17, 49):
        y = k.clone()
        y[:, :, 16:end] = donor()[1][0][:, :, 16:end]
        ratios.append(
            relative_change(
                k, y, time_mask(Axes(time_mode="window", window=(16, 48)), 64)[None, None, :, None]
            )
        )
    best = min(range(len(ratios)), key=lambda i: abs(ratios[i] - 0.3))
    assert span.max() == 16 + best


def test_reference_mode_uses_published_parameters():
    k, v = kv(length=1024)
    state = EventState(event("dropout_zero", 0.5, eps_mode="reference", max_len=1024), H)
    k2, _ = state.apply(1, k, v)
    assert ((k2 == 0) & (k != 0)).float().mean().item() == pytest.approx(0.02, abs=0.003)


def test_targeted_touches_only_its_layers_and_heads():
    axes = Axes(layers=(2,), heads=(1, 5))
    state = EventState(event("targeted", 0.2, axes=axes), H)
    k, v = kv()
    assert state.apply(1, k, v)[0] is k, "layer 1 is not targeted"
    k2, v2 = state.apply(2, k, v)
    changed = (k2 != k).any(dim=-1).any(dim=-1)[0] | (v2 != v).any(dim=-1).any(dim=-1)[0]
    assert changed.nonzero().flatten().tolist() == [1, 5]


def test_time_modes_and_position_stable_draws():
    axes = Axes(time_mode="old_only", n_recent=8)
    assert time_mask(axes, 20).tolist() == [True] * 12 + [False] * 8
    assert time_mask(Axes(time_mode="window", window=(3, 6)), 8).nonzero().flatten().tolist() == [
        3,
        4,
        5,
    ]
    k, v = kv(length=40)
    state = EventState(event("gaussian", 0.1, axes=axes), H)
    short = state.apply(1, k[:, :, :30], v[:, :, :30])[0]
    long = state.apply(1, k, v)[0]
    # A position keeps its damage as the cache grows (decode reads the same event again).
    assert torch.equal(short[:, :, :22], long[:, :, :22])
    assert torch.equal(long[:, :, 32:], k[:, :, 32:]), "the newest n_recent positions stay clean"


def test_ood_protocol_renormalises_the_training_mix():
    base = {
        "model": {"name": "local:tiny-gpt2"},
        "data": {"dataset": "local:stories"},
        "repair": {"protect_layers": [0]},
    }
    full = train_mix(resolve(base))
    assert sum(full.values()) == pytest.approx(1) and full["gaussian"] == pytest.approx(0.25)
    held = train_mix(resolve(base, ["eval.ood_protocol=loto_holdout_gaussian"]))
    assert "gaussian" not in held and sum(held.values()) == pytest.approx(1)
    assert held["dropout_zero"] == pytest.approx(0.20 / 0.75)


def test_step_sampling_is_a_function_of_seed_and_step():
    cfg = resolve(
        {
            "model": {"name": "local:tiny-gpt2"},
            "data": {"dataset": "local:stories"},
            "repair": {"protect_layers": [0]},
        }
    )
    mix = train_mix(cfg)
    grids = {t: cfg["corruption"]["eps_grid"] for t in mix}
    draws = [sample_step(cfg, mix, grids, s) for s in range(400)]
    assert draws == [sample_step(cfg, mix, grids, s) for s in range(400)]
    clean = sum(d is None for d in draws) / len(draws)
    assert clean == pytest.approx(0.2, abs=0.06)
    assert {d[0] for d in draws if d} == set(MIX_TYPES)
