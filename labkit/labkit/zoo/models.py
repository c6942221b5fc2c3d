"""The zoo's language models `local:tiny-gpt2` and `local:tiny-llama`: architecture, recipe, build, card."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

from labkit.determinism import derive_seed
from labkit.errors import ConfigError
from labkit.zoo import quality
from labkit.zoo.tokenizer import build_tokenizer
from labkit.zoo.training import (
    TORCH_THREADS,
    Mixture,
    Schedule,
    Stage,
    build_threads,
    encode_doc,
    fact_source,
    pool,
    train,
)
from labkit.zoo.world import (
    build_dataset,
    format_mcq,
    format_mcq_text,
    format_needle,
    format_sentiment,
)

MODELS = ("tiny-gpt2", "tiny-llama")
N_POSITIONS = 256
# The zoo's default data seed: a model learns exactly the train splits that systems read as local:*.
DATA_SEED = 0
ANSWER_WEIGHT = 20.0
FACT_MIN_TOKENS = 20

# width, layers, heads (head dim 32 in both sizes), gated-MLP width for Llama.
SHAPES = {
    "default": {"width": 128, "layers": 3, "heads": 4, "mlp": 344},
    "test": {"width": 64, "layers": 2, "heads": 2, "mlp": 172},
}

# Short-to-long: needle-format facts a few dozen tokens back teach the copy, longer stages stretch it;
# sentiment answers are dense throughout (they took ~2e4 answers to appear). MCQ rows come in the text-answer
# format the card scores ("Question: ...\nAnswer: kitchen") and only once the copy has formed: in the first
# stage they took its place (needle recall ~0.2 instead of 1.0), and lettered rows never rose above chance.
SCHEDULES = {
    "default": Schedule(
        stages=(
            Stage(
                300, 64, 32,
                lead=(("facts", 0.6), ("sentiment", 0.4)),
                body=(("sentiment", 0.6), ("stories", 0.4)),
            ),
            Stage(
                200, 128, 32,
                lead=(("facts", 0.35), ("needle", 0.25), ("mcq_text", 0.2), ("sentiment", 0.2)),
                body=(("stories", 0.4), ("sentiment", 0.3), ("mcq_text", 0.3)),
            ),
            Stage(
                500, N_POSITIONS, 16,
                lead=(("needle", 0.35), ("facts", 0.2), ("mcq_text", 0.25), ("sentiment", 0.2)),
                body=(("stories", 0.5), ("sentiment", 0.25), ("mcq_text", 0.25)),
            ),
        ),
        lr=2e-3,
        warmup=30,
    ),
    "test": Schedule(
        stages=(
            Stage(120, 64, 16, lead=(("facts", 0.6), ("sentiment", 0.4)), body=(("stories", 1.0),)),
            Stage(
                40, N_POSITIONS, 8,
                lead=(("needle", 0.4), ("mcq_text", 0.3), ("sentiment", 0.3)),
                body=(("stories", 0.6), ("sentiment", 0.2), ("mcq_text", 0.2)),
            ),
        ),
        lr=2e-3,
        warmup=10,
    ),
}  # fmt: skip


def model_config(name: str, size: str, tok: PreTrainedTokenizerFast) -> PretrainedConfig:
    """The Hugging Face config of zoo model `name` at `size` for tokenizer `tok`."""
    s = SHAPES[size]
    special = {
        "bos_token_id": tok.eos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    if name == "tiny-gpt2":
        return GPT2Config(
            vocab_size=len(tok),
            n_positions=N_POSITIONS,
            n_embd=s["width"],
            n_layer=s["layers"],
            n_head=s["heads"],
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **special,
        )
    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=s["width"],
        intermediate_size=s["mlp"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["heads"],
        max_position_embeddings=N_POSITIONS,
        tie_word_embeddings=True,
        **special,
    )


def training_data(size: str) -> dict[str, Any]:
    """The world data sets a zoo model of `size` trains on, at the zoo's data seed."""
    return {
        name: build_dataset(name, size, DATA_SEED)
        for name in ("stories", "sentiment", "mcq", "needle")
    }


