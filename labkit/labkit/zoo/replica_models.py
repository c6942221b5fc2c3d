"""Replicas of the hub models the paper configs name: the original's classes and shape, tiny and offline.

A replica keeps what code paths depend on: the `transformers` model and config classes, the module
names, the attention kind (GPT-2's fused `c_attn`; Qwen2's grouped-query attention with biased q/k/v
and RoPE), the MLP kind (GPT-2's GELU MLP; Qwen2's gated SiLU MLP), the depth (configs name layers by
index), max positions, saved dtype, tied or untied embeddings, padded vocabularies and special tokens.
It shrinks the width, and its byte-level BPE tokenizer is trained here on the zoo world.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPT2TokenizerFast,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2TokenizerFast,
)

from labkit.determinism import derive_seed
from labkit.errors import ConfigError
from labkit.zoo import quality
from labkit.zoo.models import mixture, training_data, training_texts
from labkit.zoo.training import TORCH_THREADS, Schedule, Stage, build_threads, train

REPLICA_NOTE = (
    "REPLICA for rehearsal only: same classes and shape as {hub_id}, tiny width, trained for a few "
    "steps on the labkit zoo world. Not the real weights; no result made with it is a result."
)
EOS = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# Qwen2.5's ChatML template without its default system prompt.
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
# BPE merges stop once every world word is one token (the world's vocabulary is closed).
BPE_VOCAB = 2048
# Qwen2 pads its embedding rows past the tokenizer (151,936 rows for 151,665 tokens); so do replicas.
QWEN_VOCAB_MULTIPLE = 128
WIDTH = 64
GPT2_HEADS = 2
QWEN_HEADS, QWEN_KV_HEADS, QWEN_MLP = 4, 2, 344
DATA_SIZE = "test"


@dataclass(frozen=True)
class ModelSpec:
    """What a replica copies from its original (hub config values), and its training steps."""

    hub_id: str
    family: str  # "gpt2" or "qwen2"
    layers: int
    max_positions: int
    dtype: str  # the original's saved dtype
    tie_embeddings: bool
    instruct: bool = False


# By zoo item name (`local:replica-<name>`); the catalogue maps hub ids to these names.
MODEL_SPECS = {
    "replica-" + spec.hub_id.split("/")[-1].lower(): spec
    for spec in (
        ModelSpec("gpt2", "gpt2", 12, 1024, "float32", True),
        ModelSpec("gpt2-medium", "gpt2", 24, 1024, "float32", True),
        ModelSpec("gpt2-large", "gpt2", 36, 1024, "float32", True),
        ModelSpec("Qwen/Qwen2.5-0.5B", "qwen2", 24, 32768, "bfloat16", True),
        ModelSpec("Qwen/Qwen2.5-7B", "qwen2", 28, 131072, "bfloat16", False),
        ModelSpec("Qwen/Qwen2.5-7B-Instruct", "qwen2", 28, 32768, "bfloat16", False, True),
    )
}
# Training steps by size: `default` is what rehearsals load; `test` has the same shape, fewer steps.
STEPS = {"default": 150, "test": 4}
# Learning rates by family: at 3e-3 the tied 24-layer Qwen2 stayed above unigram perplexity (112
# against 101); at 1.5e-3 it reached 79.
LR = {"gpt2": 3e-3, "qwen2": 1.5e-3}


def schedule(family: str, size: str) -> Schedule:
    """The replica's training: one stage of 64-token rows, stories with the world's task formats."""
    steps = STEPS[size]
    stage = Stage(
        steps, 64, 8,
        lead=(("facts", 0.4), ("sentiment", 0.3)),
        body=(("stories", 0.6), ("sentiment", 0.2), ("mcq_text", 0.2)),
    )  # fmt: skip
    return Schedule(stages=(stage,), lr=LR[family], warmup=min(10, steps))


def _bpe(cls: type[PreTrainedTokenizerFast], texts: list[str], specials: list[str]) -> dict:
    """Vocabulary and merges of a byte-level BPE trained with `cls`'s own pre-tokenizer and normaliser."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    seed_tok = cls(vocab={ch: i for i, ch in enumerate(sorted(alphabet))}, merges=[])
    backend = seed_tok.backend_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB - len(specials), initial_alphabet=alphabet, show_progress=False
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return json.loads(backend.to_str())["model"]


