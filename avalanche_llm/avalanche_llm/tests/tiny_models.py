"""Small randomly initialised models of both MLP families, for unit tests that need no zoo build."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel

VOCAB = 64


def tiny_llama(layers: int = 3, seed: int = 0) -> PreTrainedModel:
    """A gated-MLP LlamaForCausalLM: width 32, d_ff 48."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return LlamaForCausalLM(cfg).eval()


def tiny_gpt2(layers: int = 3, seed: int = 0) -> PreTrainedModel:
    """A GPT2LMHeadModel: width 32, d_ff 128, no dropout."""
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=layers,
        n_head=2,
        n_positions=64,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=1,
    )
    return GPT2LMHeadModel(cfg).eval()


def token_ids(batch: int = 2, length: int = 16, seed: int = 0) -> torch.Tensor:
    """Random token ids [batch, length]."""
    return torch.randint(VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))
