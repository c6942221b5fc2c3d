"""The §4 hook checks, run by phase 0 and the tests on both MLP families.

1. u captured at the down projection equals its recomputation from the MLP input within tol;
2. logits with gain hooks at g=1 equal the unhooked logits within tol;
3. g=1.3 changes the logits by more than GAIN_CHANGE_MIN_ABS;
4. the layer-0 MLP output under gain g is exactly g times the unhooked one (same bits).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avalanche_llm.errors import GateError
from avalanche_llm.model.gain import apply_gain, mlp_output_at
from avalanche_llm.model.hooks import capture_u, mlp_family, mlps, recompute_u

TEST_GAIN = 1.3


def u_recompute_error(model: nn.Module, input_ids: torch.Tensor) -> float:
    """Largest |u_captured - u_recomputed| over all layers."""
    inputs: dict[int, torch.Tensor] = {}
    captured: dict[int, torch.Tensor] = {}
    handles = [
        m.register_forward_pre_hook(lambda _m, a, layer=layer: inputs.__setitem__(layer, a[0]))
        for layer, m in enumerate(mlps(model))
    ]
    try:
        with capture_u(model, lambda layer, u: captured.__setitem__(layer, u)):
            model(input_ids=input_ids)
        return max(
            float((captured[layer] - recompute_u(model, layer, h)).abs().max())
            for layer, h in inputs.items()
        )
    finally:
        for handle in handles:
            handle.remove()


def hook_checks(
    model: nn.Module, input_ids: torch.Tensor, tol: float, change_min: float
) -> dict[str, Any]:
    """Run the four checks; GateError (exit 2) names every failure, else returns the measurements."""
    with torch.inference_mode():
        base = model(input_ids=input_ids).logits.float()
        with apply_gain(model, 1.0):
            same = model(input_ids=input_ids).logits.float()
        with apply_gain(model, TEST_GAIN):
            changed = model(input_ids=input_ids).logits.float()
        out1 = mlp_output_at(model, 0, input_ids, 1.0)
        outg = mlp_output_at(model, 0, input_ids, TEST_GAIN)
        result = {
            "family": mlp_family(model),
            "u_max_abs_err": u_recompute_error(model, input_ids),
            "g1_logits_max_abs_diff": float((same - base).abs().max()),
            "g13_logits_max_abs_diff": float((changed - base).abs().max()),
            "layer0_scales_exactly": bool(torch.equal(outg, out1 * TEST_GAIN)),
        }
    failures = [
        name
        for name, ok in (
            ("u recomputation", result["u_max_abs_err"] <= tol),
            ("g=1 identity", result["g1_logits_max_abs_diff"] <= tol),
            ("g=1.3 changes logits", result["g13_logits_max_abs_diff"] > change_min),
            ("layer-0 exact scaling", result["layer0_scales_exactly"]),
        )
        if not ok
    ]
    if failures:
        raise GateError(f"hook checks failed ({result['family']}): {', '.join(failures)}; {result}")
    return result