def build_replica_tokenizer(spec: ModelSpec, texts: list[str]) -> PreTrainedTokenizerFast:
    """The original's tokenizer class, byte-level BPE trained on `texts`, special tokens last (as there)."""
    qwen = spec.family == "qwen2"
    cls = Qwen2TokenizerFast if qwen else GPT2TokenizerFast
    specials = [EOS, IM_START, IM_END] if qwen else [EOS]
    model = _bpe(cls, texts, specials)
    merges = [tuple(m) for m in model["merges"]]
    if qwen:
        tok = cls(vocab=model["vocab"], merges=merges, model_max_length=131072, errors="replace")
        tok.add_special_tokens({"additional_special_tokens": specials[1:]})
        if spec.instruct:
            tok.eos_token = IM_END
        tok.chat_template = CHATML
    else:
        tok = cls(vocab=model["vocab"], merges=merges, model_max_length=spec.max_positions)
    return tok


def replica_config(spec: ModelSpec, tok: PreTrainedTokenizerFast) -> PretrainedConfig:
    """The original's config class and non-width values, at the replica's width."""
    eos = tok.convert_tokens_to_ids(EOS)
    if spec.family == "gpt2":
        return GPT2Config(
            vocab_size=len(tok),
            n_positions=spec.max_positions,
            n_embd=WIDTH,
            n_layer=spec.layers,
            n_head=GPT2_HEADS,
            bos_token_id=eos,
            eos_token_id=eos,
            dtype=spec.dtype,
        )
    return Qwen2Config(
        vocab_size=math.ceil(len(tok) / QWEN_VOCAB_MULTIPLE) * QWEN_VOCAB_MULTIPLE,
        hidden_size=WIDTH,
        intermediate_size=QWEN_MLP,
        num_hidden_layers=spec.layers,
        num_attention_heads=QWEN_HEADS,
        num_key_value_heads=QWEN_KV_HEADS,
        max_position_embeddings=spec.max_positions,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        rms_norm_eps=1e-6,
        tie_word_embeddings=spec.tie_embeddings,
        use_sliding_window=False,
        sliding_window=spec.max_positions,
        max_window_layers=spec.layers,
        bos_token_id=eos,
        eos_token_id=tok.eos_token_id,
        dtype=spec.dtype,
    )


def _perplexities(model: torch.nn.Module, tok: PreTrainedTokenizerFast, data: dict) -> dict:
    """Validation perplexity on world stories against the unigram model of the training stories."""
    train_ids = quality.token_stream(tok, data["stories"]["train"]["text"])
    eval_ids = quality.token_stream(tok, data["stories"]["validation"]["text"])
    return {
        "window": 64,
        "model": round(quality.perplexity(model, eval_ids, 64), 3),
        "unigram": round(quality.unigram_perplexity(train_ids, eval_ids, len(tok)), 3),
    }


def build_replica_model(
    name: str, size: str, seed: int, out_dir: Path, progress: Callable[[int, int, str], None]
) -> dict:
    """Train replica `name` from `seed`, save it as its original is saved, and return its card."""
    if name not in MODEL_SPECS:
        raise ConfigError(f"unknown replica model {name!r}; known: {', '.join(MODEL_SPECS)}")
    if size not in STEPS:
        raise ConfigError(f"unknown size {size!r} for local:{name}; known: {', '.join(STEPS)}")
    spec = MODEL_SPECS[name]
    train_schedule = schedule(spec.family, size)
    hub_id = spec.hub_id
    with build_threads():
        progress(0, train_schedule.steps, "tokenizer")
        data = training_data(DATA_SIZE)
        tok = build_replica_tokenizer(spec, training_texts(data))
        mix = mixture(tok, data, derive_seed("zoo-replica", hub_id, size, seed))
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(
            replica_config(spec, tok), attn_implementation="sdpa", dtype=torch.float32
        )
        started = time.perf_counter()
        losses = train(model, mix, train_schedule, progress)
        seconds = time.perf_counter() - started
        ppl = _perplexities(model, tok, data)
        model.to(getattr(torch, spec.dtype)).save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
    note = REPLICA_NOTE.format(hub_id=hub_id)
    (Path(out_dir) / "README.md").write_text(f"# Replica of {hub_id}\n\n{note}\n", encoding="utf-8")
    print(
        f"replica of {hub_id}@{size}: ppl {ppl['model']} (unigram {ppl['unigram']})",
        file=sys.stderr,
    )
    return {
        "replica": True,
        "replica_of": hub_id,
        "note": note,
        "architecture": {
            "class": type(model).__name__,
            "config_class": type(model.config).__name__,
            "tokenizer_class": type(tok).__name__,
            "spec": asdict(spec),
            "width": WIDTH,
            "vocab_size": model.config.vocab_size,
            "tokenizer_size": len(tok),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "training": {
            "schedule": asdict(train_schedule),
            "data_size": DATA_SIZE,
            "torch_threads": TORCH_THREADS,
            "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
            "seconds": round(seconds, 1),
        },
        "quality": {"perplexity": ppl},
    }
