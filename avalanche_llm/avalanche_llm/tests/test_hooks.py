"""Hook identity for both MLP families (design §4): u capture, g=1 identity, g changes, exact scaling."""

from __future__ import annotations

import types

import pytest
import torch

from avalanche_llm.errors import GateError
from avalanche_llm.model.checks import hook_checks, u_recompute_error
from avalanche_llm.model.gain import apply_gain, layer_gains, mlp_output_at
from avalanche_llm.model.hooks import capture_u, down_projections, mlp_family, mlp_width, mlps
from avalanche_llm.model.loader import load_model
from avalanche_llm.tests.tiny_models import tiny_gpt2, tiny_llama, token_ids
from labkit.errors import ConfigError

TOL = 1e-5
FAMILIES = {"gated": tiny_llama, "gpt2": tiny_gpt2}


@pytest.fixture(params=sorted(FAMILIES))
def family_model(request):
    return request.param, FAMILIES[request.param]()


def test_family_and_width(family_model):
    family, model = family_model
    assert mlp_family(model) == family
    assert mlp_width(model) == (48 if family == "gated" else 128)


def test_u_capture_shape_and_recomputation(family_model):
    _, model = family_model
    ids = token_ids()
    seen = {}
    with torch.inference_mode(), capture_u(model, lambda layer, u: seen.setdefault(layer, u.shape)):
        model(input_ids=ids)
    assert seen == {layer: (2, 16, mlp_width(model)) for layer in range(3)}
    with torch.inference_mode():
        assert u_recompute_error(model, ids) <= TOL


def test_gain_identity_change_and_exact_layer0_scaling(family_model):
    _, model = family_model
    ids = token_ids()
    with torch.inference_mode():
        base = model(input_ids=ids).logits
        with apply_gain(model, 1.0):
            same = model(input_ids=ids).logits
        with apply_gain(model, 1.3):
            changed = model(input_ids=ids).logits
        out1 = mlp_output_at(model, 0, ids, 1.0)
        for g in (0.7, 1.3):
            assert torch.equal(mlp_output_at(model, 0, ids, g), out1 * g)
    assert (same - base).abs().max() <= TOL
    assert (changed - base).abs().max() > 1e-3


def test_hook_checks_pass_and_can_fail(family_model):
    _, model = family_model
    ids = token_ids()
    result = hook_checks(model, ids, TOL, 1e-4)
    assert result["layer0_scales_exactly"] and result["u_max_abs_err"] <= TOL
    with pytest.raises(GateError, match=r"g=1\.3 changes logits"):
        hook_checks(model, ids, TOL, 1e9)


def test_hooks_are_removed_even_on_error(family_model):
    _, model = family_model

    def count() -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

    before = count()
    with pytest.raises(RuntimeError), apply_gain(model, 1.3), capture_u(model, lambda *_: None):
        assert count() > before
        raise RuntimeError("boom")
    assert count() == before


def test_bands_and_attention_gain(family_model):
    _, model = family_model
    assert layer_gains("MLP_BAND_EARLY", 2.0, 5) == [2.0, 2.0, 1.0, 1.0, 1.0]
    assert layer_gains("MLP_BAND_MID", 2.0, 5) == [1.0, 1.0, 2.0, 2.0, 1.0]
    assert layer_gains("MLP_BAND_LATE", 2.0, 5) == [1.0, 1.0, 1.0, 1.0, 2.0]
    with pytest.raises(ConfigError):
        layer_gains("MLP_SOMEWHERE", 2.0, 5)
    ids = token_ids()
    with torch.inference_mode():
        base = model(input_ids=ids).logits
        for intervention in ("ATTN_GLOBAL", "MLP_BAND_LATE"):
            with apply_gain(model, 1.0, intervention):
                assert (model(input_ids=ids).logits - base).abs().max() <= TOL
            with apply_gain(model, 1.5, intervention):
                assert (model(input_ids=ids).logits - base).abs().max() > 1e-3
        # A late band leaves layer 0's MLP output untouched.
        seen = []
        handle = mlps(model)[0].register_forward_hook(lambda _m, _i, out: seen.append(out))
        try:
            model(input_ids=ids)
            with apply_gain(model, 1.5, "MLP_BAND_LATE"):
                model(input_ids=ids)
        finally:
            handle.remove()
        assert torch.equal(seen[0], seen[1])


def test_unknown_family_is_a_config_error():
    fake = types.SimpleNamespace(config=types.SimpleNamespace(model_type="bert"))
    with pytest.raises(ConfigError, match="unsupported model family 'bert'"):
        mlp_family(fake)
    with pytest.raises(ConfigError):
        down_projections(fake)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_zoo_models_pass_the_phase0_checks(zoo_test_model, name):
    lm = load_model(str(zoo_test_model(name)), "cpu", "fp32", "tests use the zoo")
    assert lm.family == ("gated" if name == "tiny-llama" else "gpt2")
    ids = torch.randint(
        lm.model.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(1)
    )
    hook_checks(lm.model, ids, TOL, 1e-4)
