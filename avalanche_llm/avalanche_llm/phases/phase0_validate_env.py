"""Validate the environment: imports, version pin, device, data sets, and the hook checks on every role."""

from __future__ import annotations

import importlib

import torch

from avalanche_llm.model.checks import hook_checks
from avalanche_llm.runs import PhaseContext
from avalanche_llm.slices import dataset_split
from labkit.determinism import generator
from labkit.errors import MissingInputError

STAGE = "S00"
NEEDS: tuple[str, ...] = ()
PRODUCES_RUN = False
MODULES = (
    "torch",
    "transformers",
    "datasets",
    "scipy",
    "powerlaw",
    "mrestimator",
    "pandas",
    "pyarrow",
    "matplotlib",
)
CHECK_TOKENS = 32


def check(ctx: PhaseContext) -> None:
    """Every library the pipeline imports is installed."""
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise MissingInputError(f"cannot import {name}: {exc}") from None


def run(ctx: PhaseContext) -> None:
    """Resolve every data set and run the hook checks on each model role."""
    hint = ctx.cfg["runtime"]["local_hint"]
    for role, ds in ctx.cfg["datasets"].items():
        rows = dataset_split(ds["id"], ds["config"], ds["split"], hint)
        # hub data sets stream: their length is unknown until read, and is never needed
        size = f"{len(rows)} rows" if hasattr(rows, "__len__") else "streamed"
        print(f"data {role}: {ds['id']} [{ds['split']}] {size}")
    for role in ctx.cfg["models"]:
        lm = ctx.model(role)
        T = min(ctx.const("SEQ_LEN_TOKENS"), CHECK_TOKENS)
        ids = torch.randint(
            lm.model.config.vocab_size, (2, T), generator=generator("phase0", role)
        ).to(lm.device)
        res = hook_checks(
            lm.model, ids, ctx.const("U_HOOK_MATCH_TOL_ABS"), ctx.const("GAIN_CHANGE_MIN_ABS")
        )
        print(
            f"model {role}: {lm.hf_id} ({res['family']}, L={lm.n_layers}, d_ff={lm.d_ff}) "
            f"u err {res['u_max_abs_err']:.2e}, g=1 diff {res['g1_logits_max_abs_diff']:.2e}, "
            f"g=1.3 diff {res['g13_logits_max_abs_diff']:.2e}, layer-0 exact {res['layer0_scales_exactly']}"
        )
        ctx.drop_model(role)  # one model in memory at a time (paper scale: two 7B models)
