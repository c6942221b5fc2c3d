"""Shared fixtures: small random GPT-2 and Llama-family models (interception, corruption and repair
need no training)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from labkit.zoo import load_dataset


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one torch thread is faster, above all on a shared machine (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CONFIGS: dict[str, type[PretrainedConfig]] = {
    "gpt2": GPT2Config,
    "llama": LlamaConfig,
    "qwen2": Qwen2Config,
    "mistral": MistralConfig,
}


def random_lm(
    family: str = "gpt2",
    *,
    n_layer: int = 3,
    n_head: int = 4,
    n_kv_head: int = 2,
    n_embd: int = 64,
    vocab: int = 97,
    seed: int = 0,
    **kw,
) -> PreTrainedModel:
    """A randomly initialised LM of `family` in eval mode with eager attention; the RoPE families
    (llama, qwen2, mistral) use grouped-query attention with `n_kv_head` cached heads."""
    torch.manual_seed(seed)
    shape = {
        "num_hidden_layers": n_layer,
        "num_attention_heads": n_head,
        "hidden_size": n_embd,
        "vocab_size": vocab,
        "max_position_embeddings": 256,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }
    if family != "gpt2":
        shape |= {"intermediate_size": 2 * n_embd, "num_key_value_heads": n_kv_head}
    config = CONFIGS[family](**shape, **{"attn_implementation": "eager", **kw})
    return AutoModelForCausalLM.from_config(config).eval()


def random_gpt2(**kw) -> PreTrainedModel:
    """A randomly initialised GPT-2 LM (`random_lm("gpt2", ...)`)."""
    return random_lm("gpt2", **kw)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved random GPT-2 with a word-level tokenizer fitted to local:stories@test."""
    out = tmp_path_factory.mktemp("tiny_gpt2")
    texts = load_dataset("local:stories@test")["train"]["text"]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        texts, trainers.WordLevelTrainer(special_tokens=["<|endoftext|>", "<unk>"])
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
    )
    fast.save_pretrained(out)
    random_gpt2(n_layer=2, n_embd=32, vocab=tok.get_vocab_size()).save_pretrained(out)
    return out


@pytest.fixture
def gpt2() -> Callable[..., PreTrainedModel]:
    """Factory of random GPT-2 LMs: `gpt2(n_layer=3, ...)`."""
    return random_gpt2


@pytest.fixture
def tiny_lm() -> Callable[..., PreTrainedModel]:
    """Factory of random LMs of any supported family: `tiny_lm("qwen2", n_kv_head=1, ...)`."""
    return random_lm