def training_texts(data: dict[str, Any]) -> list[str]:
    """Every training row of `data` as text, in the formats the models are scored in."""
    return [
        *data["stories"]["train"]["text"],
        *("".join(format_sentiment(r)) for r in data["sentiment"]["train"]),
        *("".join(format_mcq(r)) for r in data["mcq"]["train"]),
        *("".join(format_needle(r)) for r in data["needle"]["train"]),
    ]


def mixture(tok: PreTrainedTokenizerFast, data: dict[str, Any], seed: int) -> Mixture:
    """The curriculum sources of the zoo models (stories, task formats, fresh facts) for `tok`."""
    filler = quality.token_stream(tok, data["stories"]["train"]["text"])
    formats = {
        "sentiment": ("sentiment", format_sentiment),
        "mcq": ("mcq", format_mcq),
        "mcq_text": ("mcq", format_mcq_text),
        "needle": ("needle", format_needle),
    }
    sources = {
        "stories": pool([encode_doc(tok, t) for t in data["stories"]["train"]["text"]]),
        **{
            name: pool([encode_doc(tok, *fmt(r), ANSWER_WEIGHT) for r in data[ds]["train"]])
            for name, (ds, fmt) in formats.items()
        },
        "facts": fact_source(tok, filler, FACT_MIN_TOKENS, ANSWER_WEIGHT),
    }
    return Mixture(sources, filler, seed)


def _summary(name: str, size: str, q: dict) -> str:
    ppl, needle = q["perplexity"], q["needle_recall"]["by_length"]
    recall = ", ".join(f"{n}: {v:.2f}" for n, v in needle.items())
    return (
        f"local:{name}@{size}: ppl {ppl['model']:.2f} (unigram {ppl['unigram']:.2f}); "
        f"needle recall {recall}; sentiment {q['sentiment']['accuracy']:.3f}; "
        f"mcq {q['mcq']['accuracy']:.3f} (95% CI {q['mcq']['ci95'][0]:.3f}-{q['mcq']['ci95'][1]:.3f}; "
        f"by letter {q['mcq']['letter_accuracy']:.3f})"
    )


def build_model(
    name: str, size: str, seed: int, out_dir: Path, progress: Callable[[int, int, str], None]
) -> dict:
    """Train zoo model `name` at `size` from `seed`, save it into `out_dir`, and return its quality card."""
    if name not in MODELS:
        raise ConfigError(f"unknown zoo model {name!r}; known: {', '.join(MODELS)}")
    if size not in SCHEDULES:
        raise ConfigError(f"unknown size {size!r} for local:{name}; known: {', '.join(SCHEDULES)}")
    schedule = SCHEDULES[size]
    with build_threads():
        progress(0, schedule.steps, "generating data")
        data = training_data(size)
        tok = build_tokenizer(training_texts(data), N_POSITIONS)
        mix = mixture(tok, data, derive_seed("zoo-model", name, size, seed))
        torch.manual_seed(seed)
        config = model_config(name, size, tok)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
        started = time.perf_counter()
        losses = train(model, mix, schedule, progress)
        train_seconds = time.perf_counter() - started
        out_dir = Path(out_dir)
        model.save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
        progress(schedule.steps, schedule.steps, "evaluating (eager attention)")
        started = time.perf_counter()
        # Evaluated as saved, through the public loaders, with the attention analysis code uses.
        saved = AutoModelForCausalLM.from_pretrained(out_dir, attn_implementation="eager").eval()
        q = quality.card(saved, AutoTokenizer.from_pretrained(out_dir), data, N_POSITIONS)
        eval_seconds = time.perf_counter() - started
    print(_summary(name, size, q), file=sys.stderr)
    return {
        "architecture": {
            "class": type(model).__name__,
            **{k: v for k, v in SHAPES[size].items() if k != "mlp"},
            "mlp": SHAPES[size]["mlp"] if name == "tiny-llama" else 4 * SHAPES[size]["width"],
            "n_positions": N_POSITIONS,
            "vocab_size": len(tok),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "training": {
            "schedule": asdict(schedule),
            "answer_weight": ANSWER_WEIGHT,
            "data_seed": DATA_SEED,
            "attn_implementation": "sdpa",
            "torch_threads": TORCH_THREADS,
            "tokens": mix.tokens,
            "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
            "seconds": round(train_seconds, 1),
        },
        "quality": {"attn_implementation": "eager", "seconds": round(eval_seconds, 1), **q},
    }
