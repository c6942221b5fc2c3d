"""Decode throughput with R_phi vs undefended stock eager attention, as ratios measured in one run.

    python bench/decode_overhead.py --shape gpt2-medium   # random weights, mve.yaml's R_phi
    python bench/decode_overhead.py --shape local         # local:tiny-gpt2, mve_local.yaml's R_phi
    python bench/decode_overhead.py --shape llama-local   # local:tiny-llama, mve_llama_local.yaml's
    python bench/decode_overhead.py --shape gpt2-medium --device cuda   # the same on a CUDA device

Three variants decode the same prompt greedily, interleaved over `--repeats` rounds so that machine
drift hits all alike: stock eager (unpatched), patched with no intervention, patched with R_phi
(option A at init; its cost does not depend on the weights). Reported: median tokens/s and the
ratios to stock eager. Target (design §12): R_phi / stock >= 0.97.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel

from cachemedicpp.config import PROJECT, load_run_config
from cachemedicpp.families import cache_shape
from cachemedicpp.intervention import greedy_decode
from cachemedicpp.patch import patch
from cachemedicpp.repair import RepairOperator
from labkit.zoo import resolve_model

SHAPES = {
    "gpt2-medium": "configs/mve.yaml",
    "local": "configs/mve_local.yaml",
    "llama-local": "configs/mve_llama_local.yaml",
}


def stock_decode(model: PreTrainedModel, ids: torch.Tensor, n: int) -> torch.Tensor:
    """The same prefill-then-decode loop as greedy_decode, on an unpatched model."""
    out = model(ids[:, :-1], use_cache=True)
    cache, token, generated = out.past_key_values, ids[:, -1:], []
    for _ in range(n):
        out = model(token, past_key_values=cache, use_cache=True)
        token = out.logits[:, -1:].argmax(dim=-1)
        generated.append(token)
    return torch.cat(generated, dim=1)


def build(shape: str, model_name: str | None = None) -> tuple[PreTrainedModel, dict]:
    """The eager model for a shape (local ones: `model_name` or the config's) and its `repair` section."""
    cfg = load_run_config(PROJECT / SHAPES[shape])
    if shape != "gpt2-medium":
        model = AutoModelForCausalLM.from_pretrained(
            resolve_model(model_name or cfg["model"]["name"]), attn_implementation="eager"
        )
    else:
        torch.manual_seed(0)  # random weights: timing only
        config = GPT2Config(n_layer=24, n_embd=1024, n_head=16, attn_implementation="eager")
        model = GPT2LMHeadModel(config)
    return model.eval().requires_grad_(False), cfg["repair"]


@torch.no_grad()
def measure(
    stock: PreTrainedModel,
    rep_cfg: dict,
    *,
    prompt_tokens: int = 128,
    new_tokens: int = 64,
    repeats: int = 5,
    device: str = "cpu",
) -> dict:
    """Median decode tokens/s of stock eager, patched and patched + R_phi, and their ratios."""
    stock = stock.to(device)
    patched = copy.deepcopy(stock)
    patch(patched)
    mc = stock.config
    shape = cache_shape(mc)
    repair = (
        RepairOperator.from_config(rep_cfg, n_heads=shape.kv_heads, head_dim=shape.head_dim, seed=0)
        .eval()
        .to(device)
    )
    ids = torch.randint(
        mc.vocab_size, (1, prompt_tokens), generator=torch.Generator().manual_seed(0)
    ).to(device)
    variants = {
        "stock_eager": lambda: stock_decode(stock, ids, new_tokens),
        "patched_none": lambda: greedy_decode(patched, ids, new_tokens)[0],
        "patched_r_phi": lambda: greedy_decode(patched, ids, new_tokens, defense=repair)[0],
    }
    for fn in variants.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            if device == "cuda":  # kernels run asynchronously: time them, not their launch
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    tps = {k: new_tokens / statistics.median(v) for k, v in times.items()}
    return {
        "device": device,
        "threads": torch.get_num_threads(),
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "repair": {k: rep_cfg[k] for k in ("option", "rank", "protect_layers", "apply_to")},
        "repair_params": repair.n_params(),
        "tokens_per_s": tps,
        "ratio_r_phi_to_stock": tps["patched_r_phi"] / tps["stock_eager"],
        "ratio_patch_only_to_stock": tps["patched_none"] / tps["stock_eager"],
    }


def main() -> None:
    """Time the three variants and print one JSON line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="local")
    p.add_argument("--prompt_tokens", type=int, default=128)
    p.add_argument("--new_tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--model", default=None, help="local shapes: a model other than the config's")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = p.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    stock, rep_cfg = build(args.shape, args.model)
    result = measure(
        stock,
        rep_cfg,
        prompt_tokens=args.prompt_tokens,
        new_tokens=args.new_tokens,
        repeats=args.repeats,
        device=args.device,
    )
    print(json.dumps({"shape": args.shape, **result}))


if __name__ == "__main__":
    main()
