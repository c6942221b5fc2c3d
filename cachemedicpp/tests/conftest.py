"""Shared fixtures: small random GPT-2 models (interception, corruption and repair need no training)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from labkit.zoo import load_dataset


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one torch thread is faster, above all on a shared machine (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_gpt2(
    *, n_layer: int = 3, n_head: int = 4, n_embd: int = 64, vocab: int = 97, seed: int = 0, **kw
) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 LM in eval mode with eager attention."""
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        vocab_size=vocab,
        n_positions=256,
        bos_token_id=0,
        eos_token_id=0,
        **{"attn_implementation": "eager", **kw},
    )
    return GPT2LMHeadModel(config).eval()


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
def gpt2() -> Callable[..., GPT2LMHeadModel]:
    """Factory of random GPT-2 LMs: `gpt2(n_layer=3, ...)`."""
    return random_gpt2
