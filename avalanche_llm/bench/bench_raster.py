"""Raster extraction time over plain forward time, on the local model and a Qwen2.5-0.5B-shaped one.

Run from avalanche_llm/: `python bench/bench_raster.py [--device cpu|cuda] [--windows 8 --seq_len 256]`.
Extraction = one forward pass with the u pre-hooks, standardisation and spike counting for 2 spike
definitions x 4 thresholds (8 rasters), exactly as the phases run it (`raster.build.extract_rasters`);
plain = the same model's backbone on the same windows and attention mask, with no hooks. Paired protocol:
one warm-up of each, then `--repeats` pairs, the order inside a pair alternating, so load changes on a
shared machine hit both sides alike. Reported: the median of the per-pair ratios (the headline) and the
best-of ratio (fastest extraction / fastest plain pass). Qwen2.5-0.5B shape (random weights, seed 0):
24 layers, hidden 896, MLP 4864, 14 heads / 2 KV heads, vocab 151936. Goal: ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from avalanche_llm.model.hooks import mlp_family, mlp_width, n_layers
from avalanche_llm.model.loader import LoadedModel, load_model
from avalanche_llm.raster.build import extract_rasters

QWEN05 = dict(
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    vocab_size=151936,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
)
TAUS = (2.5, 3.0, 3.5, 4.0)
SPIKE_DEFS = ("SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS")


def qwen05_shaped(device: str) -> LoadedModel:
    """A randomly initialised Qwen2 causal LM with Qwen2.5-0.5B's shapes (no tokenizer needed)."""
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**QWEN05, attn_implementation="sdpa")).to(device).eval()
    return LoadedModel(
        model,
        None,
        "random:qwen2.5-0.5b-shape",
        Path("."),
        mlp_family(model),
        n_layers(model),
        mlp_width(model),
        torch.device(device),
    )


def timed(fn: Callable[[], object], device: str) -> float:
    """Wall time of one call (synchronised on CUDA)."""
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure(lm: LoadedModel, windows: np.ndarray, batch: int, repeats: int, device: str) -> dict:
    """Median plain-forward and extraction times, the median paired ratio and the best-of ratio."""
    ids = torch.as_tensor(windows, device=lm.device)
    taus = {(sd, f"{t:g}"): np.full(lm.n_layers, t) for sd in SPIKE_DEFS for t in TAUS}
    mu = np.zeros((lm.n_layers, lm.d_ff))
    sigma = np.ones((lm.n_layers, lm.d_ff))

    def plain() -> None:
        with torch.inference_mode():
            for s in range(0, ids.shape[0], batch):
                part = ids[s : s + batch]
                lm.model.base_model(
                    input_ids=part, attention_mask=torch.ones_like(part), use_cache=False
                )

    def extract() -> None:
        extract_rasters(lm, windows, taus, batch_size=batch, mu=mu, sigma=sigma, eps=1e-6, gain=1.0)

    plain(), extract()  # warm-up
    pairs = []
    for r in range(repeats):
        if r % 2:
            e, p = timed(extract, device), timed(plain, device)
        else:
            p, e = timed(plain, device), timed(extract, device)
        pairs.append((p, e))
    t = np.array(pairs)
    return {
        "plain_s": float(np.median(t[:, 0])),
        "extract_s": float(np.median(t[:, 1])),
        "ratio_median_pair": float(np.median(t[:, 1] / t[:, 0])),
        "ratio_best": float(t[:, 1].min() / t[:, 0].min()),
    }


def main() -> None:
    """Time both models and print one line each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--seq_len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--models", default="local,qwen05")
    ap.add_argument("--local_model", default="local:tiny-llama", help="zoo name or model directory")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (the local profile uses 1)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for name in args.models.split(","):
        if name == "local":
            lm = load_model(args.local_model, args.device, "fp32", "bench uses the zoo model")
        else:
            lm = qwen05_shaped(args.device)
        vocab = lm.model.config.vocab_size
        windows = rng.integers(0, vocab, size=(args.windows, args.seq_len), dtype=np.int64)
        r = measure(lm, windows, args.batch, args.repeats, args.device)
        print(
            f"{name} ({lm.family}, {lm.n_layers} layers, d_ff {lm.d_ff}) on {args.device}, "
            f"{args.threads} threads, {args.windows}x{args.seq_len} tokens, {args.repeats} pairs: "
            f"median plain {r['plain_s'] * 1e3:.1f} ms, rasters (8 conditions) "
            f"{r['extract_s'] * 1e3:.1f} ms; ratio median of pairs {r['ratio_median_pair']:.2f}, "
            f"best-of {r['ratio_best']:.2f} (goal <= 1.3)"
        )


if __name__ == "__main__":
    main()
