"""Text for training and calibration: a split as one token stream, and seeded training prefixes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from labkit.determinism import generator
from labkit.errors import ConfigError
from labkit.zoo import load_dataset

LOCAL_HINT = "use configs/mve_local.yaml (local:tiny-gpt2 on local:stories) instead"


def split_texts(
    dataset: str, dataset_config: str | None, split: str, field: str = "text"
) -> list[str]:
    """The `field` column of one split of a hub, local or zoo data set."""
    data = load_dataset(dataset, config=dataset_config, local_hint=LOCAL_HINT)
    if split not in data:
        raise ConfigError(f"data set {dataset!r} has no split {split!r}; it has {', '.join(data)}")
    if field not in data[split].column_names:
        raise ConfigError(
            f"split {split!r} of {dataset!r} has no column {field!r}; "
            f"it has {', '.join(data[split].column_names)}"
        )
    return data[split][field]


def token_stream(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> torch.Tensor:
    """Documents joined by blank lines and tokenized once: a 1-D LongTensor."""
    ids = tokenizer("\n\n".join(texts), verbose=False).input_ids
    return torch.tensor(ids, dtype=torch.long)


def split_stream(
    cfg: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase, split_key: str
) -> torch.Tensor:
    """Token stream of the `data.<split_key>` split of the config's data set."""
    data = cfg["data"]
    texts = split_texts(
        data["dataset"], data["dataset_config"], data[split_key], data["text_field"]
    )
    return token_stream(tokenizer, texts)


def train_prefix(stream: torch.Tensor, step: int, length: int, seed: int) -> torch.Tensor:
    """The [1, length] training prefix of `step`: a seeded start in the stream (no state to resume)."""
    if stream.numel() < length:
        raise ConfigError(
            f"the training split has {stream.numel()} tokens, fewer than data.prefix_tokens {length}"
        )
    g = generator(seed, "train-prefix", step)
    start = int(torch.randint(stream.numel() - length + 1, (), generator=g))
    return stream[start : start + length][None]
