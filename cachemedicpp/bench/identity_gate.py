"""The identity gate on a config's model: C at eps 0 + R_phi at init vs stock eager, prefill and decode.

    python bench/identity_gate.py --config configs/mve_llama_local.yaml --windows 8 --decode 16

Stock is the config's model with transformers' own eager attention; gated is the same weights
patched, reading every window under a gaussian event of the config's axes at `--eps` (0: the gate)
with R_phi at init (the config's `repair` section) on the protected layers. Each window of the eval's
PPL split is prefilled, then the `--decode` tokens stock chooses greedily are fed to both, one at a
time through the cache. Reported: the largest |logit difference| over every position. Target
(design §12): <= 1e-4 at eps 0; a damaged cache (`--eps 0.5`) shows what the gate detects.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Mapping
from typing import Any

import torch
from transformers import PreTrainedModel

from cachemedicpp.config import load_run_config
from cachemedicpp.data import split_texts, token_stream
from cachemedicpp.families import cache_shape
from cachemedicpp.intervention import intervene
from cachemedicpp.mixture import make_event
from cachemedicpp.modeling import load_model
from cachemedicpp.repair import RepairOperator
from labkit.errors import ConfigError


@torch.no_grad()
def logits_along(
    model: PreTrainedModel, prompt: torch.Tensor, n: int, tokens: list[torch.Tensor] | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits [T + n, vocab] of a prefill of `prompt` [1, T] and `n` decode steps through the cache,
    feeding `tokens` if given, else the model's own greedy choices; and the tokens fed."""
    out = model(prompt, use_cache=True)
    rows, cache, fed = [out.logits[0]], out.past_key_values, []
    for i in range(n):
        token = rows[-1][-1:].argmax(dim=-1).view(1, 1) if tokens is None else tokens[i]
        out = model(token, past_key_values=cache, use_cache=True)
        rows.append(out.logits[0])
        fed.append(token)
    return torch.cat(rows), fed


def measure(cfg: Mapping[str, Any], *, windows: int, decode: int, eps: float = 0.0) -> dict:
    """Largest |Δlogit| of gated vs stock over `windows` eval windows, prefill and `decode` steps."""
    model, tok = load_model(cfg)
    stock = copy.deepcopy(model)
    stock.set_attn_implementation("eager")  # transformers' own eager attention, no interceptor
    shape = cache_shape(model.config)
    repair = RepairOperator.from_config(
        cfg["repair"], n_heads=shape.kv_heads, head_dim=shape.head_dim, seed=cfg["seed"]
    ).to(model.device)
    spec = cfg["eval"]["wikitext2_ppl"]
    length = min(spec["window"], shape.positions) - decode
    texts = split_texts(spec["dataset"], spec["dataset_config"], spec["split"], spec["text_field"])
    stream = token_stream(tok, [t for t in texts if t.strip()])
    if length < 2 or stream.numel() < windows * length:
        raise ConfigError(f"identity gate: {windows} windows of {length} tokens do not fit")
    prefill = decode_max = 0.0
    for i in range(windows):
        prompt = stream[i * length : (i + 1) * length][None].to(model.device)
        ref, tokens = logits_along(stock, prompt, decode)
        event = make_event(cfg, "gaussian", eps, (cfg["seed"], "gate", i), max_len=length + decode)
        with intervene(model, event, repair):
            ours, _ = logits_along(model, prompt, decode, tokens)
        gap = (ref - ours).abs().amax(dim=-1).float()
        prefill = max(prefill, gap[:length].max().item())
        decode_max = max(decode_max, gap[length:].max().item() if decode else 0.0)
    return {
        "model": cfg["model"]["name"],
        "eps": eps,
        "windows": windows,
        "prompt_tokens": length,
        "decode_steps": decode,
        "max_abs_logit_diff": {"prefill": prefill, "decode": decode_max},
        "max_abs_logit_diff_all": max(prefill, decode_max),
    }


def main() -> None:
    """Measure the gate for a config and print one JSON line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--decode", type=int, default=16)
    p.add_argument("--eps", type=float, default=0.0)
    p.add_argument("overrides", nargs="*", help="dot-key overrides (model.name=...)")
    args = p.parse_args()
    cfg = load_run_config(args.config, args.overrides)
    print(json.dumps(measure(cfg, windows=args.windows, decode=args.decode, eps=args.eps)))


if __name__ == "__main__":
    main()
