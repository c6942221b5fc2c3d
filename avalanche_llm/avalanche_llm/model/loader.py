"""Load a causal LM and its tokenizer fully onto one device (no silent offload) in the asked dtype."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from avalanche_llm.model.hooks import mlp_family, mlp_width, n_layers
from labkit.errors import ConfigError, MissingInputError
from labkit.zoo import resolve_model, weights_digest

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class LoadedModel:
    """A model in eval mode with its tokenizer and the MLP facts the hooks need."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    hf_id: str
    path: Path
    family: str
    n_layers: int
    d_ff: int
    device: torch.device

    def describe(self) -> dict:
        """Facts for the run record."""
        return {
            "hf_id": self.hf_id,
            "path": str(self.path),
            "weights_sha256": weights_digest(self.path),
            "class": type(self.model).__name__,
            "family": self.family,
            "n_layers": self.n_layers,
            "d_ff": self.d_ff,
            "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
            "device": str(self.device),
        }


def load_model(hf_id: str, device: str, dtype: str, local_hint: str) -> LoadedModel:
    """Resolve `hf_id` (zoo name, directory or hub id) and load it onto `device` in `dtype`."""
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise MissingInputError("--device cuda but no CUDA device is available")
    path = resolve_model(hf_id, local_hint=local_hint)
    hf_logging.disable_progress_bar()  # one line per model load, not a progress bar per shard
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=DTYPES[dtype], attn_implementation="sdpa"
    )
    family = mlp_family(model)
    target = torch.device(device)
    model = model.to(target).eval()
    off = sorted({str(p.device) for p in model.parameters() if p.device.type != target.type})
    if off:
        raise MissingInputError(f"{hf_id}: parameters left on {off}, not fully on {device}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    return LoadedModel(
        model, tokenizer, hf_id, Path(path), family, n_layers(model), mlp_width(model), target
    )
